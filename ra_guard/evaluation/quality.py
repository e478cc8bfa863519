"""Judge quality on labelled rankings: pairwise accuracy, Kendall's tau and NDCG with bootstrap intervals.

Labelled items use the RABench layout, one JSON object a line::

    {"principle": "...", "prompt": "...", "responses": {"a": "...", "b": "..."}, "ranking": ["b", "a"]}

``responses`` may also be a list (names are then ``"0"``, ``"1"``...; the
ranking may give indexes); an optional ``"scores"`` (name -> number, higher is
better; a list beside a list of responses) gives graded labels, which then decide ties and NDCG's relevance;
without it the ranking does (the best of N is worth N, the worst 1).

The judge sees each item's principle, prompt and responses in one call (no
guard, no policy file: every item brings its principle). Each measure is
computed per item (see :mod:`ra_guard.evaluation.metrics`) and averaged, with a
percentile bootstrap interval over items.

Example:
    >>> from ra_guard.testing import FunctionJudge
    >>> item = labelled_item({"principle": "Be brief.", "prompt": "Hi", "responses": {"a": "Hello there!", "b": "Hi"},
    ...                       "ranking": ["b", "a"]}, line=1)
    >>> result = judge_quality([item], FunctionJudge(lambda r: {n: 5 - len(t) / 10 for n, t in r.responses.items()}))
    >>> result.summary["pairwise_accuracy"][0], result.summary["top1_accuracy"][0]
    (1.0, 1.0)
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ra_guard._redact import redact_secrets
from ra_guard._sync import run_sync
from ra_guard.evaluation.dataset import DatasetError, json_lines
from ra_guard.evaluation.metrics import bootstrap_interval, kendall_tau, ndcg, pairwise_accuracy, relevance_from_ranking
from ra_guard.judges.base import Judge, JudgeRequest

__all__ = [
    "LabelledItem",
    "QualityResult",
    "ajudge_quality",
    "judge_quality",
    "labelled_item",
    "read_labelled",
    "shipped_labelled_set",
]

logger = logging.getLogger("ra_guard")

#: The measures reported, in order: name -> what it is.
MEASURES = {
    "pairwise_accuracy": "pairs ordered as labelled",
    "kendall_tau": "Kendall's tau-b",
    "ndcg": "NDCG",
    "top1_accuracy": "best response chosen",
}


@dataclass(frozen=True)
class LabelledItem:
    """One labelled ranking.

    Attributes:
        line: 1-based line in the file.
        principle: The principle to judge by.
        prompt: The prompt the responses answer.
        responses: Name -> response text.
        relevance: Name -> labelled relevance (higher is better).
        meta: Every other field of the line.
    """

    line: int
    principle: str
    prompt: str
    responses: dict[str, str]
    relevance: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)


def labelled_item(data: object, *, line: int, file: str | Path = "<labelled>") -> LabelledItem:
    """Check one parsed line of a labelled file and build its :class:`LabelledItem`.

    Raises:
        DatasetError: A field is missing or the ranking does not name every response once.
    """
    if not isinstance(data, dict):
        raise DatasetError(file, line, f"expected a JSON object, got {type(data).__name__}")
    for name in ("principle", "prompt"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise DatasetError(file, line, f"needs a non-empty string '{name}'")
    raw = data.get("responses")
    if isinstance(raw, list):
        raw = {str(i): text for i, text in enumerate(raw)}
    if not isinstance(raw, dict) or len(raw) < 2 or not all(isinstance(t, str) for t in raw.values()):
        raise DatasetError(file, line, "'responses' must map names to texts (or list texts), two at least")
    responses = {str(k): v for k, v in raw.items()}
    ranking = [str(name) for name in data.get("ranking") or []]
    if sorted(ranking) != sorted(responses):
        raise DatasetError(
            file, line, f"'ranking' must name every response exactly once, best first: {sorted(responses)}"
        )
    scores = data.get("scores")
    if scores is not None:
        if isinstance(scores, list) and isinstance(data.get("responses"), list):
            scores = {str(i): value for i, value in enumerate(scores)}
        if not isinstance(scores, dict) or sorted(map(str, scores)) != sorted(responses):
            raise DatasetError(file, line, "'scores' must give a number for every response")
        relevance = {str(k): float(v) for k, v in scores.items()}
    else:
        relevance = relevance_from_ranking(ranking)
    meta = {k: v for k, v in data.items() if k not in ("principle", "prompt", "responses", "ranking", "scores")}
    return LabelledItem(
        line=line,
        principle=data["principle"],
        prompt=data["prompt"],
        responses=responses,
        relevance=relevance,
        meta=meta,
    )


def shipped_labelled_set() -> Path:
    """The small labelled set shipped with ra-guard: 16 rankings of 3 responses, each plainly ordered.

    Written by the ra-guard developers for smoke-testing a judge (a brief answer
    for "be concise", a refusal for "never reveal secrets"...): a judge that
    follows principles at all should get nearly all of it right. Too small and too
    easy to compare good judges; use RABench for that.

    Example:
        >>> len(read_labelled(shipped_labelled_set()))
        16
    """
    return Path(__file__).with_name("data") / "obvious_rankings.jsonl"


def read_labelled(path: str | Path) -> list[LabelledItem]:
    """Every item of a labelled JSONL file (blank lines skipped).

    Raises:
        DatasetError: A line is not JSON or not a valid labelled item.
    """
    return [labelled_item(data, line=number, file=path) for number, data in json_lines(path)]


@dataclass
class QualityResult:
    """A judge's figures on a labelled set.

    Attributes:
        judge: The judge's name.
        items: Per item: line, the judge's scores and ranking, and each measure (or the error).
        summary: Measure -> ``(mean, low, high)`` over items, at ``level``.
        level: The confidence level of the intervals.
        failed: Items whose judge call failed (left out of the figures).
    """

    judge: str
    items: list[dict[str, Any]]
    summary: dict[str, tuple[float, float, float]]
    level: float = 0.95
    failed: int = 0

    def table(self) -> str:
        """The figures as a text table."""
        judged = len(self.items) - self.failed
        lines = [
            f"judge {self.judge}: {judged} items judged, {self.failed} failed; {self.level:.0%} bootstrap intervals"
        ]
        for name, label in MEASURES.items():
            mean, low, high = self.summary[name]
            lines.append(f"  {label:28} {_f(mean)}  [{_f(low)}, {_f(high)}]")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The figures and items as JSON-ready data (``nan`` as ``None``)."""
        return {
            "judge": self.judge,
            "level": self.level,
            "failed": self.failed,
            "summary": {k: {"mean": _j(m), "low": _j(lo), "high": _j(hi)} for k, (m, lo, hi) in self.summary.items()},
            "items": self.items,
        }


