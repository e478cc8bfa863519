"""Any LangChain chat model as a ra-guard :class:`~ra_guard.samplers.base.Sampler`.

Example:
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> from langchain_core.messages import AIMessage
    >>> model = GenericFakeChatModel(messages=iter([AIMessage("Paris."), AIMessage("It is Paris.")]))
    >>> sampler = ChatModelSampler(model)
    >>> sorted(s.text for s in sampler.sample([{"role": "user", "content": "Capital of France?"}], n=2))
    ['It is Paris.', 'Paris.']
"""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration
from langchain_core.runnables import RunnableConfig

from ra_guard._threads import call_in_thread
from ra_guard._trace_state import provider_named, record_target, server_of
from ra_guard.exceptions import SamplerError
from ra_guard.samplers.base import Sampler
from ra_guard.types import Messages, Sample

from ._calls import CANDIDATE_TAG, GUARD_TAG, NOSTREAM_TAG, for_sync_caller, with_tags
from ._convert import from_chat_messages, message_text, usage_of

__all__ = ["ChatModelSampler", "accepts_temperature", "model_label", "model_name_of"]


def model_name_of(model: Any) -> str | None:
    """The model name a chat model sends to its provider (``gpt-4o-mini``), or ``None`` where it has none.

    Example:
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> model_name_of(GenericFakeChatModel(messages=iter([]))) is None
        True
    """
    name = getattr(model, "model_name", None) or getattr(model, "model", None)
    return name if isinstance(name, str) and name else None


# OpenAI's reasoning models refuse a temperature other than their default (HTTP 400): the o-series
# (o1, o3-mini, o4-mini...) and gpt-5 (gpt-5, gpt-5-mini, gpt-5.1...), except the gpt-5 chat models.
_NO_TEMPERATURE = re.compile(r"^(o[1-9]([.-].*)?|gpt-5(?!.*chat).*)$")


def accepts_temperature(model_name: str | None) -> bool:
    """Whether a model takes a sampling temperature, judged by its name.

    OpenAI's reasoning models (``o1``, ``o3-mini``, ``o4-mini``, ``gpt-5``,
    ``gpt-5-mini``...) answer HTTP 400 to any temperature but their default;
    ``gpt-5-chat-latest`` takes one. A provider prefix (``openai/o3-mini``) is
    ignored. Unknown names (``None`` included) are taken to accept one.

    Example:
        >>> [accepts_temperature(m) for m in ["gpt-4o-mini", "o3-mini", "openai/gpt-5", "gpt-5-chat-latest"]]
        [True, False, False, True]
    """
    if not model_name:
        return True
    return not _NO_TEMPERATURE.match(model_name.rsplit("/", 1)[-1].lower())


def report_target(backend: str, model: Any) -> None:
    """Tell tracing which provider, model and server a chat model calls (``gen_ai.provider.name``...).

    The provider is the model's ``ls_provider`` (``openai``, ``anthropic``...) in the GenAI
    conventions' words; the server, its base URL where it has one.
    """
    get_params = getattr(model, "_get_ls_params", None)
    try:
        provider = get_params().get("ls_provider") if callable(get_params) else None
    except Exception:  # a model's own hook: tracing never fails a call
        provider = None
    base_url = getattr(model, "openai_api_base", None) or getattr(model, "base_url", None)
    address, port = server_of(str(base_url) if base_url else None)
    record_target(
        backend,
        provider=provider_named(provider if isinstance(provider, str) else None),
        model=model_name_of(model),
        server_address=address,
        server_port=port,
    )


def model_label(model: Any) -> str:
    """A short label for a chat model: its class and model name (``ChatOpenAI:gpt-4o-mini``).

    Example:
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> model_label(GenericFakeChatModel(messages=iter([])))
        'GenericFakeChatModel'
    """
    name = model_name_of(model)
    kind = type(model).__name__
    return f"{kind}:{name}" if name else kind


