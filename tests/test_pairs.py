"""Preference pairs: chosen/rejected per policy from decisions, in TRL's preference format, scores kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ra_guard import AllCandidatesRejected, AuditLog, Guard, InputError, JudgeRequest, Policy, PolicyKind
from ra_guard.__main__ import main
from ra_guard.audit import AuditTextMissingError
from ra_guard.pairs import audit_log_pairs, decision_pairs, write_pairs
from ra_guard.testing import FunctionJudge

BRIEF = Policy(name="brief", principle="Be brief.")
POLITE = Policy(name="polite", principle="Be polite.")
SAFE = Policy(name="safe", principle="Never shout.", kind=PolicyKind.HARD)
PROMPT = "Greet me"
TEXTS = ["Hi.", "HELLO THERE!", "Good morning, it is lovely to see you."]


def judge(request: JudgeRequest) -> dict[str, float]:
    """brief: shorter wins; polite: longer wins; safe: all capitals is shouting."""
    scores: dict[str, float] = {}
    for name, text in request.responses.items():
        if request.principle == BRIEF.principle:
            scores[name] = max(1.0, 5 - len(text) / 10)
        elif request.principle == POLITE.principle:
            scores[name] = min(5.0, 1 + len(text) / 10)
        else:
            scores[name] = 1.0 if text.isupper() else 5.0
    return scores


def guard(**options: Any) -> Guard:
    return Guard(policies=[BRIEF, POLITE, SAFE], judge=FunctionJudge(judge), **options)


def test_one_pair_per_policy_best_against_worst_with_the_scores() -> None:
    decision = guard().rerank(PROMPT, TEXTS)
    rows = {row["policy"]: row for row in decision_pairs(decision, PROMPT)}
    assert set(rows) == {"brief", "polite", "safe"}
    brief = rows["brief"]
    assert (brief["prompt"], brief["chosen"], brief["rejected"]) == (PROMPT, "Hi.", TEXTS[2])
    assert brief["score_chosen"] == pytest.approx(4.7) and brief["score_rejected"] == pytest.approx(1.2)
    assert brief["margin"] == pytest.approx(3.5) and brief["decision_id"] == decision.decision_id
    assert (brief["chosen_index"], brief["rejected_index"]) == (0, 2)
    assert (rows["polite"]["chosen"], rows["polite"]["rejected"]) == (TEXTS[2], "Hi.")
    # Under the hard policy the shouting answer is the rejected one, flagged as vetoed.
    assert rows["safe"]["rejected"] == "HELLO THERE!" and rows["safe"]["rejected_vetoed"] is True


def test_a_rejected_decision_still_gives_its_soft_policies_pairs() -> None:
    with pytest.raises(AllCandidatesRejected) as caught:
        guard().rerank(PROMPT, ["HI!", "HELLO THERE, FRIEND!"])  # both vetoed by `safe`
    rows = decision_pairs(caught.value.decision, PROMPT)
    assert [(r["policy"], r["chosen"]) for r in rows] == [("brief", "HI!"), ("polite", "HELLO THERE, FRIEND!")]


def test_margin_ties_and_all_pairs() -> None:
    decision = guard().rerank(PROMPT, TEXTS)
    assert decision_pairs(decision, PROMPT, policies=["brief"], min_margin=4.0) == []
    every = decision_pairs(decision, PROMPT, policies=["brief"], min_margin=0.0, all_pairs=True)
    assert [(r["chosen_index"], r["rejected_index"]) for r in every] == [(0, 1), (0, 2), (1, 2)]
    tied = Guard(policies=[BRIEF], judge=FunctionJudge(lambda r: dict.fromkeys(r.responses, 3.0))).rerank(
        PROMPT, ["a", "b"]
    )
    assert decision_pairs(tied, PROMPT, min_margin=0.0, all_pairs=True) == []  # a tie is no preference


def test_conversational_format_from_messages() -> None:
    messages = [{"role": "system", "content": "You are kind."}, {"role": "user", "content": PROMPT}]
    decision = guard().rerank(messages, TEXTS)
    (row,) = decision_pairs(decision, messages, policies=["polite"])
    assert row["prompt"] == messages
    assert row["chosen"] == [{"role": "assistant", "content": TEXTS[2]}]
    assert row["rejected"] == [{"role": "assistant", "content": "Hi."}]
    with pytest.raises(InputError, match="prompt"):
        decision_pairs(decision, 42)  # type: ignore[arg-type]


def test_repeated_texts_and_unjudged_policies_make_no_pairs() -> None:
    def half_broken(request: JudgeRequest) -> dict[str, float]:
        if request.principle == POLITE.principle:
            raise RuntimeError("judge down")
        return judge(request)

    decision = Guard(policies=[BRIEF, POLITE], judge=FunctionJudge(half_broken)).rerank(
        PROMPT, ["Hi.", "Hi.", "Good morning, it is lovely to see you."]
    )
    rows = decision_pairs(decision, PROMPT, all_pairs=True)
    assert [(r["policy"], r["chosen_index"], r["rejected_index"]) for r in rows] == [("brief", 0, 2)]


def _dataset_rows(path: Path) -> list[dict[str, Any]]:
    """The rows as `datasets` reads them where it is installed, else as plain JSON Lines."""
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return list(datasets.load_dataset("json", data_files=str(path), split="train"))


def test_cli_exports_pairs_from_an_audit_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "decisions.jsonl"
    with AuditLog(log, include_text=True) as audit:
        g = guard(audit_log=audit)
        g.rerank(PROMPT, TEXTS)
        g.rerank("Capital of France?", ["Paris.", "The capital of France is Paris, of course."])
    out = tmp_path / "pairs.jsonl"
    assert main(["pairs", str(log), "-o", str(out), "--policy", "brief", "--policy", "polite"]) == 0
    assert f"wrote 4 pair(s) to {out}" in capsys.readouterr().out
    rows = _dataset_rows(out)
    assert len(rows) == 4
    for row in rows:
        assert isinstance(row["prompt"], str) and isinstance(row["chosen"], str) and isinstance(row["rejected"], str)
        assert row["score_chosen"] - row["score_rejected"] == pytest.approx(row["margin"])
        assert row["margin"] >= 1.0 and row["policy"] in ("brief", "polite")
    first = rows[0]
    assert (first["prompt"], first["chosen"], first["policy"]) == (PROMPT, "Hi.", "brief")
    # Every policy, the hard one too: `safe` adds one pair where the shouting answer is rejected.
    assert [r["policy"] for r in audit_log_pairs(log)] == ["brief", "polite", "safe", "brief", "polite"]


def test_a_log_without_texts_is_refused_and_leaves_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "decisions.jsonl"
    with AuditLog(log) as audit:
        guard(audit_log=audit).rerank(PROMPT, TEXTS)
    out = tmp_path / "pairs.jsonl"
    assert main(["pairs", str(log), "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert str(log) in error and "include_text=True" in error
    assert list(tmp_path.glob("pairs.jsonl*")) == []
    with pytest.raises(AuditTextMissingError):
        write_pairs(audit_log_pairs(log), out)
