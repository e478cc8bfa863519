"""Rate-limited WARNINGs for judge and sampler fallbacks, on the ``ra_guard.judges`` logger.

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

__all__ = ["LOGGER", "WarningLimiter", "reset_fallback_warnings", "warn_fallback"]

#: The logger fallbacks of the remote judges and samplers are written to.
LOGGER = logging.getLogger("ra_guard.judges")


class WarningLimiter:
    """At most one WARNING per ``(source, code)`` every ``interval_s`` seconds.

    Args:
        interval_s: Seconds between two WARNINGs of the same source and code.
        logger: Where to write them.
    """

    def __init__(self, *, interval_s: float = 60.0, logger: logging.Logger = LOGGER) -> None:
        self.interval_s = interval_s
        self.logger = logger
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def warn(self, source: str, code: str, message: str) -> bool:
        """Log ``message`` unless the same source and code was logged within the interval.

        Returns:
            Whether the WARNING was written.
        """
        key = (source, code)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        suffix = f" ({held} more like this since the last warning)" if held else ""
        self.logger.warning("%s: %s: %s%s", source, code, message, suffix)
        return True

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
