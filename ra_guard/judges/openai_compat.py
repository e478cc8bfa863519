"""A judge served by an OpenAI-compatible endpoint (vLLM, SGLang, TGI, a litellm proxy).

:class:`OpenAICompatJudge` renders each request in the exact RewardAnything
input format, sends it to ``/chat/completions`` with the ``openai`` SDK's
``AsyncOpenAI`` client (connection pooling, per-call timeout, retries with
backoff on 408/409/429/5xx and connection errors, the server's
``Retry-After`` honoured) and parses the answer into a
:class:`~ra_guard.verdict.Verdict`. At most ``max_concurrency`` calls are in
flight at once per event loop.

Three modes read the model:

- ``reasoning`` (default): the trained behaviour, thinking then a JSON verdict, parsed;
- ``fast``: no thinking; the verdict's JSON skeleton is given as the start of the
  assistant's answer (vLLM's ``continue_final_message``) and each candidate's score
  is read from the ``top_logprobs`` of the digits 1–5: one one-token request per
  candidate, continuous scores, never an unparseable verdict;
- ``hybrid``: think up to ``thinking_budget`` tokens, then the same digit reading.

Where the server returns no log-probabilities, ``fast`` and ``hybrid`` fall back to
``reasoning`` for that call and say so in ``Verdict.repairs``.

Serve the model with::

    vllm serve WisdomShell/RewardAnything-8B-v1 --max-model-len 8192

Example:
    >>> judge = OpenAICompatJudge("http://gpu-1:8000/v1", model="WisdomShell/RewardAnything-8B-v1")
    >>> judge.name
    'openai-compat:WisdomShell/RewardAnything-8B-v1@gpu-1:8000'
    >>> OpenAICompatJudge("http://gpu-1:8000").base_url  # /v1 is added to a bare server URL
    'http://gpu-1:8000/v1'
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion

from ra_guard.exceptions import ConfigurationError, JudgeError, JudgeOutputError
from ra_guard.judges._http import PerLoop, host_of, judge_error_from_openai
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.judges.format import RenderedRequest, render_messages
from ra_guard.judges.parsing import ReasonCode, parse_verdict, split_thinking, unmask_names
from ra_guard.judges.scoring import (
    ENDPOINT_STEP_PARAMS,
    ForcedJsonReader,
    distribution_from_top_logprobs,
    verdict_from_distributions,
)
from ra_guard.types import ChatMessage, Usage
from ra_guard.verdict import Verdict

__all__ = ["API_KEY_ENV", "JudgeMode", "OpenAICompatJudge"]

#: Environment variable read when no ``api_key`` is given.
API_KEY_ENV = "RA_GUARD_JUDGE_API_KEY"

#: How the judge reads the model (see the module docstring).
JudgeMode = Literal["reasoning", "fast", "hybrid"]
_MODES: tuple[str, ...] = ("reasoning", "fast", "hybrid")

#: The note added to ``Verdict.repairs`` when digit reading falls back to parsing.
LOGPROBS_UNAVAILABLE = (
    "logprobs_unavailable: the server returned no digit log-probabilities; parsed a reasoning verdict"
)


@dataclass
class _LoopState:
    """What belongs to one event loop: the HTTP client, the concurrency gate, the discovery lock."""

    client: openai.AsyncOpenAI
    gate: asyncio.Semaphore
    discovery: asyncio.Lock


async def _close_state(state: _LoopState) -> None:
    await state.client.close()


def _normalize_base_url(base_url: str) -> str:
    url = base_url.rstrip("/")
    if urlsplit(url).path in ("", "/"):
        url += "/v1"
    return url


class OpenAICompatJudge(Judge):
    """A RewardAnything judge behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        base_url: The API root, e.g. ``http://gpu-1:8000/v1`` (``/v1`` is added
            when the URL has no path).
        model: The served model name; ``None`` asks ``GET /models`` once and
            takes the first (vLLM serves one model).
        api_key: Bearer token; ``None`` reads ``RA_GUARD_JUDGE_API_KEY``, else
            sends ``EMPTY`` (vLLM's default). ``OPENAI_API_KEY`` is deliberately
            not read, so that a key for api.openai.com never goes to your server.
        timeout: Seconds per HTTP attempt.
        max_retries: Retries after the first attempt, by the SDK (backoff from
            0.5 s, doubling, or the server's ``Retry-After``).
        max_concurrency: Calls in flight at once (per event loop).
        temperature: Sampling temperature of the judge (the reference uses 0.0).
        max_tokens: Generation limit; thinking needs room (the reference uses 4096).
        extra_body: Extra JSON fields for every request (e.g. vLLM's
            ``{"top_k": 20}`` or ``{"chat_template_kwargs": {...}}``).
        mode: ``reasoning`` (thinking then a JSON verdict, the paper's setting),
            ``fast`` or ``hybrid`` (digit log-probabilities; see the module docstring).
        thinking_budget: ``hybrid`` only: tokens of thinking before the forced verdict.

    Raises:
        ConfigurationError: An argument is out of range or the mode is unknown.

    Example:
        >>> judge = OpenAICompatJudge("http://127.0.0.1:8000/v1", model="ra-8b", max_concurrency=4)
        >>> judge.max_concurrency, judge.mode
        (4, 'reasoning')
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_concurrency: int = 16,
        temperature: float = 0.0,
        max_tokens: int = 4096,
        extra_body: Mapping[str, Any] | None = None,
        mode: JudgeMode = "reasoning",
        thinking_budget: int = 512,
    ) -> None:
        if mode not in _MODES:
            raise ConfigurationError(f"unknown judge mode {mode!r}; use one of: {', '.join(_MODES)}")
        if thinking_budget < 1:
            raise ConfigurationError(f"thinking_budget must be at least 1 token, got {thinking_budget}")
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries}")
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be positive seconds, got {timeout}")
        self.base_url = _normalize_base_url(base_url)
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self.mode: JudgeMode = mode
        self.thinking_budget = thinking_budget
        self._api_key = api_key or os.environ.get(API_KEY_ENV) or "EMPTY"
        self._state: PerLoop[_LoopState] = PerLoop(self._new_state, closer=_close_state)
        self._update_name()

    def _update_name(self) -> None:
        # ``openai-compat:<model>@<host>``, with ``?`` until the model is discovered.
        self.name = f"openai-compat:{self.model or '?'}@{host_of(self.base_url)}"

    def __repr__(self) -> str:
        return f"OpenAICompatJudge({self.base_url!r}, model={self.model!r}, mode={self.mode!r})"

    def _new_state(self) -> _LoopState:
        client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._api_key,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )
        return _LoopState(client=client, gate=asyncio.Semaphore(self.max_concurrency), discovery=asyncio.Lock())

    # -- calls ------------------------------------------------------------

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        """Judge one request.

        Raises:
            JudgeTimeoutError: No answer within ``timeout`` after every retry.
            JudgeInputTooLongError: The server says the input exceeds the context.
            JudgeError: Any other transport or HTTP failure (``retryable`` set
                where a later try could succeed).
            JudgeOutputError: The answer cannot be read as a verdict.
        """
        rendered = render_messages(request)
        state = await self._state.get()
        model = await self._model(state)
        if self.mode == "reasoning":
            return await self._reasoning(state, model, rendered)
        return await self._digits(state, model, rendered)

    async def _complete(
        self, state: _LoopState, model: str, messages: list[ChatMessage], options: Mapping[str, Any]
    ) -> ChatCompletion:
        """One chat completion under the concurrency gate, errors mapped to JudgeError."""
        extra_body = {**self.extra_body, **options.get("extra_body", {})}
        knobs = {k: v for k, v in options.items() if k != "extra_body"}
        async with state.gate:
            try:
                return await state.client.chat.completions.create(
                    model=model,
                    messages=messages,  # type: ignore[arg-type]  # TypedDicts of the same shape
                    extra_body=extra_body or None,
                    **knobs,
                )
            except openai.OpenAIError as exc:
                raise self._judge_error(exc) from exc
            except ValueError as exc:  # the SDK's JSON decoding of a garbage body
                raise JudgeOutputError(
                    ReasonCode.NO_JSON.value,
                    f"{self.base_url}/chat/completions answered with a body that is not JSON ({exc})",
                    raw_text="",
                    judge=self.name,
                ) from exc

    async def discover_model(self) -> str:
        """The served model's name, asked of ``GET /models`` once and cached.

        Example:
            >>> # await OpenAICompatJudge("http://gpu-1:8000/v1").discover_model()
            >>> # 'WisdomShell/RewardAnything-8B-v1'
        """
        return await self._model(await self._state.get())

    async def _model(self, state: _LoopState) -> str:
        if self.model is not None:
            return self.model
        async with state.discovery:
            if self.model is None:
                try:
                    page = await state.client.models.list()
                except openai.OpenAIError as exc:
                    raise self._judge_error(exc, doing="listing models (pass model=... to skip)") from exc
                if not page.data:
                    raise JudgeError(
                        f"{self.base_url}/models lists no model; pass model=... explicitly", judge=self.name
                    )
                self.model = page.data[0].id
                self._update_name()
        return self.model

    async def aclose(self) -> None:
        """Close the running loop's HTTP client."""
        await self._state.aclose()

    # -- modes ------------------------------------------------------------

    async def _reasoning(self, state: _LoopState, model: str, rendered: RenderedRequest) -> Verdict:
        options = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        completion = await self._complete(state, model, rendered.messages, options)
        text, usage = self._answer(completion)
        return parse_verdict(text, rendered, model=completion.model or self.model, usage=usage, judge=self.name)

    async def _digits(self, state: _LoopState, model: str, rendered: RenderedRequest) -> Verdict:
        """``fast``/``hybrid``: force the verdict's JSON and read each score from digit log-probabilities."""
        usage = Usage()
        thinking = ""
        head = ""
        if self.mode == "hybrid":
            options = {"temperature": self.temperature, "max_tokens": self.thinking_budget, "stop": ["</think>"]}
            completion = await self._complete(state, model, rendered.messages, options)
            text, used = self._answer(completion)
            usage = usage + (used or Usage())
            thinking = split_thinking(text + "</think>")[0].strip()
            head = f"<think>\n{thinking}\n</think>\n\n"
        reader = ForcedJsonReader(rendered.shown_names, open_thinking=self.mode == "fast")
        while not reader.done:
            prefix: ChatMessage = {"role": "assistant", "content": head + reader.prefix}
            completion = await self._complete(state, model, [*rendered.messages, prefix], ENDPOINT_STEP_PARAMS)
            usage = usage + (self._answer(completion)[1] or Usage())
            found = self._digit_distribution(completion)
            if found is None:
                verdict = await self._reasoning(state, model, rendered)
                return verdict.model_copy(update={"repairs": [*verdict.repairs, LOGPROBS_UNAVAILABLE]})
            reader.feed(found)
        return verdict_from_distributions(
            rendered,
            reader.distributions,
            mode=self.mode,
            reasoning=unmask_names(thinking, rendered.masked_to_caller),
            raw_text=head + reader.prefix,
            usage=usage,
            model=self.model,
        )

    @staticmethod
    def _digit_distribution(completion: ChatCompletion) -> list[float] | None:
        """P(1..5) at the first generated position, or ``None`` where the server sent no usable logprobs."""
        choices = completion.choices if isinstance(completion, ChatCompletion) else None
        logprobs = getattr(choices[0], "logprobs", None) if choices else None
        content = getattr(logprobs, "content", None)
        if not content:
            return None
        found = distribution_from_top_logprobs(content[0].top_logprobs or [])
        return None if found is None else found[0]

    def _answer(self, completion: ChatCompletion) -> tuple[str, Usage | None]:
        """The answer's text (thinking put back where a reasoning parser took it out) and usage."""
        # The SDK does not validate answers, so a wrong-shaped body arrives here as is.
        choices = completion.choices if isinstance(completion, ChatCompletion) else None
        message = getattr(choices[0], "message", None) if choices else None
        if message is None:
            raise JudgeOutputError(
                ReasonCode.EMPTY_OUTPUT.value,
                f"the server's answer is not a chat completion with a message: {str(completion)[:200]}",
                raw_text=str(completion),
                judge=self.name,
            )
        text = message.content if isinstance(message.content, str) else ""
        # vLLM with a reasoning parser moves the thinking out of ``content``; put it back.
        extra = message.model_extra or {}
        thinking = extra.get("reasoning_content") or extra.get("reasoning")
        if isinstance(thinking, str) and thinking and "</think>" not in text:
            text = f"<think>{thinking}</think>{text}"
        usage = None
        if isinstance(completion.usage, CompletionUsage):
            usage = Usage(
                prompt_tokens=completion.usage.prompt_tokens, completion_tokens=completion.usage.completion_tokens
            )
        return text, usage

    # -- errors -----------------------------------------------------------

    def _judge_error(self, exc: openai.OpenAIError, *, doing: str = "judging") -> JudgeError:
        return judge_error_from_openai(
            exc, judge=self.name, where=self.base_url, timeout=self.timeout, retries=self.max_retries, doing=doing
        )
