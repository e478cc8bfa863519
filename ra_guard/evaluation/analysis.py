"""The figures of an evaluation report, computed from a run directory's results.

:func:`analyse` reads ``run.json`` and ``results.jsonl`` and returns plain
data: per judge and policy the score distribution, pass and veto rates; per
pair of judges how often they pick the same winner and how their rankings
agree (Kendall's tau); per judge judged in several orders how consistent its
winner is (position bias). Each figure keeps the examples behind it.
Candidates are compared by their index in the dataset, whatever order a judge
saw them in.

Example:
    >>> import tempfile
    >>> from ra_guard.testing import FunctionJudge
    >>> from ra_guard.evaluation.dataset import EvalItem
    >>> from ra_guard.evaluation.run import evaluate
    >>> judge = FunctionJudge(lambda r: {n: 5 - len(t) / 10 for n, t in r.responses.items()})
    >>> items = [EvalItem(key="q1", line=1, prompt="Hi", candidates=["Hello", "Hello there"])]
    >>> out = tempfile.mkdtemp()
    >>> _ = evaluate(items, policies=["concise"], judges=[judge], out=out, progress=False, report=False)
    >>> [(s.policy, s.candidates) for s in analyse(out).judges[0].policies]
    [('concise', 2)]
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from ra_guard.evaluation.metrics import kendall_tau
from ra_guard.evaluation.store import RUN_FILE, ResultStore

__all__ = ["Agreement", "Analysis", "JudgeStats", "PolicyStats", "PositionBias", "analyse", "score_bins"]

#: How many examples each figure keeps.
EXAMPLES = 5

Example = dict[str, Any]


def score_bins(scores: list[float]) -> list[tuple[str, int]]:
    """Counts of scores in half-point bins from 1 to 5 (the last bin holds 5.0).

    Example:
        >>> score_bins([1.0, 1.2, 4.9, 5.0])[0], score_bins([1.0, 1.2, 4.9, 5.0])[-1]
        (('1.0', 2), ('4.5', 2))
    """
    edges = [1.0 + 0.5 * i for i in range(8)]
    counts = [0] * len(edges)
    for score in scores:
        position = min(len(edges) - 1, max(0, int((score - 1.0) // 0.5)))
        counts[position] += 1
    return [(f"{edge:.1f}", count) for edge, count in zip(edges, counts, strict=True)]


@dataclass
class PolicyStats:
    """One judge's scores under one policy (the first presentation order of every item)."""

    judge: str
    policy: str
    scores: list[float] = field(default_factory=list)
    candidates: int = 0
    passed: int = 0
    vetoed: int = 0
    unscored: int = 0
    lowest: list[Example] = field(default_factory=list)
    highest: list[Example] = field(default_factory=list)
    vetoed_examples: list[Example] = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        """Share of candidates that reach the policy's ``min_score``."""
        return self.passed / self.candidates if self.candidates else math.nan

    @property
    def veto_rate(self) -> float:
        """Share of candidates the policy vetoes."""
        return self.vetoed / self.candidates if self.candidates else math.nan

    @property
    def mean(self) -> float:
        """The mean score (``nan`` with none)."""
        return sum(self.scores) / len(self.scores) if self.scores else math.nan


@dataclass
class JudgeStats:
    """One judge over the run: decisions, failures, and its :class:`PolicyStats`."""

    label: str
    decisions: int = 0
    decisions_passed: int = 0
    degraded: int = 0
    failed: int = 0
    policies: list[PolicyStats] = field(default_factory=list)
    failures: list[Example] = field(default_factory=list)


@dataclass
class Agreement:
    """How two judges agree on the same items (first presentation order)."""

    first: str
    second: str
    items: int = 0
    same_winner: int = 0
    taus: list[float] = field(default_factory=list)
    disagreements: list[Example] = field(default_factory=list)

    @property
    def winner_agreement(self) -> float:
        """Share of items where both judges chose the same candidate."""
        return self.same_winner / self.items if self.items else math.nan

    @property
    def mean_tau(self) -> float:
        """Mean Kendall's tau between the two judges' combined scores."""
        clean = [t for t in self.taus if not math.isnan(t)]
        return sum(clean) / len(clean) if clean else math.nan


