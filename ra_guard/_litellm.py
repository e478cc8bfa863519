"""What every litellm backend shares: the lazy import and per-loop client bookkeeping.

litellm caches one HTTP client per event loop and shares it between every
caller on that loop; :func:`join_loop_clients` (or :func:`loop_gate`) and
:func:`release_loop_clients` count the ra-guard backends (judges, samplers,
the integrations' router judge) using a loop's clients, so that the last one
to let go closes them. Used by
:mod:`ra_guard.judges.litellm_judge`, :mod:`ra_guard.samplers.litellm` and
``ra_guard.integrations.litellm``; none of them imports another's private parts.

Example:
    >>> import_litellm().__name__
    'litellm'
"""

from __future__ import annotations

import asyncio
import weakref
from types import ModuleType

from ra_guard.exceptions import MissingDependencyError

__all__ = ["close_loop_clients", "import_litellm", "join_loop_clients", "loop_gate", "release_loop_clients"]


def import_litellm() -> ModuleType:
    """Import litellm, or raise :class:`MissingDependencyError` naming the extra.

    Example:
        >>> import_litellm().__name__
        'litellm'
    """
    try:
        import litellm
    except ImportError as exc:
        raise MissingDependencyError("litellm", extra="litellm") from exc
    return litellm


#: Live litellm backends per event loop: litellm's client cache is per loop and shared by all of them.
_LOOP_USERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


def join_loop_clients() -> None:
    """Count the caller as a user of litellm's clients on the running loop.

    Paired with :func:`release_loop_clients`: a backend's per-loop state is built
    with this and closed with that, so that litellm's shared clients of a loop
    are closed when the last backend using them lets go, never under another.
    """
    loop = asyncio.get_running_loop()
    _LOOP_USERS[loop] = _LOOP_USERS.get(loop, 0) + 1


def loop_gate(limit: int) -> asyncio.Semaphore:
    """A concurrency gate for the running loop, its caller counted by :func:`join_loop_clients`."""
    join_loop_clients()
    return asyncio.Semaphore(limit)


async def release_loop_clients(_: object = None) -> None:
    """One backend lets go of the running loop's litellm clients; the last one closes them.

    Example:
        >>> import asyncio
        >>> async def one_user() -> None:
        ...     loop_gate(4)
        ...     await release_loop_clients()
        >>> asyncio.run(one_user())
    """
    loop = asyncio.get_running_loop()
    left = _LOOP_USERS.get(loop, 1) - 1
    if left > 0:  # another live judge or sampler still sends through these clients
        _LOOP_USERS[loop] = left
        return
    _LOOP_USERS.pop(loop, None)
    await close_loop_clients()


async def close_loop_clients(_: object = None) -> None:
    """Close the HTTP clients litellm cached for the running event loop.

    litellm caches one client per event loop and never closes those of a loop
    that has ended, so each ``run_sync`` call (a fresh loop) would leave open
    sockets behind for the garbage collector (``ResourceWarning: unclosed``).
    The litellm backends call this when their loop shuts down; every client it
    closes is bound to that loop and useless after it. Best effort: litellm
    internals that are not found are left alone.

    Example:
        >>> import asyncio
        >>> asyncio.run(close_loop_clients())
    """
    try:
        import litellm
        from litellm.caching.evicted_client_closer import running_loop_token

        token = running_loop_token()
        cache = litellm.in_memory_llm_clients_cache.cache_dict
        suffix = f"-{token}"
        keys = [key for key in list(cache) if token is not None and isinstance(key, str) and key.endswith(suffix)]
    except Exception:
        return
    for key in keys:
        client = cache.pop(key, None)
        close = getattr(client, "aclose", None) or getattr(client, "close", None)
        if close is None:
            continue
        try:
            result = close()
            if asyncio.iscoroutine(result):
                await result
        except Exception:  # a half-closed client is still better than an unclosed one
            continue
