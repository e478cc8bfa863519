"""Run users' synchronous functions off the event loop, with the caller's context.

A sync sampling or scoring function would otherwise block the loop: N calls
would run one after another, and no deadline could interrupt them. They run in
a shared thread pool sized for I/O-bound work (the default executor has only
``cpu_count + 4`` threads: best-of-8 on two cores would queue).

Example:
    >>> import asyncio
    >>> asyncio.run(call_in_thread(sum, [1, 2]))
    3
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["call_in_thread", "is_async_callable"]

#: Threads for users' sync functions; they mostly wait on I/O (a model call), so more than the CPUs.
MAX_THREADS = 64

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pid: int | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool, _pid
    with _lock:
        if _pool is None or _pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="ra-guard-fn")
            _pid = os.getpid()
        return _pool


async def call_in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread, inside a copy of the current context."""
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(context.run, fn, *args))


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns a coroutine (an ``async def`` function or ``__call__``).

    Example:
        >>> async def f() -> None: ...
        >>> is_async_callable(f), is_async_callable(len)
        (True, False)
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004
