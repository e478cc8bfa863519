"""A decision as a small JSON-able dict: what a guardrail result or a trace span carries.

The full :class:`~ra_guard.Decision` (every candidate's text, every judge's
reasoning) stays in ra-guard's traces and audit log; what travels with the
agent's result is the outcome, the scores and the trace id, never candidate
text (a vetoed answer must not leak through the guardrail's ``output_info``).

Example:
    >>> from ra_guard import Decision
    >>> from ra_guard.decision import Candidate
    >>> summary = decision_summary(Decision(chosen_index=0, candidates=[Candidate(index=0, text="secret")]))
    >>> summary["passed"], "secret" in str(summary)
    (True, False)
"""

from __future__ import annotations

from typing import Any

from ra_guard import Decision

__all__ = ["decision_summary"]


def decision_summary(decision: Decision) -> dict[str, Any]:
    """The outcome of ``decision`` without candidate texts or judge reasoning.

    Keys: ``passed``, ``decision_id``, ``trace_id``, ``strategy``, ``chosen_index``,
    ``candidates`` (how many), ``attempts``, ``scores`` (the chosen candidate's
    score per policy, ``None`` where the judge failed), ``failed_policies``,
    ``vetoed_by``, ``degraded``, ``degraded_reasons`` and ``fallbacks`` (kinds).

    Example:
        >>> from ra_guard import Decision
        >>> from ra_guard.decision import Candidate, PolicyScore
        >>> chosen = Candidate(index=0, text="x", scores={"brief": PolicyScore(score=2, passed=False)})
        >>> decision_summary(Decision(chosen_index=0, candidates=[chosen], passed=False))["failed_policies"]
        ['brief']
    """
    chosen = decision.chosen
    return {
        "passed": decision.passed,
        "decision_id": decision.decision_id,
        "trace_id": decision.trace_id,
        "strategy": decision.strategy,
        "chosen_index": decision.chosen_index,
        "candidates": len(decision.candidates),
        "attempts": decision.attempts,
        "scores": {name: score.score for name, score in chosen.scores.items()},
        "failed_policies": [name for name, s in chosen.scores.items() if not s.passed or s.vetoed],
        "vetoed_by": [name for name, s in chosen.scores.items() if s.vetoed],
        "degraded": decision.degraded,
        "degraded_reasons": list(decision.degraded_reasons),
        "fallbacks": [f.kind for f in decision.fallbacks],
    }
