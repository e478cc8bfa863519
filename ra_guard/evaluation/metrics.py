"""Ranking agreement measures: pairwise accuracy, Kendall's tau, NDCG, and bootstrap intervals.

The measures the RewardAnything paper reports on RABench, for one labelled
item at a time; :func:`bootstrap_interval` turns per-item values into a mean
with a confidence interval. All pure Python, no numpy.

- **Pairwise accuracy**: of the pairs the labels order strictly, the share the
  judge orders the same way (a tie in the judge's scores counts half).
- **Kendall's tau** (tau-b, so ties on either side are allowed): from -1
  (reversed) through 0 (unrelated) to 1 (the same order).
- **NDCG**: the judge's ranking scored by the labels' graded relevance, with
  gain ``rel`` and discount ``1/log2(position + 1)``, divided by the best
  possible; 1 is a perfect ranking.

Example:
    >>> truth = {"a": 3, "b": 2, "c": 1}
    >>> pairwise_accuracy({"a": 5, "b": 1, "c": 3}, truth)
    0.6666666666666666
    >>> kendall_tau({"a": 5, "b": 4, "c": 3}, truth)
    1.0
    >>> round(ndcg(["a", "c", "b"], truth), 3)
    0.973
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations

__all__ = ["bootstrap_interval", "kendall_tau", "ndcg", "pairwise_accuracy", "relevance_from_ranking"]


def relevance_from_ranking(ranking: Sequence[str]) -> dict[str, float]:
    """Graded relevance from a best-first ranking: the best of N gets N, the worst 1.

    Example:
        >>> relevance_from_ranking(["b", "a"])
        {'b': 2.0, 'a': 1.0}
    """
    count = len(ranking)
    return {name: float(count - position) for position, name in enumerate(ranking)}


def pairwise_accuracy(predicted: Mapping[str, float], truth: Mapping[str, float]) -> float:
    """Share of the strictly ordered labelled pairs the predicted scores order alike (ties: half).

    Returns ``nan`` when the labels order no pair.

    Example:
        >>> pairwise_accuracy({"a": 2, "b": 2}, {"a": 2, "b": 1})
        0.5
    """
    right = 0.0
    pairs = 0
    for x, y in combinations(list(truth), 2):
        if truth[x] == truth[y]:
            continue
        better, worse = (x, y) if truth[x] > truth[y] else (y, x)
        pairs += 1
        if predicted[better] > predicted[worse]:
            right += 1
        elif predicted[better] == predicted[worse]:
            right += 0.5
    return right / pairs if pairs else math.nan


def kendall_tau(predicted: Mapping[str, float], truth: Mapping[str, float]) -> float:
    """Kendall's tau-b between predicted scores and labelled relevance (``nan`` if either is all ties).

    Example:
        >>> kendall_tau({"a": 1, "b": 2, "c": 3}, {"a": 3, "b": 2, "c": 1})
        -1.0
    """
    concordant = discordant = ties_pred = ties_truth = 0
    for x, y in combinations(list(truth), 2):
        dp = predicted[x] - predicted[y]
        dt = truth[x] - truth[y]
        if dp == 0 and dt == 0:
            continue
        if dp == 0:
            ties_pred += 1
        elif dt == 0:
            ties_truth += 1
        elif (dp > 0) == (dt > 0):
            concordant += 1
        else:
            discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_pred) * (concordant + discordant + ties_truth))
    return (concordant - discordant) / denominator if denominator else math.nan


def ndcg(predicted_ranking: Sequence[str], truth: Mapping[str, float]) -> float:
    """NDCG of a best-first ranking under labelled relevance (higher relevance is better).

    Example:
        >>> ndcg(["a", "b"], {"a": 2, "b": 1})
        1.0
    """

    def dcg(order: Sequence[str]) -> float:
        return sum(truth[name] / math.log2(position + 2) for position, name in enumerate(order))

    ideal = dcg(sorted(truth, key=lambda name: -truth[name]))
    return dcg(predicted_ranking) / ideal if ideal > 0 else math.nan


def bootstrap_interval(
    values: Sequence[float],
    *,
    statistic: Callable[[Sequence[float]], float] | None = None,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The statistic (default: the mean) of ``values`` and its percentile bootstrap interval.

    ``nan`` values are left out. Resampling uses a private seeded generator, so the
    interval is the same on every run.

    Returns:
        ``(estimate, low, high)``; all ``nan`` for no values.

    Example:
        >>> estimate, low, high = bootstrap_interval([1.0, 0.0, 1.0, 1.0])
        >>> estimate, low <= estimate <= high
        (0.75, True)
    """
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return math.nan, math.nan, math.nan
    stat = statistic or (lambda xs: sum(xs) / len(xs))
    rng = random.Random(seed)
    estimates = sorted(stat([rng.choice(clean) for _ in clean]) for _ in range(resamples))
    tail = (1 - level) / 2
    low = estimates[int(tail * (resamples - 1))]
    high = estimates[math.ceil((1 - tail) * (resamples - 1))]
    return stat(clean), low, high
