"""The :class:`Budget`: deadline, candidate and judge-call limits on one decision.

A guard hands its budget to the decision engine (:mod:`ra_guard.engine`),
which applies it; the class lives on its own so that the engine and the guard
both import it without importing each other. ``ra_guard.Budget`` and
``ra_guard.guard.Budget`` name this same class.

Example:
    >>> Budget(deadline_s=2.0).deadline_s
    2.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ra_guard.exceptions import ConfigurationError

__all__ = ["Budget"]


@dataclass(frozen=True)
class Budget:
    """Limits on one decision.

    Attributes:
        deadline_s: Wall time for the whole decision. Work still in flight when
            it passes is cancelled: a judge call that is cut off counts as a
            judge error (the policy's ``on_judge_error`` applies); sampling that
            is cut off before any candidate exists raises ``DeadlineExceeded``.
        max_candidates: Candidates sampled at most, across attempts.
        max_judge_calls: Judge calls at most; policies left unjudged follow
            their ``on_judge_error``.
        judge_reserve: Under a deadline, the share of the time left that late
            sampling leaves to judging (0 <= x < 1, default 0.25). Samples are
            taken as they finish; when this share is reached and some have
            finished, the rest are dropped (a ``deadline`` fallback) and those
            that finished are judged. With none finished, sampling waits up to
            the deadline for a first one.

    Example:
        >>> Budget(deadline_s=5.0, max_judge_calls=6).max_candidates is None
        True
    """

    deadline_s: float | None = None
    max_candidates: int | None = None
    max_judge_calls: int | None = None
    judge_reserve: float = 0.25

    def __post_init__(self) -> None:
        deadline = self.deadline_s
        if deadline is not None and (
            isinstance(deadline, bool)
            or not isinstance(deadline, (int, float))
            or not math.isfinite(deadline)
            or deadline <= 0
        ):
            raise ConfigurationError(
                f"Budget.deadline_s must be a finite number of seconds > 0 (or None), got {deadline!r}"
            )
        for name in ("max_candidates", "max_judge_calls"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"Budget.{name} must be an integer >= 1 (or None), got {value!r}")
        reserve = self.judge_reserve
        if isinstance(reserve, bool) or not isinstance(reserve, (int, float)) or not 0 <= reserve < 1:
            raise ConfigurationError(f"Budget.judge_reserve must be a number in [0, 1), got {reserve!r}")
