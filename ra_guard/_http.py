"""Plumbing shared by every HTTP backend: per-loop resources, server explanations, injected transports.

HTTP connection pools and :class:`asyncio.Semaphore` objects belong to the
event loop that first used them. ra-guard's sync entry points run on one
long-lived background loop (:mod:`ra_guard._sync`), while async callers bring
their own: :class:`PerLoop` keeps one set of such resources per running loop,
so a judge or sampler works from ``guard.run`` and from ``await guard.arun``
alike, and closes each set when its loop ends.

A caller may hand a backend its own HTTP client or transport (to test it
in-process with ``httpx.MockTransport``, to reach an ASGI app, to add proxies).
:class:`InjectedClient` holds a caller's client, which serves the one loop it is
first used on and is never closed by ra-guard; :func:`borrowed_transport` lets
per-loop clients share a caller's transport without closing it.

Error messages keep the server's own explanation (:func:`server_explanation`,
:func:`openai_explanation`), e.g. a FastAPI ``{"detail": "Server is pinned to
'tiny-judge'"}``, capped at :data:`MAX_EXPLANATION_CHARS`, with secrets blanked.

This module is shared by :mod:`ra_guard.judges` and :mod:`ra_guard.samplers`;
neither imports the other's private modules.

Example:
    >>> server_explanation({"detail": "model not loaded"})
    'model not loaded'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

import httpx

from ra_guard._redact import redact_secrets
from ra_guard.exceptions import ConfigurationError
from ra_guard.types import Usage

__all__ = [
    "MAX_EXPLANATION_CHARS",
    "InjectedClient",
    "PerLoop",
    "borrowed_transport",
    "openai_explanation",
    "server_explanation",
    "usage_of",
]

T = TypeVar("T")

#: How much of a server's error explanation an error message keeps.
MAX_EXPLANATION_CHARS = 500


def server_explanation(body: Any, fallback: str = "") -> str:
    """The human explanation in an error body, capped and with secrets blanked.

    Reads OpenAI-style ``{"error": {"message"}}``, FastAPI ``{"detail"}`` (a
    string or validation items) and plain ``{"message"}``/``{"error": str}``;
    else the body (or ``fallback``) as text.

    Example:
        >>> server_explanation({"detail": "Server is pinned to 'tiny-judge'; requested 'RA-8B'"})
        "Server is pinned to 'tiny-judge'; requested 'RA-8B'"
        >>> server_explanation({"error": {"message": "Value must be between 1 <= value <= 2"}})
        'Value must be between 1 <= value <= 2'
    """
    text = ""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            body = error
        elif isinstance(error, str) and error:
            text = error
        for key in ("message", "detail", "msg"):
            value = body.get(key)
            if isinstance(value, str) and value:
                text = value
                break
            if value:
                text = json.dumps(value, ensure_ascii=False, default=str)
                break
    elif isinstance(body, str):
        text = body
    if not text:
        text = json.dumps(body, ensure_ascii=False, default=str) if body not in (None, "") else fallback
    text = " ".join(text.split())
    if len(text) > MAX_EXPLANATION_CHARS:
        text = text[:MAX_EXPLANATION_CHARS] + f"... [{len(text) - MAX_EXPLANATION_CHARS} more chars]"
    return redact_secrets(text)


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
    pytest-asyncio call), so that callers that run a loop per call do not leak
    connections; the shared sync loop never ends, and a resource left there when
    its owner is dropped is closed on it by a finalizer.

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
        # Sync callers share one long-lived loop (``ra_guard._sync``), which never runs
        # ``shutdown_asyncgens``: a resource dropped without ``aclose()`` is closed on its
        # loop here instead of leaving its sockets to the garbage collector.
        weakref.finalize(self, _close_left_over, self._items, closer)

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
        # A closed connection's socket is released by a callback on the loop's next turn (asyncio's
        # connection_lost): give it that turn, so that a loop ending right after aclose() leaks no socket.
        await asyncio.sleep(0)
        await asyncio.sleep(0)


def _close_left_over(
    items: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, AsyncGenerator[None, None] | None]],
    closer: Callable[[Any], Awaitable[None]] | None,
) -> None:
    """Close each resource still open on a running loop (a finalizer: never raises)."""
    for loop, (item, guard) in list(items.items()):
        if loop.is_closed() or not loop.is_running():
            continue
        if guard is not None:
            closing: Awaitable[None] | None = guard.aclose()
        else:
            closing = closer(item) if closer is not None else None
        if closing is None:
            continue

        async def close(awaitable: Awaitable[None] = closing) -> None:
            with contextlib.suppress(Exception):  # a finalizer has no caller to report to
                await awaitable

        with contextlib.suppress(RuntimeError):  # the loop stopped meanwhile (interpreter exit)
            asyncio.run_coroutine_threadsafe(close(), loop)


def openai_explanation(exc: BaseException) -> str:
    """The server's explanation inside an ``openai``/litellm status error (its body, else its message).

    Example:
        >>> openai_explanation(ValueError("Error code: 400"))
        'Error code: 400'
    """
    body = getattr(exc, "body", None)
    fallback = str(getattr(exc, "message", "") or exc)
    if body not in (None, "", {}):
        return server_explanation(body, fallback=fallback)
    try:
        response = getattr(exc, "response", None)
        text = getattr(response, "text", None) if response is not None else None
        if isinstance(text, str) and text.strip():
            try:
                return server_explanation(json.loads(text), fallback=fallback)
            except ValueError:
                return server_explanation(text, fallback=fallback)
    except Exception:  # a streamed response whose body was not read
        pass
    return server_explanation(fallback)


def usage_of(response: Any) -> Usage | None:
    """The token usage of an OpenAI-shaped response (the ``openai`` SDK's, litellm's), where it reports one.

    Example:
        >>> usage_of(object()) is None
        True
    """
    usage = getattr(response, "usage", None)
    prompt, completion = getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


class InjectedClient(Generic[T]):
    """A caller's HTTP client: used on the one event loop it first serves, never closed here.

    An ``httpx.AsyncClient`` keeps its connections on the loop that opened them,
    so a backend given one refuses a call from another loop (the sync API runs
    on ra-guard's background loop) with a :class:`ConfigurationError` that
    names ``transport=``, the way to serve every loop.

    Example:
        >>> import asyncio
        >>> held = InjectedClient(object(), owner="judge")
        >>> async def use() -> bool:
        ...     return held.get() is held.client
        >>> asyncio.run(use())
        True
    """

    def __init__(self, client: T, *, owner: str) -> None:
        self.client = client
        self._owner = owner
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def get(self) -> T:
        """The client, checked to be on the loop it serves (bound on first use)."""
        loop = asyncio.get_running_loop()
        bound = self._loop() if self._loop is not None else None
        if bound is None or bound.is_closed():
            self._loop = weakref.ref(loop)
        elif bound is not loop:
            raise ConfigurationError(
                f"{self._owner}: the http_client you passed is bound to the event loop it was first used on, "
                "and this call runs on another (the sync API runs on ra-guard's background loop); "
                "pass transport=... instead, from which a client is built for each event loop"
            )
        return self.client


class _BorrowedTransport(httpx.AsyncBaseTransport):
    """A caller's transport, shared by per-loop clients: closing a client leaves it open."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Nothing: the transport is its owner's to close."""


def borrowed_transport(transport: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
    """``transport`` wrapped so that a client closing it leaves it open (it is the caller's).

    Example:
        >>> import asyncio
        >>> mock = httpx.MockTransport(lambda request: httpx.Response(204))
        >>> async def status() -> int:
        ...     async with httpx.AsyncClient(transport=borrowed_transport(mock)) as client:
        ...         return (await client.get("http://x/")).status_code
        >>> asyncio.run(status())
        204
    """
    return _BorrowedTransport(transport)
