"""Judge quality on labelled rankings: the measures, their intervals, and the shipped labelled set."""

from __future__ import annotations

import json
import math
import random
from itertools import permutations
from pathlib import Path

import pytest

from ra_guard.evaluation import DatasetError, judge_quality, read_labelled, shipped_labelled_set
from ra_guard.evaluation.metrics import bootstrap_interval, kendall_tau, ndcg, pairwise_accuracy
from ra_guard.evaluation.quality import labelled_item
from ra_guard.judges.base import JudgeRequest
from ra_guard.testing import FunctionJudge


def test_the_measures_on_hand_computed_rankings() -> None:
    truth = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}
    perfect = {"a": 5, "b": 4, "c": 3, "d": 1}
    reversed_ = {"a": 1, "b": 2, "c": 3, "d": 4}
    one_swap = {"a": 5, "b": 3, "c": 4, "d": 1}  # b and c swapped: 5 of 6 pairs right
    assert pairwise_accuracy(perfect, truth) == 1.0 and kendall_tau(perfect, truth) == 1.0
    assert pairwise_accuracy(reversed_, truth) == 0.0 and kendall_tau(reversed_, truth) == -1.0
    assert pairwise_accuracy(one_swap, truth) == 5 / 6
    assert kendall_tau(one_swap, truth) == pytest.approx((5 - 1) / 6)
    assert ndcg(["a", "b", "c", "d"], truth) == 1.0
    # NDCG by hand: DCG of a,c,b,d = 4/log2(2) + 2/log2(3) + 3/log2(4) + 1/log2(5)
    dcg = 4 + 2 / math.log2(3) + 3 / 2 + 1 / math.log2(5)
    ideal = 4 + 3 / math.log2(3) + 2 / 2 + 1 / math.log2(5)
    assert ndcg(["a", "c", "b", "d"], truth) == pytest.approx(dcg / ideal)


def test_tau_matches_scipy_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(3)
    for _ in range(50):
        names = list("abcdef")
        predicted = {n: float(rng.randint(1, 4)) for n in names}
        truth = {n: float(rng.randint(1, 4)) for n in names}
        expected = stats.kendalltau([predicted[n] for n in names], [truth[n] for n in names]).statistic
        got = kendall_tau(predicted, truth)
        assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_a_random_judge_averages_half_the_pairs() -> None:
    truth = {"a": 3.0, "b": 2.0, "c": 1.0}
    every_order = [dict(zip("abc", p, strict=True)) for p in permutations([3.0, 2.0, 1.0])]
    assert sum(pairwise_accuracy(p, truth) for p in every_order) / 6 == pytest.approx(0.5)
    assert sum(kendall_tau(p, truth) for p in every_order) / 6 == pytest.approx(0.0)


def test_bootstrap_interval_holds_the_mean_and_narrows_with_more_items() -> None:
    rng = random.Random(1)
    few = [float(rng.random() < 0.7) for _ in range(20)]
    many = [float(rng.random() < 0.7) for _ in range(400)]
    mean_few, low_few, high_few = bootstrap_interval(few)
    mean_many, low_many, high_many = bootstrap_interval(many)
    assert low_few <= mean_few <= high_few and low_many <= mean_many <= high_many
    assert high_many - low_many < high_few - low_few
    assert bootstrap_interval(few) == bootstrap_interval(few)  # seeded: the same every run
    assert all(math.isnan(v) for v in bootstrap_interval([]))


def _length_judge(request: JudgeRequest) -> dict[str, float]:
    return {name: max(1.0, 5.0 - len(text) / 30) for name, text in request.responses.items()}


def test_judge_quality_on_the_shipped_set() -> None:
    items = read_labelled(shipped_labelled_set())
    assert len(items) == 16 and all(len(i.responses) == 3 for i in items)
    assert {i.responses[max(i.relevance, key=i.relevance.__getitem__)] for i in items} >= {"Paris.", "4."}
    oracle = FunctionJudge(
        lambda r: next(i.relevance for i in items if i.prompt == r.prompt and i.principle == r.principle)
    )
    perfect = judge_quality(items, oracle)
    assert perfect.summary["pairwise_accuracy"] == (1.0, 1.0, 1.0) and perfect.summary["ndcg"][0] == 1.0
    assert perfect.failed == 0 and "pairs ordered as labelled" in perfect.table()
    shorter = judge_quality(items, FunctionJudge(_length_judge))  # right on the brevity items only
    mean, low, high = shorter.summary["pairwise_accuracy"]
    assert 0.0 < low <= mean <= high < 1.0


def test_a_failed_item_is_counted_and_left_out(tmp_path: Path) -> None:
    items = read_labelled(shipped_labelled_set())[:3]

    def flaky(request: JudgeRequest) -> dict[str, float]:
        if request.prompt == items[1].prompt:
            raise RuntimeError("down")
        return dict(next(i.relevance for i in items if i.prompt == request.prompt))

    result = judge_quality(items, FunctionJudge(flaky))
    assert result.failed == 1 and result.summary["top1_accuracy"][0] == 1.0
    assert "down" in result.items[1]["error"]
    json.dumps(result.to_json())  # JSON-ready


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"prompt": "q", "responses": ["a", "b"], "ranking": [0, 1]}, "needs a non-empty string 'principle'"),
        ({"principle": "p", "prompt": "q", "responses": ["a"], "ranking": [0]}, "two at least"),
        ({"principle": "p", "prompt": "q", "responses": ["a", "b"], "ranking": [0]}, "must name every response"),
    ],
)
def test_a_bad_labelled_line_is_named(data: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=f"line 4: .*{message}"):
        labelled_item(data, line=4)


def test_list_responses_and_graded_scores() -> None:
    item = labelled_item(
        {"principle": "p", "prompt": "q", "responses": ["x", "y", "z"], "ranking": [2, 0, 1], "scores": [1, 1, 5]},
        line=1,
    )
    assert item.responses == {"0": "x", "1": "y", "2": "z"} and item.relevance == {"0": 1.0, "1": 1.0, "2": 5.0}
