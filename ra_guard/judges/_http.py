"""Shared plumbing of the HTTP judges: per-loop resources, retries, error mapping.

HTTP connection pools and :class:`asyncio.Semaphore` objects belong to the
event loop that first used them, while ra-guard's sync entry points run each
call on a fresh loop (``run_sync``). :class:`PerLoop` keeps one set of such
resources per running loop, so a judge works from ``guard.run`` and from
``await guard.arun`` alike.

The OpenAI-compatible judge gets retries from the ``openai`` SDK; the
reference-server judge has no SDK, so :func:`post_json` carries the small
retry loop it needs (statuses 408/409/429/5xx and connection errors, the
server's ``Retry-After`` honoured, else exponential backoff with jitter).

Example:
    >>> RetryPolicy(max_retries=2).delay(0, None) <= 0.5
    True
"""

from __future__ import annotations

import asyncio
import random
import re
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import httpx
import openai

from ra_guard.exceptions import JudgeError, JudgeInputTooLongError, JudgeOutputError, JudgeTimeoutError

__all__ = ["PerLoop", "RetryPolicy", "host_of", "is_retryable_status", "judge_error_from_openai", "post_json"]

T = TypeVar("T")

#: The longest server-directed wait honoured before retrying, seconds.
MAX_RETRY_AFTER_S = 120.0

# vLLM: "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens
# (4904 in the messages, 4096 in the completion)."
_CONTEXT_LENGTH = re.compile(r"maximum context length is (\d+) tokens.*?(\d+) in the messages", re.DOTALL)


def host_of(url: str) -> str:
    """``host:port`` of a URL, for judge names.

    Example:
        >>> host_of("http://gpu-1:8000/v1")
        'gpu-1:8000'
    """
    return urlsplit(url).netloc or url


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status is worth retrying (timeouts, conflicts, rate limits, server errors).

    Example:
        >>> is_retryable_status(429), is_retryable_status(400)
        (True, False)
    """
    return status in (408, 409, 429) or status >= 500


async def _close_when_loop_ends(item: T, closer: Callable[[T], Awaitable[None]]) -> AsyncGenerator[None, None]:
    # A suspended async generator is finalized by ``loop.shutdown_asyncgens()``, which
    # ``asyncio.run`` calls before closing the loop: the one hook a loop offers for cleanup.
    try:
        yield
    finally:
        await closer(item)


class PerLoop(Generic[T]):
    """One lazily built resource per running event loop, closed when that loop ends.

    Entries are held weakly by loop. With a ``closer``, the resource is also
    closed by ``loop.shutdown_asyncgens()`` (which ``asyncio.run`` and
    pytest-asyncio call), so that sync callers going through ``run_sync`` (a
    new loop per call) do not leak connections.

    Example:
        >>> import asyncio
        >>> locks = PerLoop(asyncio.Lock)
        >>> async def same() -> bool:
        ...     return await locks.get() is await locks.get()
        >>> asyncio.run(same())
        True
    """

    def __init__(self, factory: Callable[[], T], *, closer: Callable[[T], Awaitable[None]] | None = None) -> None:
        self._factory = factory
        self._closer = closer
        self._items: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[T, AsyncGenerator[None, None] | None]]
        self._items = weakref.WeakKeyDictionary()

    async def get(self) -> T:
        """The resource of the running loop, built on first use."""
        loop = asyncio.get_running_loop()
        entry = self._items.get(loop)
        if entry is None:
            item = self._factory()
            guard = None
            if self._closer is not None:
                guard = _close_when_loop_ends(item, self._closer)
                await guard.__anext__()
            entry = self._items[loop] = (item, guard)
        return entry[0]

    async def aclose(self) -> None:
        """Close and forget the running loop's resource, if one was built."""
        entry = self._items.pop(asyncio.get_running_loop(), None)
        if entry is None:
            return
        item, guard = entry
        if guard is not None:
            await guard.aclose()  # runs the closer
        elif self._closer is not None:
            await self._closer(item)


