"""Shared plumbing of the HTTP judges: retries, the mapping of failures to :class:`JudgeError`, the served context.

Per-loop clients and the server explanations kept in messages are shared with
the samplers and live in :mod:`ra_guard._http`.

Retries fit a judge, whose calls are long generations: :func:`with_retries`
bounds each attempt *as a whole* (``asyncio.wait_for``, so a server trickling
bytes cannot hold a call past its timeout), retries connection errors and
429/500/502/503 with backoff (the server's ``Retry-After`` honoured), and does
*not* retry a timed-out generation unless ``retry_timeouts`` is set: the server
is most likely still working on the abandoned one, and a retry only piles up.
The decision's deadline (the guard's) cancels everything in flight.

Error messages keep the server's own explanation
(:func:`ra_guard._http.server_explanation`), with secrets blanked, and a hint
at a wrong judge URL (:func:`with_url_hints`). :func:`served_context_of` asks
an OpenAI-compatible server for the context it serves, tolerantly.

Example:
    >>> RetryPolicy(max_retries=2).delay(0, None) <= 0.5
    True
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import openai

from ra_guard._http import openai_explanation, server_explanation
from ra_guard._redact import redact_secrets
from ra_guard.exceptions import JudgeError, JudgeInputTooLongError, JudgeOutputError, JudgeTimeoutError
from ra_guard.judges._url import parse_judge_url

__all__ = [
    "RetryPolicy",
    "context_overflow",
    "host_of",
    "is_retryable_status",
    "judge_error_from_openai",
    "post_json",
    "served_context",
    "served_context_of",
    "with_retries",
    "with_url_hints",
]

T = TypeVar("T")

_log = logging.getLogger("ra_guard.judges")

#: The longest the one ``GET /models`` asking for the served context may take, seconds.
CONTEXT_PROBE_S = 5.0

#: The longest server-directed wait honoured before retrying, seconds.
MAX_RETRY_AFTER_S = 120.0

# vLLM, older: "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens
# (4904 in the messages, 4096 in the completion)."
_CONTEXT_LENGTH = re.compile(r"maximum context length is (\d+) tokens.*?(\d+) in the messages", re.DOTALL)
# vLLM, newer: "... maximum context length is 8192 tokens and your request has 4904 input tokens ..."
_CONTEXT_LENGTH_NEW = re.compile(r"maximum context length is (\d+) tokens.*?has (\d+) input tokens", re.DOTALL)


# vLLM 0.32, max_tokens alone too large: "max_tokens=1000000 cannot be greater than max_model_len=8192."
_MAX_MODEL_LEN = re.compile(r"max_tokens=\d+ cannot be greater than max_model_len=(\d+)")


def context_limit(text: str) -> int | None:
    """The served context a vLLM "max_tokens cannot be greater than max_model_len" message states, else ``None``.

    Example:
        >>> context_limit("max_tokens=1000000 cannot be greater than max_model_len=8192. Please request fewer")
        8192
    """
    match = _MAX_MODEL_LEN.search(text)
    return int(match.group(1)) if match else None


def host_of(url: str) -> str:
    """``host:port`` of a URL, for judge names: never the userinfo.

    Example:
        >>> host_of("http://gpu-1:8000/v1"), host_of("http://bob:secret@gpu-1/v1")
        ('gpu-1:8000', 'gpu-1')
    """
    try:
        return parse_judge_url(url, example="URL").host
    except Exception:
        return redact_secrets(url)


def is_retryable_status(status: int, *, timeouts: bool = False) -> bool:
    """Whether an HTTP status is worth retrying: rate limits and server errors.

    408 and 504 (the server or a gateway gave up waiting for the generation)
    count only with ``timeouts=True``: like a client-side timeout, the server
    may still be busy with the abandoned generation.

    Example:
        >>> is_retryable_status(429), is_retryable_status(400), is_retryable_status(504)
        (True, False, False)
    """
    if status in (408, 504):
        return timeouts
    return status in (409, 429) or status >= 500


def context_overflow(text: str) -> tuple[int, int] | None:
    """``(context_tokens, input_tokens)`` from a vLLM "maximum context length" message, else ``None``.

    Example:
        >>> context_overflow("maximum context length is 8192 tokens. However, you requested 9000 tokens "
        ...                  "(4904 in the messages, 4096 in the completion).")
        (8192, 4904)
    """
    match = _CONTEXT_LENGTH.search(text) or _CONTEXT_LENGTH_NEW.search(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def served_context(entry: Any) -> int | None:
    """The context in tokens a ``GET /models`` entry reports (vLLM's ``max_model_len``), else ``None``.

    Example:
        >>> from openai.types import Model
        >>> served_context(Model.model_validate({"id": "m", "object": "model", "created": 0, "owned_by": "vllm",
        ...                                      "max_model_len": 8192}))
        8192
    """
    extra = getattr(entry, "model_extra", None) or {}
    context = extra.get("max_model_len")
    return context if isinstance(context, int) and not isinstance(context, bool) and context > 0 else None


async def served_context_of(client: openai.AsyncOpenAI, model: str, *, timeout: float, judge: str) -> int | None:
    """Ask ``GET /models`` (one attempt, within ``timeout`` and at most 5 s) for the context ``model`` is served with.

    Tolerant by design: the answer only bounds ``max_tokens``, so a server that
    lists no such field, does not list ``model``, answers an error or nothing
    in time leaves the context unknown (logged at DEBUG on ``ra_guard.judges``)
    rather than failing the judge call that asked.

    Example:
        >>> # client = openai.AsyncOpenAI(base_url="http://gpu-1:8000/v1", api_key="EMPTY")
        >>> # await served_context_of(client, "ra-8b", timeout=5, judge="j")
        >>> # 8192
    """
    try:
        page = await asyncio.wait_for(client.models.list(), min(timeout, CONTEXT_PROBE_S))
        entry = next((e for e in page.data if getattr(e, "id", None) == model), None)
    except Exception as exc:  # optional knowledge: the generation itself reports real failures
        _log.debug("%s: GET /models for the served context failed: %s", judge, redact_secrets(repr(exc)))
        return None
    context = served_context(entry) if entry is not None else None
    if context is None:
        _log.debug("%s: GET /models reports no max_model_len for %r; max_tokens is not bounded", judge, model)
    return context


@dataclass(frozen=True)
class RetryPolicy:
    """How :func:`with_retries` (and :func:`post_json`) retry.

    Attributes:
        max_retries: Retries after the first attempt (0: none).
        initial_delay: Backoff before the first retry, seconds; doubles each time.
        max_delay: Cap of the exponential backoff, seconds.
        retry_timeouts: Also retry an attempt that timed out (and 408/504).
            Off by default: a judge generation that timed out is most likely
            still running on the server, and a retry only adds load.

    Example:
        >>> RetryPolicy(max_retries=0).max_retries
        0
    """

    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0
    retry_timeouts: bool = False

    def should_retry(self, error: JudgeError) -> bool:
        """Whether ``error`` is one this policy retries."""
        if isinstance(error, JudgeTimeoutError):
            return self.retry_timeouts
        return error.retryable

    def delay(self, retry: int, response: httpx.Response | Any | None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based).

        A ``retry-after-ms`` or ``retry-after`` (seconds) header from the server
        wins when it is positive and at most two minutes.
        """
        headers = getattr(response, "headers", None)
        if headers is not None:
            for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
                value = headers.get(header)
                if value is None:
                    continue
                try:
                    seconds = float(value) * scale
                except ValueError:
                    continue
                if 0 < seconds <= MAX_RETRY_AFTER_S:
                    return seconds
        backoff = min(self.initial_delay * 2.0**retry, self.max_delay)
        return backoff * (1 - 0.25 * random.random())  # jitter spreads synchronized retries


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    retry: RetryPolicy,
    timeout: float | None,
    map_error: Callable[[Exception, int], tuple[JudgeError, Any]],
    on_timeout: Callable[[int], JudgeError],
) -> T:
    """Run ``attempt`` (each try bounded by ``timeout`` as a whole) and retry what ``retry`` allows.

    Args:
        attempt: Builds and awaits one request.
        retry: What to retry, how often, with what backoff.
        timeout: Seconds one attempt may take in total (``None``: unbounded).
        map_error: ``(exception, retries_so_far) -> (JudgeError, response or None)``;
            exceptions it does not know are re-raised by returning them wrapped.
        on_timeout: ``retries_so_far -> JudgeTimeoutError`` for an attempt past ``timeout``.

    Example:
        >>> async def ok() -> int:
        ...     return 1
        >>> asyncio.run(with_retries(ok, retry=RetryPolicy(), timeout=1, map_error=None, on_timeout=None))
        1
    """
    retries = 0
    while True:
        response: Any = None
        try:
            if timeout is None:
                return await attempt()
            return await asyncio.wait_for(attempt(), timeout)
        except TimeoutError:
            error: JudgeError = on_timeout(retries)
        except JudgeError:
            raise
        except Exception as exc:
            error, response = map_error(exc, retries)
            if error.__cause__ is None:
                error.__cause__ = exc
        if retries >= retry.max_retries or not retry.should_retry(error):
            raise error
        await asyncio.sleep(retry.delay(retries, response))
        retries += 1