class ChatModelSampler(Sampler):
    """Sample candidates from a LangChain chat model.

    By default the model is called ``n`` times concurrently. With
    ``use_n=True`` it is called once with the provider's ``n`` parameter
    (OpenAI-compatible servers return ``n`` choices for the price of one
    prompt); the model must honour ``n``.

    Args:
        model: Any ``BaseChatModel`` (``ChatOpenAI``, ``ChatAnthropic``, ...).
        use_n: Ask for ``n`` choices in one call instead of ``n`` calls.
        forward_temperature: Pass the strategy's temperature to the model as a
            call argument (most chat models accept ``temperature``); off to keep
            the model's own setting. Never sent to models that refuse one
            (``o1``, ``o3-mini``, ``gpt-5``..., see :func:`accepts_temperature`).
        config: A ``RunnableConfig`` (callbacks, tags, metadata) for the calls;
            they are tagged ``nostream`` and ``ra_guard:candidate`` besides, so
            that no candidate's tokens reach a LangGraph ``messages`` stream.

    Sync callers (``guard.run``) get the model's sync ``invoke`` in worker
    threads, async callers its ``ainvoke``: a model's async client may be
    bound to an event loop the caller has closed.

    Example:
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> ChatModelSampler(GenericFakeChatModel(messages=iter([]))).name
        'langchain:GenericFakeChatModel'
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        use_n: bool = False,
        forward_temperature: bool = True,
        config: RunnableConfig | None = None,
    ) -> None:
        # ``model`` is the model's name (the Sampler contract); the LangChain object is ``chat_model``.
        self.chat_model = model
        self.model = model_name_of(model)
        self.use_n = use_n
        self.forward_temperature = forward_temperature
        self.config = config
        self.name = f"langchain:{model_label(model)}"
        report_target(self.name, model)

    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        prompt = from_chat_messages(messages)
        kwargs: dict[str, Any] = {}
        if temperature is not None and self.forward_temperature and accepts_temperature(self.model):
            kwargs["temperature"] = temperature
        config = with_tags(self.config, NOSTREAM_TAG, GUARD_TAG, CANDIDATE_TAG)
        sync = for_sync_caller()
        try:
            if self.use_n:
                replies = await self._one_call(prompt, n, kwargs, config, sync=sync)
            elif sync:
                invoke = functools.partial(self.chat_model.invoke, prompt, config, **kwargs)
                replies = list(await asyncio.gather(*(call_in_thread(invoke) for _ in range(n))))
            else:
                replies = list(
                    await asyncio.gather(*(self.chat_model.ainvoke(prompt, config, **kwargs) for _ in range(n)))
                )
        except asyncio.CancelledError:
            raise
        except SamplerError:
            raise
        except Exception as exc:
            raise SamplerError(f"{self.name}: the chat model raised {exc!r}") from exc
        return [to_sample(reply) for reply in replies]

    async def _one_call(
        self, prompt: list[BaseMessage], n: int, kwargs: dict[str, Any], config: RunnableConfig, *, sync: bool
    ) -> list[BaseMessage]:
        options: dict[str, Any] = {
            "callbacks": config.get("callbacks"),
            "tags": config.get("tags"),
            "metadata": config.get("metadata"),
            "n": n,
            **kwargs,
        }
        if sync:
            result = await call_in_thread(functools.partial(self.chat_model.generate, [prompt], **options))
        else:
            result = await self.chat_model.agenerate([prompt], **options)
        replies = [g.message for g in result.generations[0] if isinstance(g, ChatGeneration)]
        if len(replies) != n:
            raise SamplerError(
                f"{self.name}: asked for n={n} choices in one call and got {len(replies)}; "
                "this model ignores `n`, use ChatModelSampler(model, use_n=False)"
            )
        return replies


def to_sample(reply: BaseMessage) -> Sample:
    """A chat model's reply as a :class:`~ra_guard.types.Sample` (text, finish reason, usage, id)."""
    metadata = reply.response_metadata or {}
    model = metadata.get("model_name") or metadata.get("model")
    return Sample(
        text=message_text(reply),
        finish_reason=metadata.get("finish_reason"),
        usage=usage_of(reply),
        model=model if isinstance(model, str) else None,
        response_id=reply.id,
    )
