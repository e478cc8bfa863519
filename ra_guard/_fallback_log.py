"""Rate-limited WARNINGs for fallbacks: seen, without flooding the log.

Every fallback the engine takes is logged on the ``ra_guard`` logger, at most
once per (kind, policy) per minute; the next warning says how many like it were
held back in between.

Example:
    >>> log = FallbackLog(interval_s=60.0)
    >>> log.admit("deadline", None)
    (True, 0)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ra_guard._redact import redact_secrets
from ra_guard.decision import Fallback

__all__ = ["FALLBACK_LOG", "FallbackLog"]

logger = logging.getLogger("ra_guard")


class FallbackLog:
    """Rate-limits the fallback WARNINGs: one per (kind, policy) per ``interval_s``, with a held-back count.

    Example:
        >>> log = FallbackLog(interval_s=60.0)
        >>> log.admit("judge_error", "brief"), log.admit("judge_error", "brief")
        ((True, 0), (False, 0))
    """

    def __init__(self, *, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self.clock: Callable[[], float] = time.monotonic
        self._lock = threading.Lock()  # async callers on several loops/threads share it
        self._last: dict[tuple[str, str | None], float] = {}
        self._held: dict[tuple[str, str | None], int] = {}

    def admit(self, kind: str, policy: str | None) -> tuple[bool, int]:
        """Whether to log this one now, and how many like it were held back since the last one logged."""
        key = (kind, policy)
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                return False, 0
            self._last[key] = now
            return True, self._held.pop(key, 0)

    def reset(self) -> None:
        """Forget what was logged (tests; a new reporting period)."""
        with self._lock:
            self._last.clear()
            self._held.clear()

    def warn(self, fallback: Fallback, *, guard: str) -> None:
        """Log ``fallback`` as a WARNING on the ``ra_guard`` logger, unless rate-limited."""
        admitted, held = self.admit(fallback.kind, fallback.policy)
        if not admitted:
            return
        policy = f" policy {fallback.policy!r}:" if fallback.policy else ""
        more = f" ({held} more like it since the last warning)" if held else ""
        # Names and error texts may carry keys (a token in a URL, an echoed auth header).
        message = f"ra-guard {guard}: {fallback.kind} fallback:{policy} {fallback.reason}; {fallback.action}{more}"
        logger.warning("%s", redact_secrets(message))


#: The process-wide rate limiter for fallback warnings.
FALLBACK_LOG = FallbackLog()
