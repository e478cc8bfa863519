"""Fallbacks are seen: logged, marked on the decision; judge verdicts are checked; copies are judged once."""

from __future__ import annotations

import logging
import math

import pytest

from ra_guard import Decision, Guard, JudgeError, JudgeRequest, Policy, Verdict
from ra_guard.engine import FALLBACK_LOG
from ra_guard.judges.base import Judge
from ra_guard.testing import FunctionJudge, FunctionSampler

USER = [{"role": "user", "content": "Capital of France?"}]
BRIEF = Policy(name="brief", principle="Be brief.")
CORRECT = Policy(name="correct", principle="Be correct.")


@pytest.fixture(autouse=True)
def fresh_warning_window() -> None:
    FALLBACK_LOG.reset()  # the rate limiter is process-wide: each test starts a new window


def failing_judge(message: str = "connection refused") -> FunctionJudge:
    def fail(request: JudgeRequest) -> dict[str, float]:
        raise JudgeError(message, judge="openai-compat:http://127.0.0.1:9/v1")

    return FunctionJudge(fail)


def test_fail_open_fallback_is_logged_and_marks_the_decision(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(policies=[BRIEF], judge=failing_judge())
    with caplog.at_level(logging.WARNING, logger="ra_guard"):
        decision = guard.rerank("hi", ["a", "b"])
    assert decision.passed  # fail_open keeps the request going...
    assert decision.degraded  # ...but says it was not judged
    assert any("connection refused" in r for r in decision.degraded_reasons)
    assert "degraded" in decision.why and "brief" in decision.why
    warnings = [r for r in caplog.records if r.name.startswith("ra_guard") and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "brief" in warnings[0].getMessage()
    assert Decision.model_validate_json(decision.model_dump_json()) == decision
    assert '"degraded":true' in decision.model_dump_json()


def test_fallback_warnings_are_rate_limited_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(policies=[CORRECT], judge=failing_judge("rate limited thing"))
    with caplog.at_level(logging.WARNING, logger="ra_guard"):
        for _ in range(5):
            assert guard.rerank("hi", ["a"]).degraded
    warned = [r for r in caplog.records if "rate limited thing" in r.getMessage()]
    assert len(warned) == 1


def test_rate_limiter_reports_suppressed_count() -> None:
    from ra_guard.engine import FallbackLog

    log = FallbackLog(interval_s=60.0)
    clock = [0.0]
    log.clock = lambda: clock[0]
    assert log.admit("judge_error", "p") == (True, 0)
    assert log.admit("judge_error", "p") == (False, 0)
    assert log.admit("judge_error", "p") == (False, 0)
    assert log.admit("deadline", "p") == (True, 0)
    clock[0] = 61.0
    assert log.admit("judge_error", "p") == (True, 2)


def test_all_rejected_is_not_degraded() -> None:
    hard = Policy(name="hard", principle="x", kind="hard", min_score=4)
    guard = Guard(
        policies=[hard], judge=FunctionJudge(lambda r: {k: 1 for k in r.responses}), on_all_rejected="return_best"
    )
    decision = guard.rerank("hi", ["a"])
    assert [f.kind for f in decision.fallbacks] == ["all_rejected"]
    assert not decision.degraded and decision.degraded_reasons == []


def test_a_healthy_decision_is_not_degraded() -> None:
    decision = Guard(policies=[BRIEF], judge=FunctionJudge(lambda r: {k: 4 for k in r.responses})).rerank("q", ["a"])
    assert not decision.degraded and "degraded" not in decision.why


def test_judge_repairs_are_noted_without_degrading() -> None:
    def judge(request: JudgeRequest) -> Verdict:
        names = request.names
        return Verdict(
            scores=dict.fromkeys(names, 4.0),
            ranking=names,
            repairs=["low_digit_mass: digit mass below threshold, fell back to parsing"],
        )

    decision = Guard(policies=[BRIEF], judge=FunctionJudge(judge)).rerank("q", ["a", "b"])
    assert decision.candidates[0].scores["brief"].repairs == [
        "low_digit_mass: digit mass below threshold, fell back to parsing"
    ]
    assert not decision.degraded
    assert any("low_digit_mass" in note for note in decision.notes)


# -- third-party verdicts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (99.0, "score_out_of_range"),
        (-7.0, "score_out_of_range"),
        (math.nan, "score_not_finite"),
        (math.inf, "score_not_finite"),
        (0.5, "score_out_of_range"),
    ],
)
def test_a_custom_judges_impossible_scores_are_a_judge_error(bad: float, reason: str) -> None:
    judge = FunctionJudge(lambda r: {k: (bad if t == "cheat" else 4.0) for k, t in r.responses.items()})
    decision = Guard(policies=[BRIEF], judge=judge).rerank("q", ["honest", "cheat"])
    assert decision.text == "honest" or decision.chosen.scores["brief"].score is None
    assert decision.degraded
    (fallback,) = decision.fallbacks
    assert fallback.kind == "judge_error" and reason in fallback.reason
    assert all(c.scores["brief"].score is None for c in decision.candidates)


def test_impossible_scores_follow_fail_closed() -> None:
    closed = Policy(name="brief", principle="Be brief.", on_judge_error="fail_closed")
    judge = FunctionJudge(lambda r: dict.fromkeys(r.responses, 99.0))
    guard = Guard(policies=[closed], judge=judge, on_all_rejected="return_best")
    decision = guard.rerank("q", ["a"])
    assert not decision.passed and decision.candidates[0].vetoed


def test_scores_at_the_edges_are_accepted() -> None:
    judge = FunctionJudge(lambda r: {k: (1.0 if t == "a" else 5.0) for k, t in r.responses.items()})
    decision = Guard(policies=[BRIEF], judge=judge).rerank("q", ["a", "b"])
    assert decision.text == "b" and not decision.degraded


# -- identical candidates ----------------------------------------------------------------------------


def test_identical_texts_are_judged_once_and_share_scores() -> None:
    position_biased = FunctionJudge(lambda r: {k: 4.0 - 0.5 * i for i, k in enumerate(r.responses)})
    sampler = FunctionSampler(lambda m, i: ["Paris.", "Paris.", "Lyon.", "Paris."][i])
    decision = Guard(policies=[BRIEF], judge=position_biased).run(USER, sampler=sampler, n=4)
    (request,) = position_biased.calls
    assert sorted(request.responses.values()) == ["Lyon.", "Paris."]
    by_text = {c.index: c for c in decision.candidates}
    assert by_text[1].scores == by_text[0].scores == by_text[3].scores
    assert [c.duplicate_of for c in decision.candidates] == [None, 0, None, 0]
    assert decision.chosen_index == 0
    assert "1, 3" in decision.why and "candidate 0" in decision.why


# -- health check ------------------------------------------------------------------------------------


class PingableJudge(Judge):
    """A judge implementing the base's ``aping`` (added by the judges branch)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.pings = 0

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        return Verdict(scores=dict.fromkeys(request.names, 3.0), ranking=request.names)

    async def aping(self) -> None:
        self.pings += 1
        if self.error is not None:
            raise self.error


async def test_aping_asks_the_judge() -> None:
    judge = PingableJudge()
    await Guard(policies=[BRIEF], judge=judge).aping()
    assert judge.pings == 1


def test_ping_raises_the_judges_error() -> None:
    judge = PingableJudge(JudgeError("model 'ra-8b' not served", judge="j"))
    with pytest.raises(JudgeError, match="not served"):
        Guard(policies=[BRIEF], judge=judge).ping()