def _f(value: float) -> str:
    return "   – " if math.isnan(value) else f"{value:5.3f}"


def _j(value: float) -> float | None:
    return None if math.isnan(value) else value


async def ajudge_quality(
    items: Sequence[LabelledItem],
    judge: Judge,
    *,
    concurrency: int = 4,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> QualityResult:
    """Judge every labelled item once and compute the measures with bootstrap intervals."""
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(item: LabelledItem) -> dict[str, Any]:
        request = JudgeRequest(principle=item.principle, prompt=item.prompt, responses=item.responses)
        async with limit:
            try:
                verdict = await judge.ajudge(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one failed item is reported, the rest still count
                message = redact_secrets(f"{type(exc).__name__}: {exc}")
                logger.warning("quality: line %d: the judge failed: %s", item.line, message)
                return {"line": item.line, "error": message}
        truth = item.relevance
        best = max(truth.values())
        return {
            "line": item.line,
            "scores": verdict.scores,
            "ranking": verdict.ranking,
            "pairwise_accuracy": pairwise_accuracy(verdict.scores, truth),
            "kendall_tau": kendall_tau(verdict.scores, truth),
            "ndcg": ndcg(verdict.ranking, truth),
            "top1_accuracy": 1.0 if truth[verdict.ranking[0]] == best else 0.0,
        }

    results = list(await asyncio.gather(*(one(item) for item in items)))
    judged = [r for r in results if "error" not in r]
    summary = {
        name: bootstrap_interval([r[name] for r in judged], resamples=resamples, level=level, seed=seed)
        for name in MEASURES
    }
    for result in results:  # JSON has no nan
        for name in MEASURES:
            if name in result and math.isnan(result[name]):
                result[name] = None
    return QualityResult(
        judge=judge.name, items=results, summary=summary, level=level, failed=len(results) - len(judged)
    )


def judge_quality(
    items: Sequence[LabelledItem],
    judge: Judge,
    *,
    concurrency: int = 4,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> QualityResult:
    """Synchronous :func:`ajudge_quality`."""
    return run_sync(ajudge_quality(items, judge, concurrency=concurrency, resamples=resamples, level=level, seed=seed))
