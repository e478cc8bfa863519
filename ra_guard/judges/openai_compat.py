"""A judge served by an OpenAI-compatible endpoint (vLLM, SGLang, TGI, a litellm proxy).

:class:`OpenAICompatJudge` renders each request in the exact RewardAnything
input format, sends it to ``/chat/completions`` with the ``openai`` SDK's
``AsyncOpenAI`` client (connection pooling) and parses the answer into a
:class:`~ra_guard.verdict.Verdict`. At most ``max_concurrency`` calls are in
flight at once per event loop. ``timeout`` bounds each HTTP request as a
whole; connection errors and 409/429/5xx are retried with backoff (the
server's ``Retry-After`` honoured); a timed-out generation is retried only
with ``retry_timeouts=True``.

Three modes read the model:

- ``reasoning`` (default): the trained behaviour, thinking then a JSON verdict, parsed;
- ``fast``: no thinking; the verdict's JSON skeleton is given as the start of the
  assistant's answer (vLLM's ``continue_final_message``) and each candidate's score
  is read from the ``top_logprobs`` of the digits 1–5: one one-token request per
  candidate, continuous scores, never an unparseable verdict;
- ``hybrid``: think up to ``thinking_budget`` tokens, then the same digit reading.

``fast`` and ``hybrid`` fall back to parsing one generation (at most
``fallback_max_tokens`` tokens) and say so in ``Verdict.repairs`` and in a
rate-limited WARNING on the ``ra_guard.judges`` logger when

- the server returns no log-probabilities (``logprobs_unavailable``);
- the server rejects ``continue_final_message``/``add_generation_prompt``
  (``transformers serve`` answers 422 "Unexpected fields"): remembered, later
  calls go straight to the fallback (``digits_unsupported``);
- the digits 1–5 hold less than ``min_digit_mass`` of the probability where a
  score is expected, or none is among the top alternatives (``low_digit_mass``;
  ``on_low_digit_mass="raise"`` raises :class:`JudgeOutputError` instead).

Where ``GET /models`` reports the served context (vLLM's ``max_model_len``,
asked once before the first generation, or read on model discovery and
:meth:`OpenAICompatJudge.aping`), ``max_tokens`` is bounded to leave room for
the input; a "maximum context length" 400 is retried once with the room the
server reports.

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
import base64
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import openai
from openai.types.chat import ChatCompletion

from ra_guard._http import InjectedClient, PerLoop, borrowed_transport, openai_explanation
from ra_guard._trace_state import record_target, server_of
from ra_guard._warn import warn_fallback
from ra_guard.exceptions import ConfigurationError, JudgeError, JudgeInputTooLongError, JudgeOutputError
from ra_guard.judges._http import (
    RetryPolicy,
    context_limit,
    judge_error_from_openai,
    served_context,
    served_context_of,
    with_retries,
    with_url_hints,
)
from ra_guard.judges._url import install_log_redaction, parse_judge_url
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.chat import ChatAnswer, ChatJudge, answer_from_completion
from ra_guard.judges.format import RenderedRequest, render_messages
from ra_guard.judges.parsing import ReasonCode, split_thinking, unmask_names
from ra_guard.judges.scoring import (
    ENDPOINT_STEP_PARAMS,
    LOW_DIGIT_MASS,
    ForcedJsonReader,
    LowDigitMass,
    check_digit_mass_settings,
    distribution_from_top_logprobs,
    low_digit_mass_detail,
    verdict_from_distributions,
)
from ra_guard.types import ChatMessage, Usage
from ra_guard.verdict import Verdict

__all__ = ["API_KEY_ENV", "JudgeMode", "LowDigitMass", "OpenAICompatJudge"]

#: Environment variable read when no ``api_key`` is given.
API_KEY_ENV = "RA_GUARD_JUDGE_API_KEY"

#: How the judge reads the model (see the module docstring).
JudgeMode = Literal["reasoning", "fast", "hybrid"]
_MODES: tuple[str, ...] = ("reasoning", "fast", "hybrid")


#: The note added to ``Verdict.repairs`` when digit reading falls back to parsing.
LOGPROBS_UNAVAILABLE = (
    "logprobs_unavailable: the server returned no digit log-probabilities; parsed a generated verdict"
)

#: The least room (tokens) worth retrying a generation with after a context-length 400.
_MIN_GENERATION_ROOM = 16

# A 400/422 naming the forced-prefix fields (transformers serve: "Unexpected fields in the request: {...}").
_REJECTED_FIELDS = re.compile(
    r"continue_final_message|add_generation_prompt|top_logprobs|logprobs|unexpected field|extra inputs|extra_forbidden",
    re.IGNORECASE,
)


class _DigitsRejected(Exception):
    """The server refused a digit step's parameters (carried out of the retry loop)."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(f"HTTP {status}: {explanation}")


