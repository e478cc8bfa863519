"""A judge behind any chat model that litellm reaches, with the RewardAnything prompt.

:class:`LiteLLMJudge` sends the same two messages as the other judges (the
RewardAnything system prompt and the JSON input) through
``litellm.acompletion``, so a hosted model (``gpt-4o-mini``,
``anthropic/claude-...``) or a litellm-routed deployment can stand in for the
reward model. General chat models were not trained on this format: expect
lower agreement than RewardAnything itself.

Needs the ``litellm`` extra: ``pip install 'ra-guard[litellm]'``.

Example:
    >>> judge = LiteLLMJudge("openai/ra-8b", api_base="http://127.0.0.1:8000/v1", api_key="x")
    >>> judge.name
    'litellm:openai/ra-8b'
"""

from __future__ import annotations

import asyncio
import weakref
from types import ModuleType
from typing import Any

import openai

from ra_guard.exceptions import (
    ConfigurationError,
    JudgeError,
    JudgeOutputError,
    JudgeTimeoutError,
    MissingDependencyError,
)
from ra_guard.judges._http import PerLoop, judge_error_from_openai
from ra_guard.judges._url import install_log_redaction, redact_url_secrets
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.judges.format import RenderedRequest, render_messages
from ra_guard.judges.parsing import ReasonCode, parse_verdict
from ra_guard.types import Usage
from ra_guard.verdict import Verdict

__all__ = [
    "LiteLLMJudge",
    "close_loop_clients",
    "import_litellm",
    "loop_gate",
    "release_loop_clients",
    "usage_of",
    "verdict_from_response",
]


def import_litellm() -> ModuleType:
    """Import litellm, or raise :class:`MissingDependencyError` naming the extra.

    Example:
        >>> import_litellm().__name__
        'litellm'
    """
    try:
        import litellm
    except ImportError as exc:
        raise MissingDependencyError("litellm", extra="litellm") from exc
    return litellm


#: Live litellm backends per event loop: litellm's client cache is per loop and shared by all of them.
_LOOP_USERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


def loop_gate(limit: int) -> asyncio.Semaphore:
    """A concurrency gate for the running loop, counting its caller as a user of litellm's clients there.

    Paired with :func:`release_loop_clients`: a backend's per-loop state is built
    with this and closed with that, so that litellm's shared clients of a loop
    are closed when the last backend using them lets go, never under another.
    """
    loop = asyncio.get_running_loop()
    _LOOP_USERS[loop] = _LOOP_USERS.get(loop, 0) + 1
    return asyncio.Semaphore(limit)


async def release_loop_clients(_: object = None) -> None:
    """One backend lets go of the running loop's litellm clients; the last one closes them.

    Example:
        >>> import asyncio
        >>> async def one_user() -> None:
        ...     loop_gate(4)
        ...     await release_loop_clients()
        >>> asyncio.run(one_user())
    """
    loop = asyncio.get_running_loop()
    left = _LOOP_USERS.get(loop, 1) - 1
    if left > 0:  # another live judge or sampler still sends through these clients
        _LOOP_USERS[loop] = left
        return
    _LOOP_USERS.pop(loop, None)
    await close_loop_clients()


async def close_loop_clients(_: object = None) -> None:
    """Close the HTTP clients litellm cached for the running event loop.

    litellm caches one client per event loop and never closes those of a loop
    that has ended, so each ``run_sync`` call (a fresh loop) would leave open
    sockets behind for the garbage collector (``ResourceWarning: unclosed``).
    The litellm backends call this when their loop shuts down; every client it
    closes is bound to that loop and useless after it. Best effort: litellm
    internals that are not found are left alone.

    Example:
        >>> import asyncio
        >>> asyncio.run(close_loop_clients())
    """
    try:
        import litellm
        from litellm.caching.evicted_client_closer import running_loop_token

        token = running_loop_token()
        cache = litellm.in_memory_llm_clients_cache.cache_dict
        suffix = f"-{token}"
        keys = [key for key in list(cache) if token is not None and isinstance(key, str) and key.endswith(suffix)]
    except Exception:
        return
    for key in keys:
        client = cache.pop(key, None)
        close = getattr(client, "aclose", None) or getattr(client, "close", None)
        if close is None:
            continue
        try:
            result = close()
            if asyncio.iscoroutine(result):
                await result
        except Exception:  # a half-closed client is still better than an unclosed one
            continue


