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
import functools

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig

from ra_guard._threads import call_in_thread
from ra_guard.exceptions import JudgeError
from ra_guard.judges.chat import ChatAnswer, ChatJudge
from ra_guard.types import ChatMessage

from ._calls import GUARD_TAG, JUDGE_TAG, NOSTREAM_TAG, for_sync_caller, with_tags
from ._convert import from_chat_messages, usage_of
from .sampler import model_label, model_name_of

__all__ = ["ChatModelJudge"]


class ChatModelJudge(ChatJudge):
    """Judge with a LangChain chat model speaking the RewardAnything format.

    Rendering and parsing are the :class:`~ra_guard.judges.chat.ChatJudge` path
    every chat judge shares; this class only makes the chat call.

    Args:
        model: The chat model. Use a deterministic setting (``temperature=0``)
            and room for the judge's reasoning (``max_tokens`` of a few thousand,
            set on the model: its own settings apply).
        config: A ``RunnableConfig`` for the judge calls (callbacks, tags); they
            are tagged ``nostream`` and ``ra_guard:judge`` besides, so that the
            judge's tokens never reach a LangGraph ``messages`` stream.

    Sync callers (``guard.run``) get the model's sync ``invoke`` in a worker
    thread, async callers its ``ainvoke``: a model's async client may be bound
    to an event loop the caller has closed.

    Example:
        >>> from langchain_openai import ChatOpenAI  # doctest: +SKIP
        >>> judge = ChatModelJudge(ChatOpenAI(base_url="http://gpu:8000/v1", model="RewardAnything-8B",
        ...                                   api_key="EMPTY", temperature=0))  # doctest: +SKIP
        >>> guard = Guard(policies=["concise"], judge=judge)  # doctest: +SKIP
    """

    #: The chat model's own ``max_tokens`` setting applies.
    max_tokens = None

    def __init__(self, model: BaseChatModel, *, config: RunnableConfig | None = None) -> None:
        self.chat_model = model
        self.model = model_name_of(model)
        self.config = config
        self.name = f"langchain:{model_label(model)}"

    async def _chat(self, messages: list[ChatMessage], *, max_tokens: int | None) -> ChatAnswer:
        try:
            prompt = from_chat_messages(messages)
            config = with_tags(self.config, NOSTREAM_TAG, GUARD_TAG, JUDGE_TAG)
            if for_sync_caller():
                reply = await call_in_thread(functools.partial(self.chat_model.invoke, prompt, config))
            else:
                reply = await self.chat_model.ainvoke(prompt, config)
        except asyncio.CancelledError:
            raise
        except JudgeError:
            raise
        except Exception as exc:
            raise JudgeError(f"the chat model raised {exc!r}", judge=self.name, retryable=True) from exc
        metadata = reply.response_metadata or {}
        model = metadata.get("model_name") or metadata.get("model")
        return ChatAnswer(
            text=str(reply.text),
            usage=usage_of(reply),
            model=model if isinstance(model, str) and model else None,
            truncated=metadata.get("finish_reason") == "length",
        )
