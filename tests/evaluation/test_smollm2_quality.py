"""The shipped labelled set judged by a real small model: SmolLM2-135M-Instruct in ``fast`` mode.

SmolLM2 is a general 135M chat model standing in for RewardAnything (as in the
demo): its figures are weak and are reported, not required to be good. What
this test holds is that a real model's verdicts go through the whole quality
path (real tokenizer and chat template, digit probabilities, the measures and
their intervals) and that the figures are well formed.
"""

from __future__ import annotations

import math
import os

import pytest

from ra_guard.evaluation import judge_quality, read_labelled, shipped_labelled_set
from ra_guard.exceptions import MissingDependencyError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_path() -> str:
    pytest.importorskip("torch")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ra_guard.testing.smollm2 import prepare_smollm2

    try:
        return str(prepare_smollm2())
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("permutations", [1, 3])
def test_smollm2_on_the_shipped_labelled_set(smollm2_path: str, permutations: int) -> None:
    from ra_guard.local import LocalJudge

    judge = LocalJudge(smollm2_path, mode="fast", dtype="bfloat16", permutations=permutations, max_wait_ms=20)
    items = read_labelled(shipped_labelled_set())
    result = judge_quality(items, judge, concurrency=4, resamples=1000)
    judge.close()
    print(f"\nSmolLM2-135M-Instruct, fast mode, permutations={permutations}\n{result.table()}")
    assert result.failed == 0 and len(result.items) == 16
    for name, (mean, low, high) in result.summary.items():
        assert low <= mean <= high, name
        assert low >= -1.0 and high <= 1.0, name
    assert all(not math.isnan(r["ndcg"]) for r in result.items)
    # A real model's digit probabilities: expected scores differ between responses.
    assert any(len(set(r["scores"].values())) > 1 for r in result.items)
