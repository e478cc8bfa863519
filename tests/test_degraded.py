"""Fallbacks are seen: logged, marked on the decision; judge verdicts are checked; copies are judged once."""

from __future__ import annotations

import logging
import math

import pytest

from ra_guard import (
    AllCandidatesRejected,
    Decision,
    Guard,
    JudgeError,
    JudgeRequest,
    Policy,
    RetryWithFeedback,
    Verdict,
)
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


def test_a_score_just_above_the_scale_is_reported_as_it_was() -> None:
    judge = FunctionJudge(lambda r: {k: (5.0000001 if t == "cheat" else 4.0) for k, t in r.responses.items()})
    decision = Guard(policies=[BRIEF], judge=judge).rerank("q", ["honest", "cheat"])
    (fallback,) = decision.fallbacks
    assert "scored 5.0000001, outside the scale 1..5" in fallback.reason


class YesNoJudge(Judge):
    """A third-party judge that answers whether each candidate is good, not how good."""

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        return Verdict(scores={k: t == "honest" for k, t in request.responses.items()}, ranking=request.names)


def test_a_bool_is_not_a_score() -> None:
    decision = Guard(policies=[BRIEF], judge=YesNoJudge()).rerank("q", ["honest", "cheat"])
    assert decision.degraded
    (fallback,) = decision.fallbacks
    assert fallback.kind == "judge_error" and "score_not_a_number" in fallback.reason
    assert "candidate-0 scored True: a bool is not a score" in fallback.reason
    assert all(c.scores["brief"].score is None for c in decision.candidates)


def test_a_scoring_function_answering_bools_is_a_judge_error() -> None:
    judge = FunctionJudge(lambda r: dict.fromkeys(r.responses, True))
    decision = Guard(policies=[BRIEF], judge=judge).rerank("q", ["honest", "cheat"])
    assert decision.degraded
    (fallback,) = decision.fallbacks
    assert fallback.kind == "judge_error" and "score_not_a_number" in fallback.reason
    assert all(c.scores["brief"].score is None for c in decision.candidates)


def test_a_bool_score_follows_fail_closed() -> None:
    closed = Policy(name="brief", principle="Be brief.", on_judge_error="fail_closed")
    guard = Guard(policies=[closed], judge=YesNoJudge(), on_all_rejected="return_best")
    decision = guard.rerank("q", ["honest"])
    assert not decision.passed and decision.candidates[0].vetoed


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


def test_a_text_judged_in_an_earlier_round_is_not_judged_again() -> None:
    # A judge that drifts from call to call: judging a repeat again would give it another score.
    drifting = FunctionJudge(lambda r: {k: 2.0 + 0.5 * len(drifting.calls) for k in r.responses})
    strict = Policy(name="brief", principle="Be brief.", min_score=5)
    guard = Guard(
        policies=[strict], judge=drifting, strategy=RetryWithFeedback(max_attempts=3), on_all_rejected="return_best"
    )
    decision = guard.run(USER, sampler=FunctionSampler(lambda m, i: "Same."))
    assert len(drifting.calls) == 1 and decision.judge_calls == 1  # rounds 2 and 3 only repeat
    assert decision.attempts == 3 and [c.attempt for c in decision.candidates] == [1, 2, 3]
    assert [c.scores["brief"].score for c in decision.candidates] == [2.5, 2.5, 2.5]
    assert [c.duplicate_of for c in decision.candidates] == [None, 0, 0]
    assert "candidates 1, 2 repeat candidate 0's text exactly: judged once, scores shared" in decision.notes
    assert "candidates 1, 2 repeat candidate 0's text (judged once)" in decision.why


def test_a_repeat_in_a_later_round_is_judged_only_with_the_new_texts() -> None:
    texts = iter(["Paris.", "Lyon.", "Paris.", "Nice."])
    judge = FunctionJudge(lambda r: {k: (3.0 if t == "Paris." else 2.0) for k, t in r.responses.items()})
    strict = Policy(name="brief", principle="Be brief.", min_score=5)
    guard = Guard(
        policies=[strict], judge=judge, strategy=RetryWithFeedback(max_attempts=2, n=2), on_all_rejected="return_best"
    )
    decision = guard.run(USER, sampler=FunctionSampler(lambda m, i: next(texts)))
    assert [sorted(r.responses.values()) for r in judge.calls] == [["Lyon.", "Paris."], ["Nice."]]
    assert decision.candidates[2].duplicate_of == 0
    assert decision.candidates[2].scores == decision.candidates[0].scores
    assert decision.candidates[3].duplicate_of is None
    assert "candidate 2 repeats candidate 0's text exactly: judged once, scores shared" in decision.notes


def test_a_repeat_of_a_vetoed_text_keeps_its_veto_and_counts_as_an_attempt() -> None:
    hard = Policy(name="json", principle="Reply with JSON only.", kind="hard", min_score=4)
    judge = FunctionJudge(lambda r: dict.fromkeys(r.responses, 1.0))
    guard = Guard(policies=[hard], judge=judge, strategy=RetryWithFeedback(max_attempts=4))
    with pytest.raises(AllCandidatesRejected) as err:
        guard.run(USER, sampler=FunctionSampler(lambda m, i: "not json"))
    decision = err.value.decision
    assert len(judge.calls) == 1 and decision.attempts == 4
    assert all(c.vetoed for c in decision.candidates) and len(decision.candidates) == 4
    assert [c.duplicate_of for c in decision.candidates] == [None, 0, 0, 0]


def test_check_does_not_judge_the_agents_output_again_when_a_retry_repeats_it() -> None:
    judge = FunctionJudge(lambda r: {k: (2.0 if t == "agent answer" else 5.0) for k, t in r.responses.items()})
    strict = Policy(name="brief", principle="Be brief.", min_score=4)
    answers = iter(["agent answer", "better"])
    guard = Guard(policies=[strict], judge=judge, strategy=RetryWithFeedback(max_attempts=2))
    decision = guard.check(USER, "agent answer", sampler=FunctionSampler(lambda m, i: next(answers)))
    assert [list(r.responses.values()) for r in judge.calls] == [["agent answer"], ["better"]]
    assert decision.candidates[1].duplicate_of == 0 and decision.text == "better"


def test_a_repeat_of_a_text_whose_judge_call_failed_is_judged_anew() -> None:
    failures = iter([True])

    def flaky(request: JudgeRequest) -> dict[str, float]:
        if next(failures, False):
            raise JudgeError("connection reset", judge="flaky")
        return dict.fromkeys(request.responses, 3.0)

    judge = FunctionJudge(flaky)
    strict = Policy(name="brief", principle="Be brief.", min_score=5, on_judge_error="fail_closed")
    guard = Guard(policies=[strict], judge=judge, strategy=RetryWithFeedback(max_attempts=2))
    decision = guard.run(USER, sampler=FunctionSampler(lambda m, i: "Same."))
    assert len(judge.calls) == 2
    assert decision.candidates[1].duplicate_of is None and decision.candidates[1].scores["brief"].score == 3.0


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
