"""Run a coroutine to completion from synchronous code.

The async implementation is the only implementation; sync entry points call
:func:`run_sync`. Inside a running event loop (a notebook, an async framework
calling sync code) the coroutine runs on a private loop in a worker thread, so
that the caller's loop is never re-entered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["run_sync"]


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` and return its result, from any synchronous context.

    Example:
        >>> async def two() -> int:
        ...     return 2
        >>> run_sync(two())
        2
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
