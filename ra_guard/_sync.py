"""Run coroutines from synchronous code on one long-lived background event loop.

The async implementation is the only implementation; sync entry points call
:func:`run_sync`. Every sync call in the process runs on the same loop, in a
daemon thread started on first use, so that pooled HTTP clients (kept per loop
by the judges) are built once and reused, and no finished loop is kept alive
by a cache. The caller's context variables are copied onto the task, so an
OpenTelemetry parent span or a LangChain callback set by the caller is seen
inside, also when the caller itself runs inside an event loop (a notebook, sync
code under an async framework: that loop is never re-entered).

Example:
    >>> async def two() -> int:
    ...     return 2
    >>> run_sync(two())
    2
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

__all__ = ["background_loop", "close_on_background_loop", "on_background_loop", "run_sync"]

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_pid: int | None = None


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


def background_loop() -> asyncio.AbstractEventLoop:
    """The loop that sync callers share (started on first use, again after a fork).

    Example:
        >>> background_loop() is background_loop()
        True
    """
    global _loop, _thread, _pid
    with _lock:
        # A forked child inherits the variables but not the thread: start a fresh loop there.
        if _loop is None or _thread is None or _pid != os.getpid() or not _thread.is_alive():
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_serve, args=(_loop,), name="ra-guard-sync-loop", daemon=True)
            _thread.start()
            _pid = os.getpid()
        return _loop


def on_background_loop() -> bool:
    """Whether the caller runs on the shared background loop, i.e. serves a sync caller of ra-guard.

    Never starts the loop.

    Example:
        >>> on_background_loop()
        False
    """
    return _thread is not None and threading.current_thread() is _thread and _pid == os.getpid()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the shared background loop and return its result, from any synchronous context.

    Example:
        >>> async def three() -> int:
        ...     return 3
        >>> run_sync(three())
        3
    """
    loop = background_loop()
    if threading.current_thread() is _thread:
        # Called from code running on the background loop itself: waiting on that loop would
        # deadlock it, so this one call gets a private loop in a helper thread.
        result: list[T] = []
        context = contextvars.copy_context()
        helper = threading.Thread(target=lambda: result.append(context.run(asyncio.run, coro)))
        helper.start()
        helper.join()
        return result[0]
    # The task is created inside a copy of the caller's context (call_soon_threadsafe captures it).
    future = contextvars.copy_context().run(asyncio.run_coroutine_threadsafe, coro, loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()  # Ctrl-C (or any interruption) stops the work, not just the wait
        raise


class _Closable(Protocol):
    async def aclose(self) -> None: ...


def close_on_background_loop(*resources: _Closable) -> None:
    """Schedule ``aclose()`` of each resource on the shared loop, without waiting (for finalizers).

    Resources that pool connections per loop keep the shared loop's pool open
    until closed; a finalizer calls this so that a dropped owner does not leave
    sockets for the garbage collector. Does nothing when the loop was never started.
    """
    loop = _loop
    if loop is None or _pid != os.getpid() or loop.is_closed() or not loop.is_running():
        return

    async def close_all() -> None:
        for resource in resources:
            with contextlib.suppress(Exception):  # a finalizer has no caller to report to
                await resource.aclose()

    with contextlib.suppress(RuntimeError):  # the loop stopped meanwhile (interpreter exit)
        asyncio.run_coroutine_threadsafe(close_all(), loop)
