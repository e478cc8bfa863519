"""The compact decision summary that rides on a guarded message (and so in agent state and checkpoints).

A whole :class:`~ra_guard.decision.Decision` carries every candidate's text and
the judge's reasoning: kilobytes per turn, copied into every checkpoint of a
conversation. The message keeps only what an application reads back (who won,
with which scores, whether it passed) and the ids that find the rest: the
decision id (the audit log's key) and the trace id (the full decision in traces).

Example:
    >>> from ra_guard.decision import Candidate, Decision, PolicyScore
    >>> winner = Candidate(index=0, text="Hi", scores={"concise": PolicyScore(score=5)})
    >>> d = Decision(chosen_index=0, candidates=[winner])
    >>> DecisionSummary.of(d).scores
    {'concise': 5.0}
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage
from pydantic import BaseModel, ConfigDict

from ra_guard.decision import Decision

__all__ = ["DECISION_KEY", "DecisionSummary", "stamp", "summary_of"]

#: Key of the decision summary in a guarded message's ``response_metadata``.
DECISION_KEY = "ra_guard"


class DecisionSummary(BaseModel):
    """What a guarded message carries of its decision.

    Attributes:
        decision_id: The decision's id (the key of its audit log record).
        trace_id: The OpenTelemetry trace holding the whole decision, where one was recorded.
        chosen_index: The winner's index among the candidates.
        candidates: How many candidates were considered.
        attempts: Sampling rounds.
        passed: Whether the winner meets every policy's ``min_score``.
        degraded: Whether the decision was made with less than was asked (see ``Decision.degraded``).
        scores: The winner's score per policy (``None`` where its judge call failed).

    Example:
        >>> DecisionSummary(decision_id="d1", chosen_index=1, candidates=4, scores={"concise": 4.0}).passed
        True
    """

    model_config = ConfigDict(frozen=True)

    decision_id: str
    trace_id: str | None = None
    chosen_index: int
    candidates: int
    attempts: int = 1
    passed: bool = True
    degraded: bool = False
    scores: dict[str, float | None]

    @classmethod
    def of(cls, decision: Decision) -> DecisionSummary:
        """The summary of ``decision``."""
        chosen = decision.chosen
        return cls(
            decision_id=decision.decision_id,
            trace_id=decision.trace_id,
            chosen_index=decision.chosen_index,
            candidates=len(decision.candidates),
            attempts=decision.attempts,
            passed=decision.passed,
            degraded=decision.degraded,
            scores={name: score.score for name, score in chosen.scores.items()},
        )


def summary_of(message: BaseMessage, *, key: str = DECISION_KEY) -> DecisionSummary | None:
    """The decision summary a guarded call put on ``message``, or ``None`` for an unguarded message.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> summary_of(AIMessage("hi")) is None
        True
    """
    data = (message.response_metadata or {}).get(key)
    return DecisionSummary.model_validate(data) if isinstance(data, dict) else None


def stamp(message: Any, decision: Decision, *, key: str = DECISION_KEY) -> Any:
    """A copy of ``message`` with the decision's summary in its ``response_metadata``; other outputs unchanged."""
    if not isinstance(message, BaseMessage):
        return message
    summary = DecisionSummary.of(decision).model_dump(mode="json")
    return message.model_copy(update={"response_metadata": {**(message.response_metadata or {}), key: summary}})
