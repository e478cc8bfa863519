"""What a guard returns: a :class:`Decision` with every candidate and why one won.

Decisions are pydantic models: ``decision.model_dump_json()`` and
``Decision.model_validate_json(text)`` round-trip them exactly, for logs,
audit records and message metadata.

Example:
    >>> d = Decision(chosen_index=0, candidates=[Candidate(index=0, text="Hi")])
    >>> Decision.model_validate_json(d.model_dump_json()) == d
    True
    >>> d.text
    'Hi'
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from ra_guard._redact import redact_secrets
from ra_guard.types import Usage

__all__ = ["Candidate", "Decision", "Fallback", "PolicyScore", "decision_summary", "degraded_reasons"]

CandidateSource = Literal["sampled", "original", "given"]


class PolicyScore(BaseModel):
    """How one candidate fared under one policy.

    Attributes:
        score: The judge's score (1–5), or ``None`` where the judge call failed.
        rank: 0-based position in the judge's best-to-worst ranking.
        passed: Whether the score reaches the policy's ``min_score``.
        vetoed: Whether this policy vetoes the candidate (hard policies, or
            ``fail_closed`` on a judge error).
        reasoning: The judge's reasoning for the call that scored it.
        distribution: Probabilities of scores 1..5 where the judge mode gives them.
        error: The judge error, where the call failed.
        repairs: Repairs the judge applied to reach this verdict (``"code: detail"``,
            e.g. a fast-mode answer whose digit mass was too low, re-read by
            parsing). A note, not a fallback: the score stands.
    """

    model_config = ConfigDict(frozen=True)

    score: float | None = None
    rank: int | None = None
    passed: bool = True
    vetoed: bool = False
    reasoning: str = ""
    distribution: list[float] | None = None
    error: str | None = None
    repairs: list[str] = Field(default_factory=list)


class Candidate(BaseModel):
    """One response considered by the guard.

    Attributes:
        index: Position among all candidates of the decision (across attempts).
        text: The response text.
        source: ``sampled`` by the guard, the agent's ``original`` output, or ``given`` to rerank.
        attempt: Which attempt produced it (1-based).
        finish_reason: Why generation stopped, as the model said.
        usage: Tokens used to produce it.
        response_id: The provider's response id, where known.
        scores: Per policy name, its :class:`PolicyScore`.
        combined: The combined soft score used for ranking (``None`` if not judged).
        duplicate_of: Where this text repeats, character for character, an earlier
            candidate's (in the same judging round or an earlier one, such as a
            retry that answered the same again): that candidate's index. The judge
            saw the text once and both share its scores, veto included; ``None``
            otherwise.
    """

    model_config = ConfigDict(frozen=True)

    index: int
    text: str
    source: CandidateSource = "sampled"
    attempt: int = 1
    finish_reason: str | None = None
    usage: Usage = Usage()
    response_id: str | None = None
    scores: dict[str, PolicyScore] = Field(default_factory=dict)
    combined: float | None = None
    duplicate_of: int | None = None

    @property
    def vetoed(self) -> bool:
        """Whether any policy vetoes this candidate."""
        return any(s.vetoed for s in self.scores.values())


class Fallback(BaseModel):
    """Something that did not go as planned, and what the guard did instead.

    Attributes:
        kind: ``judge_error`` (the judge failed or its verdict was unusable),
            ``deadline``, ``budget`` or ``all_rejected`` (every candidate was vetoed
            and ``on_all_rejected="return_best"`` returned one anyway).
        policy: The policy concerned, if any.
        reason: What happened, in words.
        action: What the guard did (``ignored policy``, ``vetoed all``, ``kept best so far``...).
    """

    model_config = ConfigDict(frozen=True)

    kind: str
    policy: str | None = None
    reason: str
    action: str


def degraded_reasons(fallbacks: list[Fallback]) -> list[str]:
    """The fallbacks that make a decision degraded (every kind but ``all_rejected``), one line each.

    Example:
        >>> degraded_reasons([Fallback(kind="judge_error", policy="brief", reason="HTTP 404", action="ignored")])
        ['judge_error: brief: HTTP 404']
    """
    lines = (
        f"{f.kind}: {f.policy + ': ' if f.policy else ''}{f.reason}" for f in fallbacks if f.kind != "all_rejected"
    )
    return [redact_secrets(line) for line in lines]  # reasons quote errors, which may quote keys


class Decision(BaseModel):
    """The outcome of one guarded call.

    Attributes:
        decision_id: Unique id of this decision.
        chosen_index: Index of the winning candidate in ``candidates``.
        candidates: Every candidate considered, with per-policy scores.
        policies: Names of the policies applied, in order.
        strategy: ``best_of_n``, ``retry_with_feedback``, ``check`` or ``rerank``.
        attempts: How many sampling rounds ran.
        passed: Whether the winner meets every policy's ``min_score``.
        fallbacks: What fell back and why (each one is also logged as a WARNING
            on the ``ra_guard`` logger, rate-limited).
        degraded: Whether the decision was made with less than was asked for: any
            fallback other than ``all_rejected`` (a judge that did not answer under
            ``fail_open``, a deadline, a budget). A degraded decision may say
            ``passed=True`` about a policy nobody judged.
        degraded_reasons: One line per such fallback, ``"kind: [policy: ]reason"``, keys redacted.
        notes: Things worth knowing that changed nothing (content parts the judge
            could not read, repairs a judge applied, duplicate texts judged once).
        why: A sentence on why the winner won.
        sampling_usage: Tokens spent producing the sampled candidates (all of them).
        judge_usage: Tokens spent by every judge call.
        total_usage: ``sampling_usage + judge_usage``, the decision's whole spend.
        judge_calls: Judge calls made.
        latency_s: Wall time of the decision, seconds.
        trace_id: The OpenTelemetry trace id (hex), where a trace was recorded.
        shadow: Whether a :class:`~ra_guard.shadow.ShadowGuard` made it: judged and
            recorded only, never served (the caller kept its own output).
    """

    model_config = ConfigDict(frozen=True)

    decision_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    chosen_index: int
    candidates: list[Candidate]
    policies: list[str] = Field(default_factory=list)
    strategy: str = "best_of_n"
    attempts: int = 1
    passed: bool = True
    fallbacks: list[Fallback] = Field(default_factory=list)
    degraded: bool = False
    degraded_reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    why: str = ""
    sampling_usage: Usage = Usage()
    judge_usage: Usage = Usage()
    judge_calls: int = 0
    latency_s: float = 0.0
    trace_id: str | None = None
    shadow: bool = False

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_usage(self) -> Usage:
        """Tokens spent by the whole decision: every candidate sampled and every judge call."""
        return self.sampling_usage + self.judge_usage

    @property
    def chosen(self) -> Candidate:
        """The winning candidate."""
        return self.candidates[self.chosen_index]

    @property
    def text(self) -> str:
        """The winning candidate's text."""
        return self.chosen.text

    @property
    def vetoes(self) -> dict[str, list[int]]:
        """Per policy, the indexes of candidates it vetoed."""
        out: dict[str, list[int]] = {}
        for c in self.candidates:
            for name, s in c.scores.items():
                if s.vetoed:
                    out.setdefault(name, []).append(c.index)
        return out


def decision_summary(decision: Decision) -> dict[str, Any]:
    """The outcome of ``decision`` without candidate texts or judge reasoning.

    Keys: ``passed``, ``decision_id``, ``trace_id``, ``strategy``, ``chosen_index``,
    ``candidates`` (how many), ``attempts``, ``scores`` (the chosen candidate's
    score per policy, ``None`` where the judge failed), ``failed_policies``,
    ``vetoed_by``, ``degraded``, ``degraded_reasons`` and ``fallbacks`` (kinds).

    What an adapter hands a framework (a guardrail's ``output_info``, a trace
    span, a message's metadata): the full decision, with every candidate's text
    and the judge's reasoning, stays in ra-guard's traces and audit log, and a
    vetoed answer never leaks through the summary.

    Example:
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
