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
from collections.abc import Callable

from ra_guard._redact import redact_secrets
from ra_guard._warn import WarningLimiter
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
        self._limiter = WarningLimiter(interval_s=interval_s)

    @property
    def clock(self) -> Callable[[], float]:
        """The clock the interval is measured with (tests substitute their own)."""
        return self._limiter.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._limiter.clock = clock

    def admit(self, kind: str, policy: str | None) -> tuple[bool, int]:
        """Whether to log this one now, and how many like it were held back since the last one logged."""
        return self._limiter.admit((kind, policy))

    def reset(self) -> None:
        """Forget what was logged (tests; a new reporting period)."""
        self._limiter.reset()

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
