"""Candidates while a decision is being made: their entries, score rows, verdict checks and order.

The decision engine (:mod:`ra_guard.engine`) keeps one :class:`Entry` per
candidate. A judge's verdict is first checked (:func:`check_verdict`), then
written into the entries as one :class:`ScoreRow` per candidate and policy
(:func:`record_verdict`, or :func:`record_failure` where the judge failed);
:func:`rank` recomputes what choosing reads (combined score, veto, sort key),
and :func:`explain` says why the chosen one won. :func:`usable_answer` sorts
what a judging round got back per request (a verdict, an error, a missed
deadline) into a usable verdict or a :class:`Failure`. Nothing here does I/O, traces
or logs: the engine does that around these steps.

Example:
    >>> from ra_guard.policy import Policy
    >>> from ra_guard.types import Sample
    >>> entries = [Entry.new(0, Sample(text="hi"), "given", 1), Entry.new(1, Sample(text="hello"), "given", 1)]
    >>> verdict = Verdict(scores={"candidate-0": 5.0, "candidate-1": 2.0}, ranking=["candidate-0", "candidate-1"])
    >>> check_verdict(verdict, [e.name for e in entries], judge="j") is None
    True
    >>> record_verdict(Policy(name="brief", principle="Be brief."), entries, verdict)
    >>> rank(entries, pools=([("brief", 1.0)], []), may_veto=False)
    >>> min(entries, key=lambda e: e.key).index
    0
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypedDict

from ra_guard.decision import CandidateSource
from ra_guard.exceptions import JudgeError, JudgeOutputError, JudgeTimeoutError
from ra_guard.policy import Policy
from ra_guard.types import Sample
from ra_guard.verdict import Verdict

__all__ = [
    "SCORE_RANGE",
    "Answer",
    "Entry",
    "Failure",
    "Missed",
    "ScoreRow",
    "candidate_fields",
    "check_verdict",
    "explain",
    "rank",
    "record_failure",
    "record_verdict",
    "repeat_note",
    "repeats",
    "reusable",
    "split_repeats",
    "usable_answer",
]

#: The RewardAnything score scale: a verdict outside it is a judge error.
SCORE_RANGE = (1.0, 5.0)

#: Policies that rank candidates, as (name, weight): the soft ones, then the hard ones (see :func:`rank`).
Pools = tuple[list[tuple[str, float]], list[tuple[str, float]]]


class ScoreRow(TypedDict):
    """One candidate under one policy while deciding: the :class:`~ra_guard.decision.PolicyScore` fields.

    A plain dict, not an object, so that the engine hands it to the one
    validation of the whole decision as it is (no copy per candidate and
    policy). Treated as frozen once made: a copy of a text shares its first's.
    """

    score: float | None
    rank: int | None
    passed: bool
    vetoed: bool
    reasoning: str
    distribution: list[float] | None
    error: str | None
    # A tuple, not a list: a row of atomic values only is a dict the cyclic collector never
    # tracks (at 1,024 candidates, thousands fewer objects for it to walk); validation makes the list.
    repairs: tuple[str, ...]


@dataclass(slots=True)
class Entry:
    """A candidate while the decision is being made (mutable; frozen into a ``Candidate`` at the end).

    Example:
        >>> Entry.new(3, Sample(text="x"), "sampled", 1).name
        'candidate-3'
    """

    index: int
    name: str  # what judges call it (``candidate-{index}``), made once
    sample: Sample
    source: CandidateSource
    attempt: int
    scores: dict[str, ScoreRow] = field(default_factory=dict)
    rank_fraction: dict[str, float] = field(default_factory=dict)
    duplicate_of: int | None = None
    combined: float | None = None
    vetoed: bool = False
    # Best first when sorted: (-combined, mean rank fraction, index); made by rank(), not per look.
    key: tuple[float, float, int] = (0.0, 1.0, 0)

    @staticmethod
    def new(index: int, sample: Sample, source: CandidateSource, attempt: int) -> Entry:
        """A candidate not judged yet: no score, the worst mean rank."""
        # Positional, every field: this runs per candidate.
        return Entry(index, f"candidate-{index}", sample, source, attempt, {}, {}, None, None, False, (0.0, 1.0, index))


def candidate_fields(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """The :class:`~ra_guard.decision.Candidate` fields of ``entries``, as plain data for the decision's one validation.

    Example:
        >>> candidate_fields([Entry.new(0, Sample(text="x"), "given", 1)])[0]["text"]
        'x'
    """
    fields: list[dict[str, Any]] = []
    for entry in entries:  # a plain loop: no method call per candidate
        sample = entry.sample
        fields.append(
            {
                "index": entry.index,
                "text": sample.text,
                "source": entry.source,
                "attempt": entry.attempt,
                "finish_reason": sample.finish_reason,
                "usage": sample.usage,
                "response_id": sample.response_id,
                "scores": entry.scores,
                "combined": entry.combined,
                "duplicate_of": entry.duplicate_of,
            }
        )
    return fields


def check_verdict(verdict: object, names: Sequence[str], *, judge: str) -> JudgeOutputError | None:
    """Why ``verdict`` cannot be used for ``names``, or ``None`` when it can.

    Every name must have a finite score within :data:`SCORE_RANGE`.

    Example:
        >>> check_verdict(Verdict(scores={"a": 99.0}, ranking=["a"]), ["a"], judge="j").reason
        'score_out_of_range'
    """
    if not isinstance(verdict, Verdict):
        return JudgeOutputError(
            "not_a_verdict", f"the judge returned {type(verdict).__name__}, not a Verdict", raw_text="", judge=judge
        )
    scores = verdict.scores
    low, high = SCORE_RANGE
    # The usual verdict, in one pass: every name scored within the scale (NaN fails the comparison).
    # A plain loop: this runs per judge call, and a generator costs more than the checks at small N.
    nan = math.nan
    for name in names:
        if not low <= scores.get(name, nan) <= high:
            break
    else:
        return None
    for name in names:
        if name not in scores:
            missing = ", ".join(n for n in names if n not in scores)
            return JudgeOutputError(
                "missing_candidate", f"verdict has no score for {missing}", raw_text=verdict.raw_text, judge=judge
            )
        score = scores[name]
        if not math.isfinite(score):
            return JudgeOutputError(
                "score_not_finite", f"{name} scored {score!r}", raw_text=verdict.raw_text, judge=judge
            )
        if not low <= score <= high:
            return JudgeOutputError(
                "score_out_of_range",
                # repr, not :g: 5.0000001 must not read as "5", a score inside the scale
                f"{name} scored {score!r}, outside the scale {low:g}..{high:g}",
                raw_text=verdict.raw_text,
                judge=judge,
            )
    return None


class Missed(enum.Enum):
    """An answer a judging round has in place of a verdict that never came."""

    DEADLINE = "the decision's deadline passed"


#: What a judging round holds for one request: a verdict, the error it failed with, or a missed deadline.
Answer = Verdict | BaseException | Missed


class Failure(NamedTuple):
    """Why a request's answer cannot be used: the error traced, the fallback kind, the reason recorded."""

    error: BaseException
    kind: str
    reason: str