@dataclass
class PositionBias:
    """One judge, judged in several presentation orders: does its winner stay the same?"""

    judge: str
    orders: int
    items: int = 0
    consistent: int = 0
    taus: list[float] = field(default_factory=list)
    winner_positions: dict[int, int] = field(default_factory=dict)
    inconsistent: list[Example] = field(default_factory=list)

    @property
    def consistency(self) -> float:
        """Share of items whose winner is the same candidate in every order."""
        return self.consistent / self.items if self.items else math.nan

    @property
    def mean_tau(self) -> float:
        """Mean Kendall's tau between the combined scores of two orders of the same item."""
        clean = [t for t in self.taus if not math.isnan(t)]
        return sum(clean) / len(clean) if clean else math.nan


@dataclass
class Analysis:
    """Everything the report shows."""

    settings: dict[str, Any]
    items: int
    judges: list[JudgeStats]
    agreements: list[Agreement]
    position_bias: list[PositionBias]


def _original(record: dict[str, Any], index: int) -> int:
    positions: list[int] = record.get("positions") or []
    return positions[index] if index < len(positions) else index


def _combined(record: dict[str, Any]) -> dict[str, float]:
    """Dataset index (as text) -> combined score, for the judged candidates of a record."""
    return {
        str(_original(record, c["index"])): float(c["combined"])
        for c in record["decision"]["candidates"]
        if c.get("combined") is not None
    }


def _winner(record: dict[str, Any]) -> int:
    return _original(record, int(record["decision"]["chosen_index"]))


def _example(record: dict[str, Any], **extra: Any) -> Example:
    return {"key": record["key"], "line": record.get("line"), "prompt": record.get("prompt", ""), **extra}


def analyse(run_dir: str | Path) -> Analysis:
    """Compute the report's figures from a run directory."""
    run_dir = Path(run_dir)
    settings_path = run_dir / RUN_FILE
    settings: dict[str, Any] = (
        json.loads(settings_path.read_text(encoding="utf-8")) if settings_path.exists() else {"judges": []}
    )
    records = list(ResultStore(run_dir).load().values())
    labels: list[str] = list(settings.get("judges") or sorted({r["judge"] for r in records}))
    by_task: dict[tuple[str, str, int], dict[str, Any]] = {}
    judges = {label: JudgeStats(label=label) for label in labels}
    for record in records:
        stats = judges.setdefault(record["judge"], JudgeStats(label=record["judge"]))
        if not record.get("ok"):
            stats.failed += 1
            if len(stats.failures) < EXAMPLES:
                stats.failures.append(_example(record, error=record.get("error", "")))
            continue
        by_task[(record["key"], record["judge"], int(record["order"]))] = record
    keys = sorted({key for key, _, _ in by_task})
    for label, stats in judges.items():
        _judge_stats(stats, [by_task[(k, label, 0)] for k in keys if (k, label, 0) in by_task])
    agreements = [_agreement(a, b, keys, by_task) for a, b in combinations(list(judges), 2)]
    orders = int(settings.get("permutations") or 1)
    bias = [_position_bias(label, orders, keys, by_task) for label in judges] if orders > 1 else []
    return Analysis(
        settings=settings, items=len(keys), judges=list(judges.values()), agreements=agreements, position_bias=bias
    )


