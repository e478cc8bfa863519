"""``python -m ra_guard eval`` and ``quality``: a run killed mid-way resumes without judging anything twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ra_guard.__main__ import main
from ra_guard.evaluation import shipped_labelled_set
from ra_guard.evaluation.cli import build_judge
from ra_guard.exceptions import ConfigurationError

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["Paris.", "The capital of France is Paris, on the Seine.", "Lyon, I believe, though I may be wrong."]


def _dataset(path: Path, count: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"Question {i}?", "candidates": TEXTS}) + "\n" for i in range(count)))
    return path


def _finished_lines(path: Path) -> int:
    """Lines written whole so far: the one being written has no newline yet."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _ok_tasks(run_dir: Path) -> list[str]:
    """The tasks recorded as judged, as a resuming run counts them.

    A kill can cut the last record short; the run drops such a tail and judges its task again.
    A tail that is whole but for its newline still counts, as it does for the run.
    """
    whole, _, tail = (run_dir / "results.jsonl").read_bytes().rpartition(b"\n")
    records = [json.loads(line) for line in whole.split(b"\n") if line.strip()]
    if tail.strip():
        try:
            records.append(json.loads(tail))
        except ValueError:  # torn by the kill
            pass
    return [record["task"] for record in records if record["ok"]]


@pytest.mark.slow
def test_a_killed_run_resumes_without_judging_anything_twice(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data.jsonl", 12)
    log = tmp_path / "calls.log"
    # 0.5 s a call, two at a time: the kill after 4 records lands a whole 2 s before the run could finish.
    env = {**os.environ, "RA_GUARD_TEST_CALL_LOG": str(log), "RA_GUARD_TEST_DELAY": "0.5", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "ra_guard", "eval", str(data), "--policies", "concise",
        "--judge", "py:tests.evaluation.judges:logged_slow_judge", "--concurrency", "2", "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    results = tmp_path / "run" / "results.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _finished_lines(results) < 4:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)  # no cleanup, no flush: a crash
    process.communicate(timeout=30)
    done_before = len(_ok_tasks(tmp_path / "run"))
    calls_before = len(log.read_text().splitlines())
    assert 4 <= done_before < 12
    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr
    assert f"{12 - done_before} judged, {done_before} already done, 0 failed of 12" in finished.stdout
    calls_after = len(log.read_text().splitlines()) - calls_before
    assert calls_after == 12 - done_before  # the restart judged only what was missing
    tasks = _ok_tasks(tmp_path / "run")
    assert len(tasks) == len(set(tasks)) == 12  # each judgement recorded once
    assert "ETA" in finished.stderr or "judgement/s" in finished.stderr  # the progress bar
    assert (tmp_path / "run" / "report.html").exists()


def test_eval_with_two_judges_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _dataset(tmp_path / "data.jsonl", 3)
    status = main(
        ["eval", str(data), "--policies", "concise", "--judge", "py:tests.evaluation.judges:short_judge",
         "--judge", "py:tests.evaluation.judges:long_judge", "--permutations", "2", "--no-progress"]
    )  # fmt: skip
    assert status == 0
    out = capsys.readouterr().out
    assert "12 judged, 0 already done, 0 failed of 12" in out
    html = (tmp_path / "data-eval" / "report.html").read_text(encoding="utf-8")
    assert 'id="agreement"' in html and 'id="position-bias"' in html


def test_eval_usage_errors_are_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _dataset(tmp_path / "data.jsonl", 1)
    assert main(["eval", str(data), "--policies", "concise", "--judge", "openai-compt:http://x"]) == 2
    assert "did you mean 'openai-compat'" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nope.jsonl"), "--policies", "concise", "--judge", "py:a:b"]) == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err
    assert main(["eval", str(data), "--policies", "concise", "--judge", "py:tests.evaluation.judges:missing"]) == 2
    assert "cannot import it" in capsys.readouterr().err


def test_local_judge_settings_in_the_spec_reach_the_judge() -> None:
    with pytest.raises(ConfigurationError, match="mode='quick' is not one of"):
        build_judge("local:/models/ra-8b?mode=quick&permutations=2")


def test_quality_prints_the_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "quality.json"
    status = main(
        ["quality", str(shipped_labelled_set()), "--judge", "py:tests.evaluation.judges:short_judge",
         "--resamples", "200", "--json", str(out)]
    )  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert "judge short: 16 items judged, 0 failed" in printed and "Kendall's tau-b" in printed
    figures = json.loads(out.read_text())
    assert set(figures["summary"]) == {"pairwise_accuracy", "kendall_tau", "ndcg", "top1_accuracy"}
    assert len(figures["items"]) == 16