@dataclass(frozen=True)
class RetryPolicy:
    """How :func:`post_json` retries.

    Attributes:
        max_retries: Retries after the first attempt (0: none).
        initial_delay: Backoff before the first retry, seconds; doubles each time.
        max_delay: Cap of the exponential backoff, seconds.

    Example:
        >>> RetryPolicy(max_retries=0).max_retries
        0
    """

    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, retry: int, response: httpx.Response | None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based).

        A ``retry-after-ms`` or ``retry-after`` (seconds) header from the server
        wins when it is positive and at most two minutes.
        """
        if response is not None:
            for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
                value = response.headers.get(header)
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


def _status_error(response: httpx.Response, judge: str) -> JudgeError:
    detail = response.text[:300].strip()
    retryable = is_retryable_status(response.status_code)
    return JudgeError(f"HTTP {response.status_code} from {response.url}: {detail}", judge=judge, retryable=retryable)


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    payload: Any,
    *,
    retry: RetryPolicy,
    judge: str,
) -> Any:
    """POST ``payload`` as JSON and return the decoded JSON answer, retrying transient failures.

    Raises:
        JudgeTimeoutError: The last attempt timed out.
        JudgeError: A non-retryable status, or retries ran out (``retryable`` set
            when another try later could succeed).
        JudgeOutputError: The server answered 2xx with a body that is not JSON.
    """
    for attempt in range(retry.max_retries + 1):
        response: httpx.Response | None = None
        try:
            response = await client.post(url, json=payload)
        except httpx.TimeoutException as exc:
            error: JudgeError = JudgeTimeoutError(f"no answer from {url}: {exc!r}", judge=judge, retryable=True)
        except httpx.TransportError as exc:
            error = JudgeError(f"connection to {url} failed: {exc!r}", judge=judge, retryable=True)
        else:
            if response.is_success:
                try:
                    return response.json()
                except ValueError:
                    raise JudgeOutputError(
                        "no_json",
                        f"{url} answered HTTP {response.status_code} with a body that is not JSON",
                        raw_text=response.text,
                        judge=judge,
                    ) from None
            error = _status_error(response, judge)
            if not error.retryable:
                raise error
        if attempt == retry.max_retries:
            if retry.max_retries:
                error.args = (f"{error.args[0]} (after {retry.max_retries} retries)",)
            raise error
        await asyncio.sleep(retry.delay(attempt, response))
    raise AssertionError("unreachable")  # pragma: no cover


def judge_error_from_openai(
    exc: openai.OpenAIError,
    *,
    judge: str,
    where: str,
    timeout: float | None,
    retries: int,
    doing: str = "judging",
) -> JudgeError:
    """The :class:`JudgeError` for an ``openai`` SDK (or litellm, which subclasses it) exception.

    Timeouts become :class:`JudgeTimeoutError`; connection errors and
    408/409/429/5xx statuses are ``retryable``; a vLLM "maximum context length"
    400 becomes :class:`JudgeInputTooLongError`.

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
        message = f"connection to {where} failed{after} while {doing}: {cause!r}"
        return JudgeError(message, judge=judge, retryable=True)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        text = str(getattr(exc, "message", exc))
        match = _CONTEXT_LENGTH.search(text)
        if status == 400 and match:
            return JudgeInputTooLongError(
                f"the judge input does not fit the context: {text}",
                input_tokens=int(match.group(2)),
                max_input_tokens=int(match.group(1)),
                judge=judge,
            )
        retryable = is_retryable_status(status)
        return JudgeError(
            f"HTTP {status}{after if retryable else ''} while {doing} at {where}: {text}",
            judge=judge,
            retryable=retryable,
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return JudgeOutputError(
            "no_json", f"the answer is not a chat completion: {exc}", raw_text=str(exc.body), judge=judge
        )
    return JudgeError(f"{doing} at {where} failed: {exc!r}", judge=judge)
