"""The report's figures: score distributions, pass/veto rates, agreement between judges, position bias."""

from __future__ import annotations

import io
from pathlib import Path

from ra_guard import Policy
from ra_guard.evaluation import EvalItem, analyse, evaluate
from ra_guard.evaluation.progress import Progress
from ra_guard.judges.base import JudgeRequest
from ra_guard.testing import FunctionJudge

TEXTS = ["Paris.", "Paris, the capital, on the Seine.", "<script>alert('x')</script> Lyon, surely, I would say so."]


def _items(count: int = 4) -> list[EvalItem]:
    return [EvalItem(key=f"q{i}", line=i + 1, prompt=f"Q{i}?", candidates=list(TEXTS)) for i in range(count)]


def _short(request: JudgeRequest) -> dict[str, float]:
    return {n: max(1.0, 5.0 - len(t) / 15) for n, t in request.responses.items()}


def _long(request: JudgeRequest) -> dict[str, float]:
    return {n: min(5.0, 1.0 + len(t) / 15) for n, t in request.responses.items()}


def _first_shown_wins(request: JudgeRequest) -> dict[str, float]:
    return {n: 5.0 if i == 0 else 2.0 for i, n in enumerate(request.names)}


def test_scores_pass_and_veto_rates_per_policy(tmp_path: Path) -> None:
    hard = Policy(name="no-scripts", principle="No markup.", kind="hard", min_score=2)
    evaluate(
        _items(), policies=["concise", hard], judges={"short": FunctionJudge(_short)}, out=tmp_path, progress=False
    )
    stats = {p.policy: p for p in analyse(tmp_path).judges[0].policies}
    assert stats["concise"].candidates == 12 and stats["no-scripts"].candidates == 12
    # the longest text scores 1.2 (< 2): vetoed by the hard policy, in every line
    assert stats["no-scripts"].vetoed == 4 and stats["no-scripts"].veto_rate == 4 / 12
    assert stats["concise"].vetoed == 0
    assert stats["concise"].lowest[0]["text"] == TEXTS[2] and stats["concise"].highest[0]["text"] == TEXTS[0]
    assert len(stats["concise"].scores) == 12


def test_agreement_between_two_judges(tmp_path: Path) -> None:
    judges = {"short": FunctionJudge(_short), "long": FunctionJudge(_long), "short-again": FunctionJudge(_short)}
    evaluate(_items(), policies=["concise"], judges=judges, out=tmp_path, progress=False)
    pairs = {(a.first, a.second): a for a in analyse(tmp_path).agreements}
    opposite = pairs[("short", "long")]
    assert opposite.items == 4 and opposite.winner_agreement == 0.0 and opposite.mean_tau == -1.0
    assert len(opposite.disagreements) == 4
    assert opposite.disagreements[0]["winners"] == {"short": TEXTS[0], "long": TEXTS[2]}
    same = pairs[("short", "short-again")]
    assert same.winner_agreement == 1.0 and same.mean_tau == 1.0


def test_position_bias_shows_a_judge_that_follows_the_order(tmp_path: Path) -> None:
    judges = {"content": FunctionJudge(_short), "position": FunctionJudge(_first_shown_wins)}
    evaluate(_items(), policies=["concise"], judges=judges, permutations=3, out=tmp_path, progress=False)
    bias = {b.judge: b for b in analyse(tmp_path).position_bias}
    assert bias["content"].items == 4 and bias["content"].consistency == 1.0 and bias["content"].mean_tau == 1.0
    assert bias["position"].consistency == 0.0
    assert bias["position"].winner_positions == {0: 12}  # always the first shown
    assert len(bias["position"].inconsistent) == 4


def test_the_report_is_self_contained_and_escapes_what_it_shows(tmp_path: Path) -> None:
    judges = {"short": FunctionJudge(_short), "long": FunctionJudge(_long)}
    summary = evaluate(_items(), policies=["concise"], judges=judges, permutations=2, out=tmp_path, progress=False)
    assert summary.report is not None
    html = summary.report.read_text(encoding="utf-8")
    for section in ('id="scores"', 'id="decisions"', 'id="agreement"', 'id="position-bias"'):
        assert section in html
    assert html.count("<svg") == 2 + 1 + 2  # two score charts, one agreement pair, two position charts
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched from outside
    assert "<link" not in html and "src=" not in html


def test_the_builtin_progress_bar_shows_rate_and_eta() -> None:
    out = io.StringIO()
    bar = Progress(total=10, initial=4, description="eval", stream=out, use_tqdm=False)
    bar.update(3)
    bar.close()
    last = out.getvalue().strip().split("\r")[-1]
    assert last.startswith("eval: 7/10") and "/s" in last and "ETA" in last


def test_the_progress_bar_uses_tqdm_when_installed() -> None:
    out = io.StringIO()
    bar = Progress(total=5, initial=1, stream=out)
    bar.update(4)
    bar.close()
    assert "5/5" in out.getvalue() and "judgement/s" in out.getvalue()