def usage_of(response: Any) -> Usage | None:
    """The token usage of a litellm/OpenAI response, where it reports one.

    Example:
        >>> usage_of(object()) is None
        True
    """
    usage = getattr(response, "usage", None)
    prompt, completion = getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def verdict_from_response(response: Any, rendered: RenderedRequest, *, judge: str, model: str) -> Verdict:
    """Read a litellm ``ModelResponse`` (from the SDK or a ``Router``) as a verdict.

    A provider's separate ``reasoning_content`` is put back in front of the
    answer; ``model`` stands in where the response names none.

    Raises:
        JudgeOutputError: The response has no message, or its text is no verdict.
    """
    choices = getattr(response, "choices", None)
    message = getattr(choices[0], "message", None) if choices else None
    if message is None:
        raise JudgeOutputError(
            ReasonCode.EMPTY_OUTPUT.value, "litellm returned no message", raw_text=str(response), judge=judge
        )
    content = getattr(message, "content", None)
    text = content if isinstance(content, str) else ""
    # litellm moves a provider's separate reasoning into ``reasoning_content``; put it back.
    thinking = getattr(message, "reasoning_content", None)
    if isinstance(thinking, str) and thinking and "</think>" not in text:
        text = f"<think>{thinking}</think>{text}"
    answered_by = getattr(response, "model", None)
    finish = getattr(choices[0], "finish_reason", None) if choices else None
    return parse_verdict(
        text,
        rendered,
        model=answered_by if isinstance(answered_by, str) else model,
        usage=usage_of(response),
        judge=judge,
        truncated=finish == "length",
    )


class LiteLLMJudge(Judge):
    """A RewardAnything-format judge through ``litellm.acompletion``.

    Args:
        model: A litellm model string (``gpt-4o-mini``, ``openai/<served-name>``...).
        max_concurrency: Calls in flight at once (per event loop).
        temperature: Judge temperature (0.0: deterministic, as the reference).
        max_tokens: Generation limit; the thinking needs room.
        **litellm_kwargs: Passed to every ``litellm.acompletion`` call
            (``api_base``, ``api_key``, ``timeout``, ``num_retries``...). A
            numeric ``timeout`` also bounds the whole call (retries included).

    Raises:
        MissingDependencyError: litellm is not installed.

    Example:
        >>> LiteLLMJudge("gpt-4o-mini", timeout=30).litellm_kwargs
        {'timeout': 30}
    """

    model: str

    def __init__(
        self,
        model: str,
        *,
        max_concurrency: int = 16,
        temperature: float = 0.0,
        max_tokens: int = 4096,
        **litellm_kwargs: Any,
    ) -> None:
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self._litellm = import_litellm()
        self.model = model
        self.max_concurrency = max_concurrency
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.litellm_kwargs = litellm_kwargs
        self.name = f"litellm:{model}"
        self._gates: PerLoop[asyncio.Semaphore] = PerLoop(
            lambda: loop_gate(self.max_concurrency), closer=release_loop_clients
        )
        install_log_redaction()

    def __repr__(self) -> str:
        return f"LiteLLMJudge({self.model!r})"

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        """Judge one request.

        Raises:
            JudgeTimeoutError: litellm timed out.
            JudgeError: Any other failure (``retryable`` for rate limits, 5xx, connection errors).
            JudgeOutputError: The answer cannot be read as a verdict.
        """
        rendered = render_messages(request)
        options: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        options.update(self.litellm_kwargs)
        timeout = options.get("timeout")
        limit = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None
        async with await self._gates.get():
            try:
                call = self._litellm.acompletion(model=self.model, messages=rendered.messages, **options)
                # litellm's timeout bounds each read; wait_for bounds the whole call.
                response = await (asyncio.wait_for(call, limit) if limit is not None else call)
            except TimeoutError:
                raise JudgeTimeoutError(
                    f"no answer within {limit:g}s while judging at {self.model}", judge=self.name, retryable=True
                ) from None
            except openai.OpenAIError as exc:  # litellm's exceptions subclass the openai SDK's
                raise judge_error_from_openai(
                    exc,
                    judge=self.name,
                    where=self.model,
                    timeout=limit,
                    retries=int(options.get("num_retries") or 0),
                ) from exc
            except Exception as exc:
                raise JudgeError(f"litellm raised {redact_url_secrets(repr(exc))}", judge=self.name) from exc
        return self._verdict(response, rendered)

    async def aclose(self) -> None:
        """Close the HTTP clients litellm cached for the running loop."""
        await self._gates.aclose()

    def _verdict(self, response: Any, rendered: RenderedRequest) -> Verdict:
        return verdict_from_response(response, rendered, judge=self.name, model=self.model)
