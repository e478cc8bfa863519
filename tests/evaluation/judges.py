"""Judges for the command-line tests, reached as ``py:tests.evaluation.judges:NAME``.

Each one is a real :class:`~ra_guard.testing.FunctionJudge`; ``logged_slow_judge``
appends one line per call to ``$RA_GUARD_TEST_CALL_LOG``, so a test can count
the calls across processes.
"""

from __future__ import annotations

import os
import time

from ra_guard.judges.base import JudgeRequest
from ra_guard.testing import FunctionJudge


def shorter_is_better(request: JudgeRequest) -> dict[str, float]:
    """5 for a short text, less the longer it is."""
    return {name: max(1.0, 5.0 - len(text) / 20) for name, text in request.responses.items()}


def _logged(request: JudgeRequest) -> dict[str, float]:
    with open(os.environ["RA_GUARD_TEST_CALL_LOG"], "a", encoding="utf-8") as log:
        log.write(request.prompt.replace("\n", " ") + "\n")
    time.sleep(float(os.environ.get("RA_GUARD_TEST_DELAY", "0.2")))
    return shorter_is_better(request)


def logged_slow_judge() -> FunctionJudge:
    """Scores like :func:`shorter_is_better`, slowly, logging each call."""
    return FunctionJudge(_logged, name="logged-slow")


def short_judge() -> FunctionJudge:
    """Prefers short answers."""
    return FunctionJudge(shorter_is_better, name="short")


def long_judge() -> FunctionJudge:
    """Prefers long answers."""
    return FunctionJudge(lambda r: {n: min(5.0, 1.0 + len(t) / 20) for n, t in r.responses.items()}, name="long")
