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
from typing import Any

import openai

from ra_guard._http import PerLoop, usage_of
from ra_guard._litellm import close_loop_clients, import_litellm, loop_gate, release_loop_clients
from ra_guard._redact import redact_secrets
from ra_guard._trace_state import litellm_target, record_call_target
from ra_guard.exceptions import ConfigurationError, JudgeError, JudgeTimeoutError
from ra_guard.judges._http import RetryPolicy, judge_error_from_openai, with_retries
from ra_guard.judges._url import install_log_redaction
from ra_guard.judges.chat import ChatAnswer, ChatJudge, answer_from_completion, verdict_from_answer
from ra_guard.judges.format import RenderedRequest
from ra_guard.types import ChatMessage
from ra_guard.verdict import Verdict

# The litellm helpers imported above live in ``ra_guard._litellm`` (shared with the sampler and
# the integrations) and ``ra_guard._http``; they stay importable from here, where they were public.
__all__ = [
    "LiteLLMJudge",
    "close_loop_clients",
    "import_litellm",
    "loop_gate",
    "release_loop_clients",
    "usage_of",
    "verdict_from_response",
]


def verdict_from_response(response: Any, rendered: RenderedRequest, *, judge: str, model: str) -> Verdict:
    """Read a litellm ``ModelResponse`` (from the SDK or a ``Router``) as a verdict.

    The parse step of :class:`~ra_guard.judges.chat.ChatJudge` on a litellm
    answer: a provider's separate ``reasoning_content`` is put back in front of
    the answer; ``model`` stands in where the response names none.

    Raises:
        JudgeOutputError: The response has no message, or its text is no verdict.

    Example:
        >>> # verdict_from_response(await litellm.acompletion(...), rendered, judge="litellm:m", model="m")
    """
    answer = answer_from_completion(response, judge=judge, source="litellm's answer")
    return verdict_from_answer(answer, rendered, judge=judge, model=model)


class LiteLLMJudge(ChatJudge):
    """A RewardAnything-format judge through ``litellm.acompletion``.

    Retries are the judge's own, as in the HTTP judges (litellm and the
    ``openai`` SDK under it are told not to retry): connection errors and
    409/429/5xx answers are retried with backoff (the server's ``Retry-After``
    honoured), a generation that timed out only with ``retry_timeouts=True``,
    since the server is most likely still working on it.

    Args:
        model: A litellm model string (``gpt-4o-mini``, ``openai/<served-name>``...).
        max_concurrency: Calls in flight at once (per event loop).
        temperature: Judge temperature (0.0: deterministic, as the reference).
        max_tokens: Generation limit; the thinking needs room.
        max_retries: Retries after the first attempt, on connection errors and
            409/429/5xx (backoff from 0.5 s, doubling).
        retry_timeouts: Also retry an attempt that timed out (and 408/504).
        **litellm_kwargs: Passed to every ``litellm.acompletion`` call
            (``api_base``, ``api_key``, ``timeout``...). A numeric ``timeout``
            bounds each attempt as a whole, not just each read, so a server
            trickling bytes cannot hold a call past it. litellm's own
            ``num_retries``, if you pass it, retries inside one attempt.

    Raises:
        MissingDependencyError: litellm is not installed.
        ConfigurationError: ``max_concurrency`` or ``max_retries`` is out of range.

    Example:
        >>> judge = LiteLLMJudge("gpt-4o-mini", timeout=30)
        >>> judge.litellm_kwargs, judge.retry.max_retries, judge.retry.retry_timeouts
        ({'timeout': 30}, 3, False)
    """

    model: str

    def __init__(
        self,
        model: str,
        *,
        max_concurrency: int = 16,
        temperature: float = 0.0,
        max_tokens: int = 4096,
        max_retries: int = 3,
        retry_timeouts: bool = False,
        **litellm_kwargs: Any,
    ) -> None:
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries}")
        self._litellm = import_litellm()
        self.model = model
        self.max_concurrency = max_concurrency
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.retry = RetryPolicy(max_retries=max_retries, retry_timeouts=retry_timeouts)
        self.litellm_kwargs = litellm_kwargs
        self.name = f"litellm:{model}"
        # Spans and metrics name the provider and the model without litellm's routing prefix.
        self._target = litellm_target(self._litellm, model, litellm_kwargs)
        record_call_target(self.name, self._target)
        self._gates: PerLoop[asyncio.Semaphore] = PerLoop(
            lambda: loop_gate(self.max_concurrency), closer=release_loop_clients
        )
        install_log_redaction()

    def __repr__(self) -> str:
        return f"LiteLLMJudge({self.model!r})"

    async def _chat(self, messages: list[ChatMessage], *, max_tokens: int | None) -> ChatAnswer:
        """One judge call through ``litellm.acompletion`` under the concurrency gate, retried as ``retry`` says.

        Raises:
            JudgeTimeoutError: An attempt took longer than ``timeout`` (retried only with ``retry_timeouts``).
            JudgeError: Any other failure (``retryable`` for rate limits, 5xx, connection errors).
            JudgeOutputError: The answer holds no message.
        """
        # max_retries=0: the openai SDK under litellm would otherwise retry twice, timeouts included.
        options: dict[str, Any] = {"temperature": self.temperature, "max_tokens": max_tokens, "max_retries": 0}
        options.update(self.litellm_kwargs)
        timeout = options.get("timeout")
        limit = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None
        record_call_target(self.name, self._target)

        async def attempt() -> Any:
            return await self._litellm.acompletion(model=self.model, messages=messages, **options)

        def map_error(exc: Exception, retries: int) -> tuple[JudgeError, Any]:
            if isinstance(exc, openai.OpenAIError):  # litellm's exceptions subclass the openai SDK's
                error = judge_error_from_openai(
                    exc,
                    judge=self.name,
                    where=self.model,
                    timeout=limit,
                    retries=retries,
                    retry_timeouts=self.retry.retry_timeouts,
                )
                return error, getattr(exc, "response", None)
            return JudgeError(f"litellm raised {redact_secrets(repr(exc))}", judge=self.name), None

        def on_timeout(retries: int) -> JudgeError:
            after = f" after {retries} retries" if retries else ""
            return JudgeTimeoutError(
                f"no answer within {limit:g}s{after} while judging at {self.model}", judge=self.name, retryable=True
            )

        async with await self._gates.get():
            # litellm's timeout bounds each read; with_retries bounds each attempt as a whole.
            response = await with_retries(
                attempt, retry=self.retry, timeout=limit, map_error=map_error, on_timeout=on_timeout
            )
        return answer_from_completion(response, judge=self.name, source="litellm's answer")

    async def aclose(self) -> None:
        """Close the HTTP clients litellm cached for the running loop."""
        await self._gates.aclose()