def _status_error(response: httpx.Response, judge: str, where: str, retries: int, retry: RetryPolicy) -> JudgeError:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    detail = server_explanation(body, fallback=response.reason_phrase)
    retryable = is_retryable_status(response.status_code, timeouts=retry.retry_timeouts)
    after = f" after {retries} retries" if retries and retryable else ""
    return JudgeError(f"HTTP {response.status_code}{after} from {where}: {detail}", judge=judge, retryable=retryable)


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    payload: Any,
    *,
    retry: RetryPolicy,
    judge: str,
    timeout: float | None = None,
    where: str = "",
    request_options: Mapping[str, Any] | None = None,
) -> Any:
    """POST ``payload`` as JSON and return the decoded JSON answer, retrying transient failures.

    Args:
        client: The HTTP client (its base URL free of credentials).
        url: The path to post to.
        payload: The JSON body.
        retry: What to retry.
        judge: The judge's name, for errors.
        timeout: Seconds one attempt may take in total.
        where: The URL to name in errors (defaults to ``client.base_url`` + ``url``).
        request_options: More ``client.post`` arguments (``auth``, ``params``, ``timeout``).

    Raises:
        JudgeTimeoutError: An attempt took longer than ``timeout`` (retried only with ``retry_timeouts``).
        JudgeError: A non-retryable status, or retries ran out (``retryable`` set
            when another try later could succeed).
        JudgeOutputError: The server answered 2xx with a body that is not JSON.
    """
    where = where or redact_secrets(str(client.base_url).rstrip("/") + url)

    async def attempt() -> Any:
        response = await client.post(url, json=payload, **(request_options or {}))
        if not response.is_success:
            raise _StatusFailure(response)
        try:
            return response.json()
        except ValueError:
            raise JudgeOutputError(
                "no_json",
                f"{where} answered HTTP {response.status_code} with a body that is not JSON",
                raw_text=response.text,
                judge=judge,
            ) from None

    def map_error(exc: Exception, retries: int) -> tuple[JudgeError, Any]:
        after = f" after {retries} retries" if retries else ""
        if isinstance(exc, _StatusFailure):
            return _status_error(exc.response, judge, where, retries, retry), exc.response
        if isinstance(exc, httpx.TimeoutException):
            return JudgeTimeoutError(f"no answer{after} from {where}: {exc!r}", judge=judge, retryable=True), None
        if isinstance(exc, httpx.TransportError):
            message = f"connection to {where} failed{after}: {redact_secrets(repr(exc))}"
            return JudgeError(message, judge=judge, retryable=True), None
        raise exc

    def on_timeout(retries: int) -> JudgeError:
        after = f" after {retries} retries" if retries else ""
        return JudgeTimeoutError(f"no answer within {timeout:g}s{after} from {where}", judge=judge, retryable=True)

    return await with_retries(attempt, retry=retry, timeout=timeout, map_error=map_error, on_timeout=on_timeout)


