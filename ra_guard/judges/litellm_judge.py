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
from ra_guard.judges._http import judge_error_from_openai
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
        """One ``litellm.acompletion`` call under the concurrency gate, errors mapped to :class:`JudgeError`.

        Raises:
            JudgeTimeoutError: litellm timed out.
            JudgeError: Any other failure (``retryable`` for rate limits, 5xx, connection errors).
            JudgeOutputError: The answer holds no message.
        """
        options: dict[str, Any] = {"temperature": self.temperature, "max_tokens": max_tokens}
        options.update(self.litellm_kwargs)
        timeout = options.get("timeout")
        limit = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None
        record_call_target(self.name, self._target)
        async with await self._gates.get():
            try:
                call = self._litellm.acompletion(model=self.model, messages=messages, **options)
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
                raise JudgeError(f"litellm raised {redact_secrets(repr(exc))}", judge=self.name) from exc
        return answer_from_completion(response, judge=self.name, source="litellm's answer")

    async def aclose(self) -> None:
        """Close the HTTP clients litellm cached for the running loop."""
        await self._gates.aclose()