def _judge_stats(stats: JudgeStats, records: list[dict[str, Any]]) -> None:
    per_policy: dict[str, PolicyStats] = {}
    scored: dict[str, list[tuple[float, Example]]] = defaultdict(list)
    for record in records:
        decision = record["decision"]
        stats.decisions += 1
        stats.decisions_passed += bool(decision.get("passed"))
        stats.degraded += bool(decision.get("degraded"))
        for policy in decision.get("policies", []):
            per_policy.setdefault(policy, PolicyStats(judge=stats.label, policy=policy))
        for candidate in decision["candidates"]:
            for policy, score in candidate.get("scores", {}).items():
                policy_stats = per_policy.setdefault(policy, PolicyStats(judge=stats.label, policy=policy))
                policy_stats.candidates += 1
                policy_stats.passed += bool(score.get("passed"))
                example = _example(
                    record,
                    candidate=_original(record, candidate["index"]),
                    text=candidate["text"],
                    score=score.get("score"),
                    reasoning=score.get("reasoning", ""),
                    error=score.get("error"),
                )
                if score.get("vetoed"):
                    policy_stats.vetoed += 1
                    if len(policy_stats.vetoed_examples) < EXAMPLES:
                        policy_stats.vetoed_examples.append(example)
                if score.get("score") is None:
                    policy_stats.unscored += 1
                    continue
                policy_stats.scores.append(float(score["score"]))
                scored[policy].append((float(score["score"]), example))
    for policy, policy_stats in per_policy.items():
        ranked = sorted(scored[policy], key=lambda pair: pair[0])
        policy_stats.lowest = [example for _, example in ranked[:EXAMPLES]]
        policy_stats.highest = [example for _, example in reversed(ranked[-EXAMPLES:])]
    stats.policies = list(per_policy.values())


def _texts(record: dict[str, Any]) -> list[str]:
    candidates: list[str] = record.get("candidates") or []
    return candidates


def _agreement(
    first: str, second: str, keys: list[str], by_task: dict[tuple[str, str, int], dict[str, Any]]
) -> Agreement:
    agreement = Agreement(first=first, second=second)
    for key in keys:
        a, b = by_task.get((key, first, 0)), by_task.get((key, second, 0))
        if a is None or b is None:
            continue
        agreement.items += 1
        winner_a, winner_b = _winner(a), _winner(b)
        tau = _tau(_combined(a), _combined(b))
        agreement.taus.append(tau)
        if winner_a == winner_b:
            agreement.same_winner += 1
        elif len(agreement.disagreements) < EXAMPLES:
            texts = _texts(a)
            agreement.disagreements.append(
                _example(
                    a,
                    winners={first: _text_at(texts, winner_a), second: _text_at(texts, winner_b)},
                    tau=tau,
                )
            )
    return agreement


def _text_at(texts: list[str], index: int) -> str:
    return texts[index] if 0 <= index < len(texts) else f"candidate {index}"


def _tau(first: dict[str, float], second: dict[str, float]) -> float:
    common = [k for k in first if k in second]
    if len(common) < 2:
        return math.nan
    return kendall_tau({k: first[k] for k in common}, {k: second[k] for k in common})


def _position_bias(
    label: str, orders: int, keys: list[str], by_task: dict[tuple[str, str, int], dict[str, Any]]
) -> PositionBias:
    bias = PositionBias(judge=label, orders=orders)
    for key in keys:
        records = [by_task.get((key, label, order)) for order in range(orders)]
        present = [r for r in records if r is not None]
        if len(present) < 2:
            continue
        bias.items += 1
        winners = [_winner(r) for r in present]
        for record in present:
            shown_at = int(record["decision"]["chosen_index"])  # the winner's place in the order the judge saw
            bias.winner_positions[shown_at] = bias.winner_positions.get(shown_at, 0) + 1
        for a, b in combinations(present, 2):
            bias.taus.append(_tau(_combined(a), _combined(b)))
        if len(set(winners)) == 1:
            bias.consistent += 1
        elif len(bias.inconsistent) < EXAMPLES:
            texts = _texts(present[0])
            bias.inconsistent.append(
                _example(
                    present[0],
                    winners=[
                        f"order {r['order']}: {_text_at(texts, w)}" for r, w in zip(present, winners, strict=True)
                    ],
                )
            )
    return bias
