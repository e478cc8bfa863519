"""Any LangChain chat model as a RewardAnything :class:`~ra_guard.judges.base.Judge`.

The model receives the exact RewardAnything prompt (``render_messages``) and
its answer is parsed and repaired by the same ``parse_verdict`` as every other
judge backend. Point it at a RewardAnything model (``ChatOpenAI`` with
``base_url`` of a vLLM server) or at any strong general model.

Example:
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> ChatModelJudge(GenericFakeChatModel(messages=iter([]))).name
    'langchain:GenericFakeChatModel'
"""

from __future__ import annotations

import asyncio

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig

from ra_guard.exceptions import JudgeError
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.judges.format import render_messages
from ra_guard.verdict import Verdict

from ._convert import from_chat_messages, usage_of
from .sampler import model_label

__all__ = ["ChatModelJudge"]


class ChatModelJudge(Judge):
    """Judge with a LangChain chat model speaking the RewardAnything format.

    Args:
        model: The chat model. Use a deterministic setting (``temperature=0``)
            and room for the judge's reasoning (``max_tokens`` of a few thousand).
        config: A ``RunnableConfig`` for the judge calls (callbacks, tags).

    Example:
        >>> from langchain_openai import ChatOpenAI  # doctest: +SKIP
        >>> judge = ChatModelJudge(ChatOpenAI(base_url="http://gpu:8000/v1", model="RewardAnything-8B",
        ...                                   api_key="EMPTY", temperature=0))  # doctest: +SKIP
        >>> guard = Guard(policies=["concise"], judge=judge)  # doctest: +SKIP
    """

    def __init__(self, model: BaseChatModel, *, config: RunnableConfig | None = None) -> None:
        self.chat_model = model
        self.model = model_label(model)
        self.config = config
        self.name = f"langchain:{self.model}"

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        from ra_guard.judges.parsing import parse_verdict

        rendered = render_messages(request)
        try:
            reply = await self.chat_model.ainvoke(from_chat_messages(rendered.messages), self.config)
        except asyncio.CancelledError:
            raise
        except JudgeError:
            raise
        except Exception as exc:
            raise JudgeError(f"the chat model raised {exc!r}", judge=self.name, retryable=True) from exc
        metadata = reply.response_metadata or {}
        model = metadata.get("model_name") or metadata.get("model")
        return parse_verdict(
            str(reply.text),
            rendered,
            model=model if isinstance(model, str) else None,
            usage=usage_of(reply),
            judge=self.name,
            truncated=metadata.get("finish_reason") == "length",
        )