@dataclass
class _LoopState:
    """What belongs to one event loop: the SDK client, the concurrency gate, the discovery lock."""

    client: openai.AsyncOpenAI
    gate: asyncio.Semaphore
    discovery: asyncio.Lock
    #: Whether closing the SDK client is ours to do (not when it wraps the caller's ``http_client``).
    owned: bool = True


async def _close_state(state: _LoopState) -> None:
    # ``AsyncOpenAI.close`` closes the HTTP client it holds, even one the caller passed in.
    if state.owned:
        await state.client.close()


class OpenAICompatJudge(ChatJudge):
    """A RewardAnything judge behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        base_url: The API root, e.g. ``http://gpu-1:8000/v1`` (``/v1`` is added
            when the URL has no path). Userinfo (``http://user:pw@host/v1``) is
            sent as HTTP basic auth and query parameters with every request;
            neither shows in the judge's name, repr, errors or httpx's log lines.
        model: The served model name; ``None`` asks ``GET /models`` once and
            takes the first (vLLM serves one model).
        api_key: Bearer token; ``None`` reads ``RA_GUARD_JUDGE_API_KEY``, else
            sends ``EMPTY`` (vLLM's default). ``OPENAI_API_KEY`` is deliberately
            not read, so that a key for api.openai.com never goes to your server.
        timeout: Seconds one HTTP request may take in total (connect, wait, read).
        max_retries: Retries after the first attempt, on connection errors and
            409/429/5xx (backoff from 0.5 s, doubling, or the server's ``Retry-After``).
        retry_timeouts: Also retry a request that timed out (and 408/504). Off:
            the server is most likely still generating the abandoned answer.
        max_concurrency: Calls in flight at once (per event loop).
        temperature: Sampling temperature of the judge (the reference uses 0.0).
        max_tokens: Generation limit; thinking needs room (the reference uses 4096).
            Bounded by the served context where the server reports it.
        extra_body: Extra JSON fields for every request (e.g. vLLM's
            ``{"top_k": 20}`` or ``{"chat_template_kwargs": {...}}``).
        mode: ``reasoning`` (thinking then a JSON verdict, the paper's setting),
            ``fast`` or ``hybrid`` (digit log-probabilities; see the module docstring).
        thinking_budget: ``hybrid`` only: tokens of thinking before the forced verdict.
        min_digit_mass: ``fast``/``hybrid``: the least probability the digits
            1–5 must hold together where a score is expected (default 0.1; a
            RewardAnything model puts nearly all of it there).
        on_low_digit_mass: ``"parse"`` (default) falls back to parsing a
            generation; ``"raise"`` raises :class:`JudgeOutputError` (reason
            ``low_digit_mass``).
        fallback_max_tokens: Generation limit of the fallback from digit reading
            to parsing (default 512), so that a fallback stays near the cost of
            the mode that was asked for.
        http_client: Your own ``httpx.AsyncClient`` (proxies, TLS settings,
            ``httpx.MockTransport`` in tests). It stays yours: :meth:`aclose`
            leaves it open. Its connections belong to the event loop it is first
            used on, so the judge refuses a call from another loop with a
            :class:`ConfigurationError`; the sync API (``judge.judge``,
            ``guard.run``) runs on ra-guard's background loop. To serve every
            loop, pass ``transport=`` instead.
        transport: An ``httpx.AsyncBaseTransport`` (``httpx.MockTransport``,
            ``httpx.ASGITransport``...) from which the judge builds its own
            client for each event loop, so the sync and async APIs both work. It
            stays yours: closing the judge leaves it open.

    Raises:
        ConfigurationError: The URL has no http(s) scheme or host, or an
            argument is out of range, or the mode is unknown, or both
            ``http_client`` and ``transport`` are given.

    Example:
        >>> judge = OpenAICompatJudge("http://127.0.0.1:8000/v1", model="ra-8b", max_concurrency=4)
        >>> judge.max_concurrency, judge.mode
        (4, 'reasoning')
        >>> mock = httpx.MockTransport(lambda request: httpx.Response(200, json={"data": [{"id": "ra-8b"}]}))
        >>> OpenAICompatJudge("http://gpu-1:8000/v1", transport=mock).ping() is None  # no network
        True
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        retry_timeouts: bool = False,
        max_concurrency: int = 16,
        temperature: float = 0.0,
        max_tokens: int = 4096,
        extra_body: Mapping[str, Any] | None = None,
        mode: JudgeMode = "reasoning",
        thinking_budget: int = 512,
        min_digit_mass: float = 0.1,
        on_low_digit_mass: LowDigitMass = "parse",
        fallback_max_tokens: int = 512,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url = parse_judge_url(base_url, example="openai-compat:URL", path_hint="/v1")
        if http_client is not None and transport is not None:
            raise ConfigurationError("give http_client or transport, not both (a client carries its own transport)")
        if mode not in _MODES:
            raise ConfigurationError(f"unknown judge mode {mode!r}; use one of: {', '.join(_MODES)}")
        if thinking_budget < 1:
            raise ConfigurationError(f"thinking_budget must be at least 1 token, got {thinking_budget}")
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries}")
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be positive seconds, got {timeout}")
        check_digit_mass_settings(min_digit_mass, on_low_digit_mass)
        if fallback_max_tokens < 1 or max_tokens < 1:
            raise ConfigurationError("max_tokens and fallback_max_tokens must be at least 1 token")
        if url.basic_auth is not None and api_key is not None:
            raise ConfigurationError(
                "the judge URL carries a user and password and api_key is given too: give the credentials once"
            )
        self.base_url = url.base_url if url.base_url.count("/") > 2 else url.base_url + "/v1"
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry = RetryPolicy(max_retries=max_retries, retry_timeouts=retry_timeouts)
        self.max_concurrency = max_concurrency
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self.mode: JudgeMode = mode
        self.thinking_budget = thinking_budget
        self.min_digit_mass = min_digit_mass
        self.on_low_digit_mass: LowDigitMass = on_low_digit_mass
        self.fallback_max_tokens = fallback_max_tokens
        #: ``False`` once the server rejected the digit steps' fields (remembered), ``True`` once it took them.
        self.digits_supported: bool | None = None
        #: The served context in tokens, where the server reported it.
        self.context_tokens: int | None = None
        self._context_asked = False  # GET /models was read (discovery, ping or the probe): not asked again
        self._host = url.host
        self._query = url.query
        self._headers: dict[str, str] = {}
        if url.basic_auth is not None:
            token = base64.b64encode(":".join(url.basic_auth).encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._api_key = api_key or os.environ.get(API_KEY_ENV) or "EMPTY"
        self._injected: InjectedClient[httpx.AsyncClient] | None = None
        if http_client is not None:
            self._injected = InjectedClient(http_client, owner=f"OpenAICompatJudge({self.base_url})")
        self._transport = transport
        self._state: PerLoop[_LoopState] = PerLoop(self._new_state, closer=_close_state)
        install_log_redaction()
        self._update_name()

    def _update_name(self) -> None:
        # ``openai-compat:<model>@<host>``, with ``?`` until the model is discovered.
        self.name = f"openai-compat:{self.model or '?'}@{self._host}"
        self._report_target()

    def _report_target(self) -> None:
        # The OpenAI chat API's telemetry flavour (vLLM, llama.cpp, SGLang serve it): provider "openai".
        address, port = server_of(self.base_url)
        record_target(self.name, provider="openai", model=self.model, server_address=address, server_port=port)

    def __repr__(self) -> str:
        return f"OpenAICompatJudge({self.base_url!r}, model={self.model!r}, mode={self.mode!r})"

    def _new_state(self) -> _LoopState:
        http_client: httpx.AsyncClient | None = None
        if self._injected is not None:
            http_client = self._injected.get()  # refuses a second event loop
        elif self._transport is not None:
            limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
            http_client = httpx.AsyncClient(transport=borrowed_transport(self._transport), limits=limits)
        client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._api_key,
            timeout=self.timeout,
            max_retries=0,  # retries are ours: judge-fit defaults, each attempt bounded as a whole
            default_headers=self._headers or None,
            default_query=self._query or None,
            # The SDK is typed for httpx2 clients and takes httpx ones as well (``is_legacy_httpx_async_client``).
            http_client=http_client,  # type: ignore[arg-type]
        )
        gate, discovery = asyncio.Semaphore(self.max_concurrency), asyncio.Lock()
        owned = self._injected is None
        return _LoopState(client=client, gate=gate, discovery=discovery, owned=owned)

    async def _loop_state(self) -> _LoopState:
        """The running loop's client and gates; with your ``http_client``, only on the loop it serves."""
        state = await self._state.get()
        if self._injected is not None:
            self._injected.get()  # the caller's client serves one event loop: refuse another
        return state

    # -- calls ------------------------------------------------------------

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        """Judge one request.

        Raises:
            JudgeTimeoutError: No answer within ``timeout``.
            JudgeInputTooLongError: The server says the input exceeds the context.
            JudgeError: Any other transport or HTTP failure (``retryable`` set
                where a later try could succeed).
            JudgeOutputError: The answer cannot be read as a verdict.
        """
        if self.mode == "reasoning":
            return await super().ajudge(request)  # render, chat, parse
        rendered = render_messages(request)
        state = await self._loop_state()
        model = await self._model(state)
        return await self._digits(state, model, rendered)

    async def _chat(self, messages: list[ChatMessage], *, max_tokens: int | None) -> ChatAnswer:
        """One generation (the ``reasoning`` path of :class:`ChatJudge`), bounded by the served context."""
        state = await self._loop_state()
        model = await self._model(state)
        options = {"temperature": self.temperature, "max_tokens": max_tokens or self.max_tokens}
        completion = await self._generate(state, model, messages, options)
        return self._answer(completion)

    async def _complete(
        self,
        state: _LoopState,
        model: str,
        messages: list[ChatMessage],
        options: Mapping[str, Any],
        *,
        digit_step: bool = False,
    ) -> ChatCompletion:
        """One chat completion under the concurrency gate, retried as ``retry`` says, errors mapped."""
        extra_body = {**self.extra_body, **options.get("extra_body", {})}
        knobs = {k: v for k, v in options.items() if k != "extra_body"}

        async def attempt() -> ChatCompletion:
            return await state.client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]  # TypedDicts of the same shape
                extra_body=extra_body or None,
                **knobs,
            )

        def map_error(exc: Exception, retries: int) -> tuple[JudgeError, Any]:
            if isinstance(exc, openai.APIStatusError):
                explanation = openai_explanation(exc)
                if digit_step and exc.status_code in (400, 422) and _REJECTED_FIELDS.search(explanation):
                    raise _DigitsRejected(exc.status_code, explanation)
            if isinstance(exc, openai.OpenAIError):
                return self._judge_error(exc, retries=retries), getattr(exc, "response", None)
            if isinstance(exc, ValueError):  # the SDK's JSON decoding of a garbage body
                raise JudgeOutputError(
                    ReasonCode.NO_JSON.value,
                    f"{self.base_url}/chat/completions answered with a body that is not JSON ({exc})",
                    raw_text="",
                    judge=self.name,
                ) from exc
            raise exc

        async with state.gate:
            return await with_retries(
                attempt, retry=self.retry, timeout=self.timeout, map_error=map_error, on_timeout=self._timeout_error
            )

    async def _generate(
        self, state: _LoopState, model: str, messages: list[ChatMessage], options: dict[str, Any]
    ) -> ChatCompletion:
        """A generation with ``max_tokens`` bounded by the served context (known, or learned from a 400)."""
        if not self._context_asked:
            async with state.discovery:  # one GET /models however many first calls wait here
                if not self._context_asked:
                    context = await served_context_of(state.client, model, timeout=self.timeout, judge=self.name)
                    self.context_tokens = self.context_tokens or context
                    self._context_asked = True
        wanted = int(options["max_tokens"])
        options = {**options, "max_tokens": self._bounded(wanted, messages)}
        try:
            return await self._complete(state, model, messages, options)
        except JudgeError as exc:
            # The server said its context: with the input's size (vLLM's "maximum context length"), or
            # alone (vLLM 0.32's "max_tokens cannot be greater than max_model_len"): retry once within it.
            if isinstance(exc, JudgeInputTooLongError):
                self.context_tokens = exc.max_input_tokens
                room = exc.max_input_tokens - exc.input_tokens
            else:
                limit = context_limit(str(exc))
                if limit is None or limit == self.context_tokens:
                    raise
                self.context_tokens = limit
                room = self._bounded(wanted, messages)
            if room < _MIN_GENERATION_ROOM or room >= options["max_tokens"]:
                raise
            return await self._complete(state, model, messages, {**options, "max_tokens": room})

    def _bounded(self, max_tokens: int, messages: list[ChatMessage]) -> int:
        if self.context_tokens is None:
            return max_tokens
        # About four characters per token: an underestimate of the input errs towards a 400 that
        # reports the exact room (handled in ``_generate``), never towards cutting thinking short.
        estimate = sum(len(str(m.get("content") or "")) for m in messages) // 4
        return max(min(max_tokens, self.context_tokens - estimate), min(max_tokens, _MIN_GENERATION_ROOM))

    # -- model discovery and health -----------------------------------------

    async def discover_model(self) -> str:
        """The served model's name, asked of ``GET /models`` once and cached.

        Example:
            >>> # await OpenAICompatJudge("http://gpu-1:8000/v1").discover_model()
            >>> # 'WisdomShell/RewardAnything-8B-v1'
        """
        return await self._model(await self._loop_state())

    async def _model(self, state: _LoopState) -> str:
        if self.model is not None:
            self._report_target()  # this call's span and metrics name the model, discovered or given
            return self.model
        async with state.discovery:
            if self.model is None:
                served = await self._served_models(state, doing="listing models (pass model=... to skip)")
                if not served:
                    raise JudgeError(
                        f"{self.base_url}/models lists no model; pass model=... explicitly", judge=self.name
                    )
                self.model = next(iter(served))
                self._learn_context(served[self.model])
        self._update_name()
        return self.model

    async def _served_models(self, state: _LoopState, *, doing: str) -> dict[str, Any]:
        """``GET /models`` as ``{id: entry}`` (entries keep server extras such as vLLM's ``max_model_len``)."""

        async def attempt() -> Any:
            return await state.client.models.list()

        def map_error(exc: Exception, retries: int) -> tuple[JudgeError, Any]:
            if isinstance(exc, openai.OpenAIError):
                return self._judge_error(exc, retries=retries, doing=doing), getattr(exc, "response", None)
            raise exc

        page = await with_retries(
            attempt, retry=self.retry, timeout=self.timeout, map_error=map_error, on_timeout=self._timeout_error
        )
        return {entry.id: entry for entry in page.data}

    def _learn_context(self, entry: Any) -> None:
        self.context_tokens = served_context(entry) or self.context_tokens
        self._context_asked = True

    async def aping(self) -> None:
        """Check that the server answers and serves the judge's model (one ``GET /models``).

        Raises:
            JudgeError: The server cannot be reached, or answers with an error
                (a 404 names the likely wrong base path).
            ConfigurationError: ``model`` is not among the served models (they are listed).

        Example:
            >>> # await OpenAICompatJudge("http://gpu-1:8000/v1", model="ra-8b").aping()
        """
        state = await self._loop_state()
        served = await self._served_models(state, doing="checking the server")
        if self.model is None:
            if not served:
                raise JudgeError(f"{self.base_url}/models lists no model; is a model loaded?", judge=self.name)
            async with state.discovery:
                if self.model is None:
                    self.model = next(iter(served))
                    self._update_name()
        elif self.model not in served:
            raise ConfigurationError(
                f"{self.name}: model {self.model!r} is not served at {self.base_url}; "
                f"served models: {sorted(served)}; pass one of them as model=..."
            )
        self._learn_context(served[self.model])

    async def aclose(self) -> None:
        """Close the running loop's HTTP client; an ``http_client`` you passed in stays open (it is yours)."""
        await self._state.aclose()

    # -- modes ------------------------------------------------------------

    async def _digits(self, state: _LoopState, model: str, rendered: RenderedRequest) -> Verdict:
        """``fast``/``hybrid``: force the verdict's JSON and read each score from digit log-probabilities."""
        if self.digits_supported is False:
            return await self._fallback(rendered, self._unsupported_note, Usage())
        usage = Usage()
        thinking = ""
        head = ""
        if self.mode == "hybrid":
            options = {"temperature": self.temperature, "max_tokens": self.thinking_budget, "stop": ["</think>"]}
            completion = await self._generate(state, model, rendered.messages, options)
            answer = self._answer(completion)
            usage = usage + (answer.usage or Usage())
            thinking = split_thinking(answer.text + "</think>")[0].strip()
            head = f"<think>\n{thinking}\n</think>\n\n"
        reader = ForcedJsonReader(rendered.shown_names, open_thinking=self.mode == "fast")
        while not reader.done:
            prefix: ChatMessage = {"role": "assistant", "content": head + reader.prefix}
            messages = [*rendered.messages, prefix]
            try:
                completion = await self._complete(state, model, messages, ENDPOINT_STEP_PARAMS, digit_step=True)
            except _DigitsRejected as exc:
                self.digits_supported = False
                self._unsupported_note = (
                    "digits_unsupported: the server rejected the forced-prefix fields (continue_final_message, "
                    f"add_generation_prompt, logprobs) with {exc}; parsed a generated verdict instead"
                )
                return await self._fallback(rendered, self._unsupported_note, usage)
            self.digits_supported = True
            usage = usage + (self._answer(completion).usage or Usage())
            found = self._digit_distribution(completion)
            if found is None:
                return await self._fallback(rendered, LOGPROBS_UNAVAILABLE, usage)
            distribution, mass = found
            if mass < self.min_digit_mass:
                shown = reader.names[len(reader.distributions)]
                name = rendered.masked_to_caller.get(shown, shown)
                note = f"{LOW_DIGIT_MASS}: {low_digit_mass_detail(mass, name, self.min_digit_mass)}"
                if self.on_low_digit_mass == "raise":
                    raise JudgeOutputError(LOW_DIGIT_MASS, note, raw_text=head + reader.prefix, judge=self.name)
                return await self._fallback(rendered, note + "; parsed a generated verdict", usage)
            reader.feed(distribution)
        return verdict_from_distributions(
            rendered,
            reader.distributions,
            mode=self.mode,
            reasoning=unmask_names(thinking, rendered.masked_to_caller),
            raw_text=head + reader.prefix,
            usage=usage,
            model=self.model,
        )

    _unsupported_note = "digits_unsupported: the server rejected the forced-prefix fields; parsed a generated verdict"

    async def _fallback(self, rendered: RenderedRequest, note: str, spent: Usage) -> Verdict:
        """Parse one bounded generation instead of reading digits; say so in ``repairs`` and the log."""
        code, _, detail = note.partition(": ")
        warn_fallback(self.name, code, f"{detail} (fallback generation of at most {self.fallback_max_tokens} tokens)")
        try:
            verdict = await self.ajudge_rendered(rendered, max_tokens=self.fallback_max_tokens)
        except JudgeOutputError as exc:  # the parse error says why; this says it came from the fallback
            fallback = f"in the {code} fallback, a generation of at most {self.fallback_max_tokens} tokens"
            exc.args = (f"{exc.args[0]} ({fallback}: {detail})",)
            raise
        return verdict.model_copy(update={"repairs": [*verdict.repairs, note], "usage": verdict.usage + spent})

    @staticmethod
    def _digit_distribution(completion: ChatCompletion) -> tuple[list[float], float] | None:
        """``(P(1..5), digit mass)`` at the first generated position; ``None`` where the server sent no logprobs.

        Logprobs without any digit among the alternatives read as mass 0.
        """
        choices = completion.choices if isinstance(completion, ChatCompletion) else None
        logprobs = getattr(choices[0], "logprobs", None) if choices else None
        content = getattr(logprobs, "content", None)
        if not content:
            return None
        found = distribution_from_top_logprobs(content[0].top_logprobs or [])
        if found is None:
            return [0.2] * 5, 0.0
        distribution, mass = found
        return distribution, mass if math.isfinite(mass) else 0.0

    def _answer(self, completion: ChatCompletion) -> ChatAnswer:
        """The answer's text (thinking put back where a reasoning parser took it out), usage and model."""
        # The SDK does not validate answers, so a wrong-shaped body arrives here as is.
        return answer_from_completion(completion, judge=self.name, source="the server's answer")

    # -- errors -----------------------------------------------------------

    def _timeout_error(self, retries: int) -> JudgeError:
        return self._judge_error(openai.APITimeoutError(request=None), retries=retries)  # type: ignore[arg-type]

    def _judge_error(self, exc: openai.OpenAIError, *, retries: int = 0, doing: str = "judging") -> JudgeError:
        error = judge_error_from_openai(
            exc,
            judge=self.name,
            where=self.base_url,
            timeout=self.timeout,
            retries=retries,
            doing=doing,
            retry_timeouts=self.retry.retry_timeouts,
        )
        return with_url_hints(error, exc, base_url=self.base_url, host=self._host)
