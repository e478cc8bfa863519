"""A judge served by an OpenAI-compatible endpoint (vLLM, SGLang, TGI, a litellm proxy).

:class:`OpenAICompatJudge` renders each request in the exact RewardAnything
input format, sends it to ``/chat/completions`` with the ``openai`` SDK's
``AsyncOpenAI`` client (connection pooling, per-call timeout, retries with
backoff on 408/409/429/5xx and connection errors, the server's
``Retry-After`` honoured) and parses the answer into a
:class:`~ra_guard.verdict.Verdict`. At most ``max_concurrency`` calls are in
flight at once per event loop.

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
from ra_guard.judges.parsing import ReasonCode, parse_verdict
from ra_guard.types import Usage
from ra_guard.verdict import Verdict

__all__ = ["API_KEY_ENV", "JudgeMode", "OpenAICompatJudge"]

#: Environment variable read when no ``api_key`` is given.
API_KEY_ENV = "RA_GUARD_JUDGE_API_KEY"

#: How the judge reads the model: ``reasoning`` generates thinking then a JSON verdict.
JudgeMode = Literal["reasoning"]
_MODES: tuple[str, ...] = ("reasoning",)


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
        mode: ``reasoning``: generate thinking and a JSON verdict (the paper's setting).

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
    ) -> None:
        if mode not in _MODES:
            raise ConfigurationError(f"unknown judge mode {mode!r}; use one of: {', '.join(_MODES)}")
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
        async with state.gate:
            try:
                completion = await state.client.chat.completions.create(
                    model=model,
                    messages=rendered.messages,  # type: ignore[arg-type]  # TypedDicts of the same shape
                    extra_body=self.extra_body or None,
                    **self._generation_options(),
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
        return self._verdict(completion, rendered)

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

    def _generation_options(self) -> dict[str, Any]:
        """Request knobs of the current mode."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    def _verdict(self, completion: ChatCompletion, rendered: RenderedRequest) -> Verdict:
        """Read the answer according to the current mode."""
        return self._reasoning_verdict(completion, rendered)

    def _reasoning_verdict(self, completion: ChatCompletion, rendered: RenderedRequest) -> Verdict:
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
        return parse_verdict(text, rendered, model=completion.model or self.model, usage=usage, judge=self.name)

    # -- errors -----------------------------------------------------------

    def _judge_error(self, exc: openai.OpenAIError, *, doing: str = "judging") -> JudgeError:
        return judge_error_from_openai(
            exc, judge=self.name, where=self.base_url, timeout=self.timeout, retries=self.max_retries, doing=doing
        )