class _StatusFailure(Exception):
    """An HTTP error status, carried to the retry loop with its response."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def judge_error_from_openai(
    exc: openai.OpenAIError,
    *,
    judge: str,
    where: str,
    timeout: float | None,
    retries: int,
    doing: str = "judging",
    retry_timeouts: bool = False,
) -> JudgeError:
    """The :class:`JudgeError` for an ``openai`` SDK (or litellm, which subclasses it) exception.

    Timeouts become :class:`JudgeTimeoutError`; connection errors and
    409/429/5xx statuses are ``retryable``; a vLLM "maximum context length"
    400 becomes :class:`JudgeInputTooLongError`. The server's explanation is
    kept in the message (not just "Error code: 400").

    Example:
        >>> import httpx2, openai
        >>> err = judge_error_from_openai(openai.APITimeoutError(httpx2.Request("POST", "http://h/v1")),
        ...                               judge="j", where="http://h/v1", timeout=5, retries=2)
        >>> type(err).__name__, err.retryable
        ('JudgeTimeoutError', True)
    """
    after = f" after {retries} retries" if retries else ""
    if isinstance(exc, openai.APITimeoutError):
        limit = f" within {timeout:g}s" if timeout is not None else ""
        return JudgeTimeoutError(f"no answer{limit}{after} while {doing} at {where}", judge=judge, retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        message = f"connection to {where} failed{after} while {doing}: {redact_secrets(repr(cause))}"
        return JudgeError(message, judge=judge, retryable=True)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        text = openai_explanation(exc)
        overflow = context_overflow(str(getattr(exc, "message", "")) + " " + text)
        if status == 400 and overflow:
            return JudgeInputTooLongError(
                f"the judge input does not fit the context: {text}",
                input_tokens=overflow[1],
                max_input_tokens=overflow[0],
                judge=judge,
            )
        retryable = is_retryable_status(status, timeouts=retry_timeouts)
        return JudgeError(
            f"HTTP {status}{after if retryable else ''} while {doing} at {where}: {text}",
            judge=judge,
            retryable=retryable,
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return JudgeOutputError(
            "no_json", f"the answer is not a chat completion: {exc}", raw_text=str(exc.body), judge=judge
        )
    return JudgeError(f"{doing} at {where} failed: {redact_secrets(repr(exc))}", judge=judge)


def with_url_hints(error: JudgeError, exc: openai.OpenAIError, *, base_url: str, host: str) -> JudgeError:
    """``error`` with a hint at the likely mistake in an OpenAI-compatible judge's URL.

    A refused connection asks whether the server runs at ``host``; a 404 names
    the ``/v1`` base path OpenAI-compatible servers answer under.

    Example:
        >>> import httpx, openai
        >>> exc = openai.NotFoundError("Not Found", response=httpx.Response(404, request=httpx.Request("GET", "http://h/api")),
        ...                            body=None)
        >>> str(with_url_hints(JudgeError("HTTP 404"), exc, base_url="http://h:8000/api", host="h:8000"))
        "HTTP 404 (wrong base path? OpenAI-compatible servers answer under /v1: try 'http://h:8000/v1')"
    """
    cause = exc.__cause__
    if isinstance(exc, openai.APIConnectionError) and "connect" in type(cause).__name__.lower():
        error.args = (f"{error.args[0]}; is the server running at {host}?",)
    if getattr(exc, "status_code", None) == 404:
        root = base_url.split("/", 3)
        hint = f"{root[0]}//{root[2]}/v1"
        suffix = (
            f" (wrong base path? OpenAI-compatible servers answer under /v1: try {hint!r})"
            if base_url != hint
            else " (is this an OpenAI-compatible server?)"
        )
        error.args = (error.args[0] + suffix,)
    return error