def usable_answer(answer: Answer, names: Sequence[str], *, judge: str) -> Verdict | Failure:
    """The answer where it is a verdict fit for ``names``; otherwise why not, as a :class:`Failure`.

    Example:
        >>> usable_answer(Missed.DEADLINE, ["a"], judge="j").kind
        'deadline'
    """
    if answer is Missed.DEADLINE:
        timeout = JudgeTimeoutError(answer.value, judge=judge)
        return Failure(timeout, "deadline", str(timeout))
    if isinstance(answer, BaseException):
        if isinstance(answer, (KeyboardInterrupt, SystemExit)):
            raise answer
        # A judge bug (not a JudgeError) must not lose the request either: it fails like one.
        reason = str(answer) if isinstance(answer, JudgeError) else f"judge raised {answer!r}"
        return Failure(answer, "judge_error", reason)
    # Checked for every judge: the parser keeps to the scale, a third-party judge might not.
    problem = check_verdict(answer, names, judge=judge)  # also a JudgeOutputError where it is no Verdict
    if problem is not None or not isinstance(answer, Verdict):
        error = problem or JudgeError(f"{judge} answered {type(answer).__name__}", judge=judge)
        return Failure(error, "judge_error", str(error))
    return answer


def record_verdict(policy: Policy, entries: Sequence[Entry], verdict: Verdict) -> None:
    """Write a checked verdict for ``entries`` under ``policy`` into their score rows."""
    size = max(1, len(entries) - 1)
    # Built here rather than through Verdict.ranks: a cached_property takes a lock per first read on 3.11.
    ranks = {name: position for position, name in enumerate(verdict.ranking)}
    unranked = len(verdict.ranking)
    scores = verdict.scores
    distributions = verdict.distributions
    repairs = tuple(verdict.repairs)  # () where none: the empty tuple, shared by every row
    min_score = policy.min_score
    hard = policy.is_hard
    policy_name = policy.name
    # Each row starts as a copy of this one: a dict copy and the few keys that vary cost less
    # than a literal of eight keys, per candidate and policy.
    template: ScoreRow = {
        "score": None,
        "rank": None,
        "passed": True,
        "vetoed": False,
        "reasoning": verdict.reasoning,
        "distribution": None,
        "error": None,
        "repairs": repairs,  # shared: validation makes a list of it for each PolicyScore
    }
    for entry in entries:
        name = entry.name
        score = scores[name]
        position = ranks.get(name, unranked)
        row = template.copy()
        row["score"] = score
        row["rank"] = position
        if score < min_score:  # a checked verdict's scores are finite: the same as not >=
            row["passed"] = False
            row["vetoed"] = hard
        if distributions is not None:
            row["distribution"] = distributions.get(name)
        entry.scores[policy_name] = row
        entry.rank_fraction[policy_name] = position / size


