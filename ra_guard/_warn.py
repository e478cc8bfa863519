"""Rate-limited WARNINGs for fallbacks: seen, without flooding the log.

A fallback (digits unavailable, a parameter the server rejects, a thin digit
mass) can happen on every call of a busy service; one WARNING per kind and
backend per interval keeps it visible without flooding the log, and the next
one says how many were held back.

Example:
    >>> limiter = WarningLimiter(interval_s=60.0)
    >>> limiter.warn("judge-a", "digits_unavailable", "fell back to parsing")
    True
    >>> limiter.warn("judge-a", "digits_unavailable", "fell back to parsing")
    False
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["LOGGER", "WarningLimiter", "reset_fallback_warnings", "warn_fallback"]

#: The logger fallbacks of the remote judges and samplers are written to.
LOGGER = logging.getLogger("ra_guard.judges")


class WarningLimiter:
    """Admits one WARNING per key every ``interval_s`` seconds and counts the ones held back.

    Shared by the engine's fallback warnings (keyed by kind and policy) and the
    remote backends' (keyed by judge or sampler name and code).

    Args:
        interval_s: Seconds between two WARNINGs of the same key.

    Example:
        >>> limiter = WarningLimiter(interval_s=60.0)
        >>> limiter.admit(("judge-a", "low_digit_mass")), limiter.admit(("judge-a", "low_digit_mass"))
        ((True, 0), (False, 0))
    """

    def __init__(self, *, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self.clock: Callable[[], float] = time.monotonic
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}
        self._lock = threading.Lock()  # callers on several loops and threads share one limiter

    def admit(self, key: Hashable) -> tuple[bool, int]:
        """Whether to log this one now, and how many like it were held back since the last one logged."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                return False, 0
            self._last[key] = now
            return True, self._held.pop(key, 0)

    def warn(self, source: str, code: str, message: str, *, logger: logging.Logger = LOGGER) -> bool:
        """Log ``message`` on ``logger`` unless the same source and code was logged within the interval.

        Returns:
            Whether the WARNING was written.
        """
        admitted, held = self.admit((source, code))
        if admitted:
            suffix = f" ({held} more like this since the last warning)" if held else ""
            logger.warning("%s: %s: %s%s", source, code, message, suffix)
        return admitted

    def reset(self) -> None:
        """Forget what was logged (tests start from a clean slate)."""
        with self._lock:
            self._last.clear()
            self._held.clear()


_LIMITER = WarningLimiter()


def warn_fallback(source: str, code: str, message: str) -> None:
    """Write a rate-limited WARNING for a fallback of ``source`` (a judge or sampler name).

    Example:
        >>> warn_fallback("openai-compat:m@h:1", "digits_unavailable", "parsed a generation instead")
    """
    _LIMITER.warn(source, code, message)


def reset_fallback_warnings() -> None:
    """Let the next fallback of every source log again (for tests).

    Example:
        >>> reset_fallback_warnings()
    """
    _LIMITER.reset()
