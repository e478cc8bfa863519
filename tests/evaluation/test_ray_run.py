"""The evaluation run as a Ray Data job, on a local Ray instance: workers hold their judges, the driver writes.

Skipped where Ray is not installed (``pip install 'ra-guard[ray]'``): one machine
is the default and needs no Ray.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ra_guard.evaluation import EvalItem, analyse, evaluate
from ra_guard.testing import FunctionJudge
from tests.evaluation.judges import shorter_is_better

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ra-guard[ray]')")
pytestmark = [
    pytest.mark.slow,
    # Ray Data's own context warns about its own deprecated settings on first use: not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
]

TEXTS = ["Paris.", "The capital of France is Paris, on the Seine.", "Lyon, I believe, though I may be wrong."]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _items(count: int) -> list[EvalItem]:
    return [EvalItem(key=f"q{i}", line=i + 1, prompt=f"Question {i}?", candidates=list(TEXTS)) for i in range(count)]


def test_a_ray_run_judges_every_item_and_resumes_with_a_local_run(local_ray: None, tmp_path: Path) -> None:
    from ra_guard.evaluation.ray_run import evaluate_on_ray

    judges = {"short": "py:tests.evaluation.judges:short_judge", "long": "py:tests.evaluation.judges:long_judge"}
    summary = evaluate_on_ray(
        _items(6)[:4], policies=["concise"], judges=judges, out=tmp_path, permutations=2, actors=2, batch_size=2,
        progress=False,
    )  # fmt: skip
    assert (summary.total, summary.judged, summary.failed) == (16, 16, 0)
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len({r["task"] for r in records}) == 16 == len(records)
    short = [r for r in records if r["judge"] == "short" and r["order"] == 0]
    assert all(r["decision"]["candidates"][r["decision"]["chosen_index"]]["text"] == "Paris." for r in short)
    analysis = analyse(tmp_path)
    assert analysis.agreements[0].winner_agreement == 0.0
    # The same directory resumes locally: only the two new items are judged.
    local = {"short": FunctionJudge(shorter_is_better), "long": FunctionJudge(shorter_is_better)}
    again = evaluate(_items(6), policies=["concise"], judges=local, out=tmp_path, permutations=2, progress=False)
    assert (again.skipped, again.judged) == (16, 8)