def record_failure(policy: Policy, entries: Sequence[Entry], reason: str) -> bool:
    """Write the rows of a judge call that failed, by the policy's ``on_judge_error``; ``True`` if they veto."""
    closed = policy.on_judge_error == "fail_closed"
    for entry in entries:
        entry.scores[policy.name] = {
            "score": None,
            "rank": None,
            "passed": not closed,
            "vetoed": closed,
            "reasoning": "",
            "distribution": None,
            "error": reason,
            "repairs": (),
        }
    return closed


def rank(changed: Sequence[Entry], *, pools: Pools, may_veto: bool) -> None:
    """Recompute entries' combined score, veto and sort key after their scores changed.

    The combined score is the weighted mean over the first pool with a score
    (soft policies; hard ones only where no soft policy scored). ``may_veto``
    false (no hard policy, no fail_closed failure) skips looking for vetoes.
    """
    # Runs per candidate after each judge round: plain loops, no generators, lookups hoisted.
    for entry in changed:
        scores = entry.scores
        vetoed = False
        if may_veto:
            for row in scores.values():
                if row["vetoed"]:
                    vetoed = True
                    break
        entry.vetoed = vetoed
        combined = None
        for pool in pools:
            total = weights = 0.0
            for name, weight in pool:
                held = scores.get(name)
                if held is not None and (score := held["score"]) is not None:
                    total += weight * score
                    weights += weight
            if weights:
                combined = total / weights
                break
        entry.combined = combined
        fractions = entry.rank_fraction
        mean_rank = sum(fractions.values()) / len(fractions) if fractions else 1.0
        entry.key = (-combined if combined is not None else 0.0, mean_rank, entry.index)


def reusable(entry: Entry, policies: int) -> bool:
    """Whether a candidate's judgement can stand for a later copy of its text.

    It can where every one of the ``policies`` gave it a verdict; a policy whose
    judge call failed (or was skipped by the budget) judged nothing, so a copy is
    sent again.

    Example:
        >>> reusable(Entry.new(0, Sample(text="x"), "given", 1), 1)
        False
    """
    scores = entry.scores
    return len(scores) == policies and all(row["error"] is None for row in scores.values())


