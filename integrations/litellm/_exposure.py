"""What of a decision may leave the litellm proxy: a summary without texts, candidates only on opt-in.

A decision holds every candidate's text and the judge's reasoning (which may
quote them). The client asked for one answer; the others, and above all a
text that a policy vetoed, are not its to read. So the proxy sends a
*client view*: scores, outcome and ids, no text. An operator who wants the
alternatives in the response sets ``expose_candidates: true``; even then a
vetoed candidate's text is withheld.

Example:
    >>> from ra_guard.decision import Candidate, Decision, PolicyScore
    >>> decision = Decision(chosen_index=0, policies=["polite"], candidates=[
    ...     Candidate(index=0, text="Sure.", source="original", scores={"polite": PolicyScore(score=4)})])
    >>> view = client_view(decision, expose_candidates=False)
    >>> view["passed"], view["scores"]["polite"]["score"], "candidates" in view
    (True, 4.0, False)
"""

from __future__ import annotations

from typing import Any

from ra_guard.decision import Candidate, Decision

__all__ = ["VETOED_PLACEHOLDER", "client_view", "failed_policies", "safe_why", "vetoed"]

#: Stands in for a vetoed candidate's text where candidates are exposed.
VETOED_PLACEHOLDER = "[withheld: vetoed by a policy]"


def vetoed(candidate: Candidate) -> bool:
    """Whether any hard policy vetoed ``candidate``."""
    return any(score.vetoed for score in candidate.scores.values())


def failed_policies(candidate: Candidate) -> list[str]:
    """The policies ``candidate`` fails (below ``min_score``, or vetoed), sorted."""
    return sorted(name for name, score in candidate.scores.items() if not score.passed or score.vetoed)


def _scores(candidate: Candidate) -> dict[str, dict[str, Any]]:
    return {
        name: {"score": score.score, "passed": score.passed, "vetoed": score.vetoed}
        for name, score in candidate.scores.items()
    }


def _number(value: float | None) -> str:
    return "not judged" if value is None else f"{value:g}"


def safe_why(decision: Decision) -> str:
    """Why the winner won, from numbers only.

    ``Decision.why`` also lists the degraded reasons, which quote errors, which
    can quote a judge's raw output and so the candidates: not for the client.

    Example:
        >>> from ra_guard.decision import Candidate, Decision, PolicyScore
        >>> safe_why(Decision(chosen_index=0, candidates=[
        ...     Candidate(index=0, text="Hi", source="original", scores={"polite": PolicyScore(score=4)})]))
        'candidate 0 (original) of 1 chosen: polite 4'
    """
    chosen = decision.chosen
    scores = ", ".join(f"{name} {_number(score.score)}" for name, score in chosen.scores.items())
    why = f"candidate {decision.chosen_index} ({chosen.source}) of {len(decision.candidates)} chosen: {scores}"
    if failed := failed_policies(chosen):
        why += f"; fails {', '.join(failed)}"
    if decision.degraded:
        why += f"; degraded ({', '.join(sorted({f.kind for f in decision.fallbacks if f.kind != 'all_rejected'}))})"
    return why


def client_view(decision: Decision, *, expose_candidates: bool, group_id: str | None = None) -> dict[str, Any]:
    """The decision as the client may see it: no candidate text, no judge reasoning.

    Args:
        decision: The guard's decision.
        expose_candidates: Also list the candidates with their texts (vetoed
            ones withheld) and scores: the operator's opt-in.
        group_id: The id the candidate calls carried in their litellm
            ``metadata`` (``ra_guard_group_id``), to join them to this decision.

    Returns:
        A JSON-able dict: ``decision_id``, ``passed``, ``strategy``,
        ``chosen_index``, ``chosen_source``, ``policies``, ``failed_policies``,
        ``scores`` (the chosen candidate's, per policy), ``why``, ``attempts``,
        ``candidates_considered``, ``judge_calls``, ``degraded``,
        ``fallback_kinds``, ``latency_s``, ``trace_id``, ``group_id``, and with
        ``expose_candidates`` a ``candidates`` list.
    """
    chosen = decision.chosen
    view: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "passed": decision.passed,
        "strategy": decision.strategy,
        "chosen_index": decision.chosen_index,
        "chosen_source": chosen.source,
        "policies": list(decision.policies),
        "failed_policies": failed_policies(chosen),
        "scores": _scores(chosen),
        "why": safe_why(decision),
        "attempts": decision.attempts,
        "candidates_considered": len(decision.candidates),
        "judge_calls": decision.judge_calls,
        "degraded": decision.degraded,
        # Kinds only: a fallback's reason can quote a judge's raw output, which can quote a candidate.
        "fallback_kinds": sorted({fallback.kind for fallback in decision.fallbacks}),
        "latency_s": round(decision.latency_s, 4),
        "trace_id": decision.trace_id,
        "group_id": group_id,
    }
    if expose_candidates:
        view["candidates"] = [
            {
                "index": candidate.index,
                "source": candidate.source,
                "text": VETOED_PLACEHOLDER if vetoed(candidate) else candidate.text,
                "vetoed": vetoed(candidate),
                "combined": candidate.combined,
                "scores": _scores(candidate),
            }
            for candidate in decision.candidates
        ]
    return view
