"""Replay: recorded decisions judged again under other policies or another judge; flips and blocks reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ra_guard import AuditLog, ConfigurationError, Guard, JudgeRequest, Policy, PolicyKind
from ra_guard.__main__ import main
from ra_guard.audit import AuditTextMissingError, read_audit_log
from ra_guard.replay import replay
from ra_guard.shadow import ShadowGuard
from ra_guard.testing import FunctionJudge, FunctionSampler
from tests.support.openai_server import OpenAIStubServer

BRIEF = Policy(name="brief", principle="Be brief.", min_score=3)
DETAILED = Policy(name="detailed", principle="Give the detail asked for.", min_score=3)
NO_SHOUTING = Policy(name="no-shouting", principle="Never shout.", kind=PolicyKind.HARD, min_score=3)


def shorter_is_better(request: JudgeRequest) -> dict[str, float]:
    return {name: max(1.0, 5 - len(text) / 10) for name, text in request.responses.items()}


def longer_is_better(request: JudgeRequest) -> dict[str, float]:
    return {name: min(5.0, 1 + len(text) / 10) for name, text in request.responses.items()}


def no_capitals(request: JudgeRequest) -> dict[str, float]:
    """All capitals is shouting (1) under `no-shouting`; every other policy is met (5)."""
    if request.principle != NO_SHOUTING.principle:
        return dict.fromkeys(request.responses, 5.0)
    return {name: 1.0 if text == text.upper() else 5.0 for name, text in request.responses.items()}


def record_log(path: Path) -> dict[str, str]:
    """Three decisions under `brief` (shorter wins), recorded with their texts; their ids by name."""
    ids: dict[str, str] = {}
    with AuditLog(path, include_text=True) as audit:
        guard = Guard(policies=[BRIEF], judge=FunctionJudge(shorter_is_better), audit_log=audit)
        ids["capital"] = guard.rerank(
            "Capital of France?", ["Paris.", "Paris, on the Seine, is the capital."]
        ).decision_id
        ids["same"] = guard.rerank("Say hi", ["Hi there, friend, good to see you!"]).decision_id
        ids["loud"] = guard.rerank("Greet me", ["HELLO!", "Good morning to you, and welcome."]).decision_id
    return ids


def test_flips_and_blocks_under_a_new_policy_with_the_examples(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    ids = record_log(log)
    report = replay(log, policies=[DETAILED], judge=FunctionJudge(longer_is_better))
    assert report.decisions == 3 and report.error_count == 0 and report.policies == ["detailed"]
    assert [item.decision_id for item in report.flipped] == [ids["capital"], ids["loud"]]
    capital = report.flipped[0]
    assert capital.old_winner_text == "Paris." and capital.new_winner_text == "Paris, on the Seine, is the capital."
    assert capital.served_text == "Paris." and capital.new_scores[0]["detailed"] == pytest.approx(1.6)
    # "Paris." (score 1.6) and "HELLO!" (1.6) would fail `detailed`; the one-candidate decision passes (4.4).
    assert [item.decision_id for item in report.blocked] == [ids["capital"], ids["loud"]]
    assert all(item.failing == ["detailed"] and item.vetoed_by == [] for item in report.blocked)
    # The one-candidate answer failed `brief` when recorded (1.6): no longer blocked.
    assert report.newly_blocked == 2 and report.unblocked == 1 and report.degraded == 0


def test_a_hard_policy_reports_the_veto(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    ids = record_log(log)
    report = replay(log, policies=[BRIEF, NO_SHOUTING], judge=FunctionJudge(no_capitals))
    (blocked,) = report.blocked
    assert blocked.decision_id == ids["loud"] and blocked.vetoed_by == ["no-shouting"]
    assert blocked.new_winner_text == "Good morning to you, and welcome."


def test_another_judge_under_the_recorded_policies(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    with AuditLog(log, include_text=True) as audit:
        guard = Guard(policies=["concise"], judge=FunctionJudge(shorter_is_better), audit_log=audit)
        guard.rerank("Capital of France?", ["Paris.", "Paris, on the Seine, is the capital."])
    report = replay(log, policies=None, judge=FunctionJudge(longer_is_better))
    assert report.policies == ["concise"] and len(report.flipped) == 1


def test_a_recorded_policy_that_changed_since_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    edited = Policy(name="concise", principle="Be brief, and mean it.")  # same name, other content
    with AuditLog(log, include_text=True) as audit:
        Guard(policies=[edited], judge=FunctionJudge(shorter_is_better), audit_log=audit).rerank("q", ["a", "bb"])
    with pytest.raises(ConfigurationError, match=r"'concise'.*is not the shipped one.*--policies"):
        replay(log, policies=None, judge=FunctionJudge(longer_is_better))


def test_a_shadow_decision_is_judged_on_what_the_user_got(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    long_answer = "The capital of France is Paris, which sits on the Seine."
    with AuditLog(log, include_text=True) as audit:
        guard = Guard(
            policies=[BRIEF],
            judge=FunctionJudge(shorter_is_better),
            sampler=FunctionSampler(lambda messages, i: "Paris."),
            audit_log=audit,
        )
        with ShadowGuard(guard) as shadow:
            shadow.check("Capital of France?", long_answer, n=1)
    (record,) = list(read_audit_log(log))
    assert record["shadow"] and record["chosen_index"] == 1  # the shadow guard would have served "Paris."
    report = replay(log, policies=[BRIEF], judge=FunctionJudge(shorter_is_better))
    (item,) = report.blocked
    assert item.shadow and item.served_index == 0 and item.served_text == long_answer
    assert item.was_blocked and report.newly_blocked == 0 and not report.flipped


def test_a_judge_that_fails_during_replay_is_counted_as_degraded(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    record_log(log)

    def broken(request: JudgeRequest) -> dict[str, float]:
        raise RuntimeError("judge down")

    report = replay(log, policies=[DETAILED], judge=FunctionJudge(broken))
    assert report.decisions == 3 and report.degraded == 3
    assert not report.flipped and not report.blocked  # fail_open: nothing judged, nothing blocked


def test_a_log_without_texts_is_refused_naming_the_file_and_the_option(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    with AuditLog(log) as audit:
        Guard(policies=[BRIEF], judge=FunctionJudge(shorter_is_better), audit_log=audit).rerank("q", ["a"])
    with pytest.raises(AuditTextMissingError) as caught:
        replay(log, policies=[DETAILED], judge=FunctionJudge(longer_is_better))
    assert caught.value.file == str(log) and "include_text=True" in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)


def test_cli_replays_against_a_real_judge_server_and_writes_the_report(
    tmp_path: Path, openai_server: OpenAIStubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "decisions.jsonl"
    with AuditLog(log, include_text=True) as audit:
        guard = Guard(policies=[BRIEF], judge=FunctionJudge(shorter_is_better), audit_log=audit)
        guard.rerank("Capital of France?", ["Paris. score=1", "It is Paris, on the Seine. score=5"])
        guard.rerank("Say hi", ["Hi! score=4"])
    policy_file = tmp_path / "new.yaml"
    policy_file.write_text("name: grounded\nprinciple: Answer from the facts given.\nmin_score: 3\n")
    out = tmp_path / "replay.json"
    judge = f"openai-compat:{openai_server.base_url}"
    status = main(["replay", str(log), "--policies", str(policy_file), "--judge", judge, "--report", str(out)])
    printed = capsys.readouterr().out
    assert status == 0
    assert "winner would flip: 1; served output would be blocked: 1" in printed
    assert "now: It is Paris, on the Seine. score=5" in printed
    report = json.loads(out.read_text())
    assert report["decisions"] == 2 and report["flipped_count"] == 1 and report["blocked_count"] == 1
    assert report["blocked"][0]["served_text"] == "Paris. score=1"
    assert report["blocked"][0]["failing"] == ["grounded"]


def test_cli_refuses_a_log_without_texts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "decisions.jsonl"
    with AuditLog(log) as audit:
        Guard(policies=[BRIEF], judge=FunctionJudge(shorter_is_better), audit_log=audit).rerank("q", ["a"])
    status = main(["replay", str(log), "--policies", "concise", "--judge", "openai-compat:http://127.0.0.1:9/v1"])
    assert status == 2
    error = capsys.readouterr().err
    assert str(log) in error and "include_text=True" in error


def test_cli_names_a_log_that_does_not_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "typo.jsonl"
    assert main(["replay", str(missing), "--judge", "openai-compat:http://127.0.0.1:9/v1"]) == 2
    assert f"{missing}: no such audit log" in capsys.readouterr().err