def split_repeats(
    entries: Sequence[Entry], indexes: Sequence[int], judged: Mapping[str, int], policies: int
) -> tuple[list[int], dict[int, list[int]]]:
    """Sort a judging round into the candidates to send and the copies that share a judgement.

    A candidate whose text equals, character for character, that of an earlier
    one in ``indexes``, or of a candidate judged in an earlier round (``judged``:
    text -> index, used where :func:`reusable`), is a copy: it is not sent, and
    its ``duplicate_of`` names the candidate whose scores it will share. A
    candidate of an earlier round asked for again (``BestOfN`` in ``check``
    judges the agent's output beside its alternatives) is judged again.

    Returns:
        The indexes to send, in order, and the copies by the index they repeat.

    Example:
        >>> entries = [Entry.new(i, Sample(text=t), "given", 1) for i, t in enumerate(["a", "b", "a"])]
        >>> split_repeats(entries, [0, 1, 2], {}, 1)
        ([0, 1], {0: [2]})
    """
    in_round = set(indexes) if judged else frozenset()
    first_of: dict[str, int] = {}
    distinct: list[int] = []
    copies: dict[int, list[int]] = {}
    for i in indexes:
        entry = entries[i]
        text = entry.sample.text
        first = first_of.get(text)
        if first is None:
            earlier = judged.get(text)
            if earlier is None or earlier in in_round or not reusable(entries[earlier], policies):
                first_of[text] = i
                distinct.append(i)
                entry.duplicate_of = None
                continue
            first = first_of[text] = earlier
        entry.duplicate_of = first
        copies.setdefault(first, []).append(i)
    return distinct, copies


def repeats(entries: Sequence[Entry]) -> dict[int, list[int]]:
    """The candidates that repeat another's text, by the index of the one whose scores they share.

    Example:
        >>> entries = [Entry.new(i, Sample(text="a"), "given", 1) for i in range(3)]
        >>> entries[1].duplicate_of = entries[2].duplicate_of = 0
        >>> repeats(entries)
        {0: [1, 2]}
    """
    copies: dict[int, list[int]] = {}
    for e in entries:
        if e.duplicate_of is not None:
            copies.setdefault(e.duplicate_of, []).append(e.index)
    return copies


def _listed(indexes: Sequence[int]) -> str:
    """``candidate 2 repeats`` or ``candidates 1, 3 repeat``: the copies as the subject of a sentence."""
    if len(indexes) == 1:
        return f"candidate {indexes[0]} repeats"
    return f"candidates {', '.join(map(str, indexes))} repeat"


def repeat_note(first: int, same: Sequence[int]) -> str:
    """The decision note for the copies of candidate ``first``'s text.

    Example:
        >>> repeat_note(0, [2])
        "candidate 2 repeats candidate 0's text exactly: judged once, scores shared"
    """
    return f"{_listed(same)} candidate {first}'s text exactly: judged once, scores shared"


def explain(entries: Sequence[Entry], best: int, reasons: Sequence[str], copies: Mapping[int, list[int]]) -> str:
    """The decision's ``why``: the winner's scores, vetoes, repeated texts (``copies``) and what degraded it."""
    chosen = entries[best]
    if len(entries) == 1:
        head = f"candidate {best} was the only candidate"
    elif chosen.combined is None:
        head = f"candidate {best} was chosen without scores (every judge call failed or was skipped)"
    else:
        head = f"candidate {best} had the best combined score {chosen.combined:.2f}"
    parts = ", ".join(f"{name} {s['score']:.3g}" for name, s in chosen.scores.items() if s["score"] is not None)
    why = head + (f" ({parts})" if parts else "")
    vetoed = [e.index for e in entries if e.vetoed]
    if vetoed:
        why += f"; vetoed: {vetoed}"
    for first, same in copies.items():
        why += f"; {_listed(same)} candidate {first}'s text (judged once)"
    if reasons:
        why += f"; degraded: {'; '.join(reasons)}"
    return why
