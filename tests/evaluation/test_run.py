"""Evaluation runs: every line judged once through a guard, resumable after a crash, bounded concurrency."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from ra_guard.evaluation import DatasetError, EvalItem, aevaluate, analyse, evaluate, read_dataset
from ra_guard.evaluation.store import ResultStore
from ra_guard.exceptions import ConfigurationError, MissingDependencyError
from ra_guard.judges.base import JudgeRequest
from ra_guard.testing import FunctionJudge, FunctionSampler

CANDIDATES = ["Paris.", "The capital of France is Paris, on the Seine.", "Lyon, I think, but I am not sure at all."]


def _items(count: int) -> list[EvalItem]:
    return [
        EvalItem(key=f"q{i}", line=i + 1, prompt=f"Question {i}?", candidates=list(CANDIDATES)) for i in range(count)
    ]


def _short(request: JudgeRequest) -> dict[str, float]:
    return {name: max(1.0, 5.0 - len(text) / 20) for name, text in request.responses.items()}


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def test_each_line_is_judged_through_a_guard_and_recorded(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(
        "\n".join(json.dumps({"prompt": f"Q{i}?", "candidates": CANDIDATES, "topic": "geo"}) for i in range(3)) + "\n"
    )
    judge = FunctionJudge(_short)
    summary = evaluate(data, policies=["concise"], judges=[judge], out=tmp_path / "run", progress=False)
    assert (summary.total, summary.judged, summary.failed) == (3, 3, 0)
    records = _records(tmp_path / "run")
    assert len(records) == 3 and all(r["ok"] for r in records)
    assert {r["meta"]["topic"] for r in records} == {"geo"}
    assert all(r["decision"]["candidates"][r["decision"]["chosen_index"]]["text"] == "Paris." for r in records)
    assert len(judge.calls) == 3  # one policy, one judge call per line
    assert summary.report is not None and "Scores per policy" in summary.report.read_text()


def test_a_restart_skips_what_is_done_and_judges_only_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = FunctionJudge(_short, delay=0.05)

    async def crash_after_three() -> None:
        task = asyncio.ensure_future(
            aevaluate(_items(8), policies=["concise"], judges={"j": first}, out=out, concurrency=2, progress=False)
        )
        while not (out / "results.jsonl").exists() or len(_records(out)) < 3:
            await asyncio.sleep(0.01)
        task.cancel()  # the run dies with judgements in flight
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(crash_after_three())
    written = len(_records(out))
    assert 3 <= written < 8
    second = FunctionJudge(_short)
    summary = evaluate(_items(8), policies=["concise"], judges={"j": second}, out=out, progress=False)
    assert summary.skipped == written and summary.judged == 8 - written
    assert len(second.calls) == 8 - written  # nothing judged twice
    tasks = [r["task"] for r in _records(out)]
    assert sorted(tasks) == sorted({f"q{i}|j|0" for i in range(8)})


def test_a_torn_last_line_is_dropped_and_its_line_judged_again(tmp_path: Path) -> None:
    out = tmp_path / "run"
    evaluate(_items(3), policies=["concise"], judges={"j": FunctionJudge(_short)}, out=out, progress=False)
    results = out / "results.jsonl"
    lines = results.read_text(encoding="utf-8").splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]  # a crash in the middle of writing the last record
    results.write_text("".join(lines[:-1]) + torn, encoding="utf-8")
    again = FunctionJudge(_short)
    summary = evaluate(_items(3), policies=["concise"], judges={"j": again}, out=out, progress=False)
    assert (summary.skipped, summary.judged, len(again.calls)) == (2, 1, 1)
    assert [r["ok"] for r in _records(out)] == [True, True, True]  # every line parses again


def test_a_damaged_line_before_the_last_is_an_error_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    evaluate(_items(2), policies=["concise"], judges={"j": FunctionJudge(_short)}, out=out, progress=False)
    results = out / "results.jsonl"
    lines = results.read_text(encoding="utf-8").splitlines(keepends=True)
    results.write_text("{oops\n" + "".join(lines), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"results.jsonl, line 1: not a result record"):
        ResultStore(out).load()


def test_a_failing_line_is_recorded_and_retried_on_restart(tmp_path: Path) -> None:
    out = tmp_path / "run"

    def flaky(request: JudgeRequest) -> dict[str, float]:
        if request.prompt == "Question 1?":
            raise RuntimeError("judge fell over")
        return _short(request)

    summary = evaluate(_items(3), policies=["concise"], judges={"j": FunctionJudge(flaky)}, out=out, progress=False)
    assert (summary.judged, summary.failed) == (2, 1)
    failed = [r for r in _records(out) if not r["ok"]]
    assert failed[0]["key"] == "q1" and "judge fell over" in failed[0]["error"]
    assert analyse(out).judges[0].failed == 1
    healed = FunctionJudge(_short)
    summary = evaluate(_items(3), policies=["concise"], judges={"j": healed}, out=out, progress=False)
    assert (summary.skipped, summary.judged, len(healed.calls)) == (2, 1, 1)
    assert analyse(out).judges[0].decisions == 3


def test_concurrency_bounds_the_judgements_in_flight(tmp_path: Path) -> None:
    in_flight = 0
    peak = 0

    async def counting(request: JudgeRequest) -> dict[str, float]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return _short(request)

    judges = {"a": FunctionJudge(counting), "b": FunctionJudge(counting)}
    evaluate(_items(12), policies=["concise"], judges=judges, out=tmp_path, concurrency=3, progress=False)
    assert peak == 3


def test_lines_without_candidates_are_sampled_once_and_every_judge_sees_the_same_texts(tmp_path: Path) -> None:
    calls: list[int] = []

    def sample(messages: object, i: int) -> str:
        calls.append(i)
        return ["Yes.", "Yes, certainly, of course, gladly."][i % 2]

    sampler = FunctionSampler(sample)
    first, second = FunctionJudge(_short), FunctionJudge(_short)
    items = [EvalItem(key="s", line=1, prompt="Will you?", candidates=None)]
    evaluate(
        items,
        policies=["concise"],
        judges={"a": first, "b": second},
        sampler=sampler,
        n=2,
        out=tmp_path,
        progress=False,
    )
    assert len(calls) == 2  # n=2, once for the line
    assert sorted(first.calls[0].responses.values()) == sorted(second.calls[0].responses.values())
    assert {r["judge"]: r["candidates"] for r in _records(tmp_path)}["b"] == [
        "Yes.",
        "Yes, certainly, of course, gladly.",
    ]


def test_the_ray_run_names_its_extra_where_ray_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed, whether or not it is
    from ra_guard.evaluation.ray_run import evaluate_on_ray

    with pytest.raises(MissingDependencyError, match=r"pip install 'ra-guard\[ray\]'"):
        evaluate_on_ray(_items(1), policies=["concise"], judges={"j": "py:a:b"}, out=tmp_path)


def test_a_line_without_candidates_needs_a_sampler(tmp_path: Path) -> None:
    items = [EvalItem(key="s", line=7, prompt="Will you?", candidates=None)]
    with pytest.raises(ConfigurationError, match=r"line 7 .* no 'candidates'"):
        evaluate(items, policies=["concise"], judges=[FunctionJudge(_short)], out=tmp_path, progress=False)


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    evaluate(_items(1), policies=["concise"], judges={"j": FunctionJudge(_short)}, out=tmp_path, progress=False)
    with pytest.raises(ConfigurationError, match="policies differ"):
        evaluate(_items(1), policies=["harmless"], judges={"j": FunctionJudge(_short)}, out=tmp_path, progress=False)


def test_a_repeated_line_is_judged_once(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    line = json.dumps({"prompt": "Q?", "candidates": ["a", "bb"]})
    data.write_text(f"{line}\n\n{line}\n")
    items = list(read_dataset(data))
    assert [i.line for i in items] == [1, 3] and items[0].key == items[1].key
    judge = FunctionJudge(_short)
    summary = evaluate(data, policies=["concise"], judges=[judge], out=tmp_path / "run", progress=False)
    assert summary.total == 1 and len(judge.calls) == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"candidates": ["a"]}', "needs a 'prompt'"),
        ('{"prompt": "q", "candidates": "abc"}', "'candidates' must be a non-empty list of strings"),
        ('{"prompt": "q"', "not JSON"),
    ],
)
def test_a_bad_dataset_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "fine", "candidates": ["x"]}\n' + line + "\n")
    with pytest.raises(DatasetError, match=f"data.jsonl, line 2: {message}"):
        list(read_dataset(data))
