"""Retry-with-feedback: the critique reaches the model, attempts are bounded, the best is kept."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from ra_guard import BestOfN, Budget, Guard, JudgeRequest, Policy, RetryWithFeedback, Sample, Verdict
from ra_guard.testing import FunctionJudge, FunctionSampler
from ra_guard.types import Messages

USER = [{"role": "user", "content": "Explain recursion."}]
POLICY = Policy(name="examples", principle="Include a worked example.", min_score=4)


def judge_by_text(scores: Mapping[str, float]) -> FunctionJudge:
    def score(req: JudgeRequest) -> Verdict:
        s = {n: float(scores[t]) for n, t in req.responses.items()}
        ranking = sorted(s, key=lambda n: -s[n])
        return Verdict(scores=s, ranking=ranking, reasoning=f"{ranking[0]} lacks a worked example")

    return FunctionJudge(score)


class Scripted:
    """Answers by attempt; records the conversation it was given each time."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.seen: list[list[dict[str, str]]] = []

    def __call__(self, messages: Messages, i: int) -> str:
        self.seen.append([dict(m) for m in messages])
        return self.answers[len(self.seen) - 1]


def test_retries_with_critique_until_passing() -> None:
    model = Scripted(["v1", "v2", "v3"])
    guard = Guard(
        policies=[POLICY], judge=judge_by_text({"v1": 2, "v2": 5, "v3": 5}), strategy=RetryWithFeedback(max_attempts=3)
    )
    decision = guard.run(USER, sampler=FunctionSampler(model))
    assert decision.text == "v2"
    assert decision.attempts == 2 and decision.passed
    assert [c.attempt for c in decision.candidates] == [1, 2]
    first, second = model.seen
    assert first == USER
    assert second[:1] == USER
    assert second[1] == {"role": "assistant", "content": "v1"}
    critique = second[2]["content"]
    assert second[2]["role"] == "user"
    assert "examples: Include a worked example. (scored 2/5; needs 4)" in critique
    assert "candidate-0 lacks a worked example" in critique


def test_attempts_are_bounded_and_best_across_attempts_wins() -> None:
    model = Scripted(["v1", "v2", "v3", "v4"])
    guard = Guard(
        policies=[POLICY],
        judge=judge_by_text({"v1": 1, "v2": 3, "v3": 2, "v4": 5}),
        strategy=RetryWithFeedback(max_attempts=3),
    )
    decision = guard.run(USER, sampler=FunctionSampler(model))
    assert len(model.seen) == 3
    assert decision.text == "v2" and not decision.passed
    # the retry after attempt 2 critiques the best so far (v2), not the latest
    assert model.seen[2][1]["content"] == "v2"


def test_first_pass_needs_one_attempt() -> None:
    model = Scripted(["good"])
    guard = Guard(policies=[POLICY], judge=judge_by_text({"good": 5}), strategy="retry_with_feedback")
    assert guard.run(USER, sampler=FunctionSampler(model)).attempts == 1


def test_candidate_budget_stops_retries() -> None:
    model = Scripted(["a", "b", "c"])
    guard = Guard(
        policies=[POLICY],
        judge=judge_by_text({"a": 1, "b": 1, "c": 1}),
        strategy=RetryWithFeedback(max_attempts=3),
        budget=Budget(max_candidates=2),
        on_all_rejected="return_best",
    )
    decision = guard.run(USER, sampler=FunctionSampler(model))
    assert len(decision.candidates) == 2 and len(model.seen) == 2


def test_custom_feedback_template() -> None:
    model = Scripted(["a", "b"])
    strategy = RetryWithFeedback(max_attempts=2, feedback_template="FIX:\n{failures}\nNOTES:{notes}")
    Guard(policies=[POLICY], judge=judge_by_text({"a": 1, "b": 5}), strategy=strategy).run(
        USER, sampler=FunctionSampler(model)
    )
    assert model.seen[1][2]["content"].startswith("FIX:\n- examples")


@pytest.mark.parametrize("bad", [{"max_attempts": 0}, {"n": 0}])
def test_invalid_settings(bad: dict[str, int]) -> None:
    from ra_guard import ConfigurationError

    with pytest.raises(ConfigurationError):
        RetryWithFeedback(**bad)


JSON_HARD = Policy(name="valid-json-only", principle="Reply with valid JSON only.", kind="hard", min_score=4)


def test_retries_when_a_hard_policy_vetoes_every_candidate() -> None:
    # The README's retry example: a hard policy vetoes the first answer; the retry must still happen,
    # with the critique of the best vetoed candidate.
    model = Scripted(["not json", '{"ok": true}'])
    guard = Guard(
        policies=[JSON_HARD],
        judge=judge_by_text({"not json": 1, '{"ok": true}': 5}),
        strategy=RetryWithFeedback(max_attempts=3),
    )
    decision = guard.run(USER, sampler=FunctionSampler(model))
    assert decision.text == '{"ok": true}' and decision.passed
    assert decision.attempts == 2
    assert model.seen[1][1] == {"role": "assistant", "content": "not json"}
    assert "valid-json-only: Reply with valid JSON only. (scored 1/5; needs 4)" in model.seen[1][2]["content"]


def test_check_with_retry_strategy_retries_a_failing_output_with_its_critique() -> None:
    model = Scripted(["v2", "v3"])
    guard = Guard(
        policies=[POLICY],
        judge=judge_by_text({"agent answer": 2, "v2": 3, "v3": 5}),
        strategy=RetryWithFeedback(max_attempts=2),
    )
    decision = guard.check(USER, "agent answer", sampler=FunctionSampler(model))
    assert decision.text == "v3" and decision.passed
    assert [c.source for c in decision.candidates] == ["original", "sampled", "sampled"]
    # the first retry already carries the original's critique
    assert model.seen[0][1] == {"role": "assistant", "content": "agent answer"}
    assert "scored 2/5; needs 4" in model.seen[0][2]["content"]
    assert decision.strategy == "check"


def test_check_keeps_a_passing_output_without_sampling() -> None:
    model = Scripted([])
    guard = Guard(policies=[POLICY], judge=judge_by_text({"fine": 5}), strategy=RetryWithFeedback())
    decision = guard.check(USER, "fine", sampler=FunctionSampler(model))
    assert decision.chosen.source == "original" and model.seen == []


def test_check_with_best_of_n_uses_the_strategys_n_and_temperature() -> None:
    temperatures: list[float | None] = []

    class Recording(FunctionSampler):
        async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
            temperatures.append(temperature)
            return await super().asample(messages, n=n, temperature=temperature)

    guard = Guard(
        policies=[POLICY], judge=judge_by_text({"bad": 1, "a": 2, "b": 5}), strategy=BestOfN(n=2, temperature=0.3)
    )
    decision = guard.check(USER, "bad", sampler=Recording(lambda m, i: ["a", "b"][i]))
    assert decision.text == "b" and len(decision.candidates) == 3
    assert temperatures == [0.3]


def test_a_call_can_run_another_strategy_without_changing_the_guards() -> None:
    sampler = FunctionSampler(lambda messages, i: f"answer {i}")
    guard = Guard(
        policies=[Policy(name="p", principle="Be brief.")],
        judge=FunctionJudge(lambda r: {k: 4 for k in r.responses}),
        strategy=BestOfN(n=3),
    )
    once = guard.run("q", sampler=sampler, strategy=RetryWithFeedback(max_attempts=2))
    assert once.strategy == "retry_with_feedback" and len(once.candidates) == 1
    by_name = guard.run("q", sampler=sampler, strategy="retry_with_feedback")
    assert by_name.strategy == "retry_with_feedback"
    assert guard.run("q", sampler=sampler).strategy == "best_of_n" and guard.strategy.name == "best_of_n"


def test_a_check_can_run_another_strategy_without_changing_the_guards() -> None:
    model = Scripted(["v2", "v3"])
    guard = Guard(policies=[POLICY], judge=judge_by_text({"agent answer": 2, "v2": 3, "v3": 5}), strategy=BestOfN(n=2))
    decision = guard.check(
        USER, "agent answer", sampler=FunctionSampler(model), strategy=RetryWithFeedback(max_attempts=2)
    )
    assert decision.strategy == "check" and decision.text == "v3"
    assert [c.attempt for c in decision.candidates] == [0, 1, 2]  # two rounds of one: retried, not best-of-2
    assert "scored 2/5; needs 4" in model.seen[0][2]["content"]  # the output's critique came first
    assert guard.strategy == BestOfN(n=2)


async def test_acheck_takes_a_strategy_by_name() -> None:
    model = Scripted(["v2"])
    guard = Guard(policies=[POLICY], judge=judge_by_text({"agent answer": 2, "v2": 5}), strategy=BestOfN(n=3))
    decision = await guard.acheck(USER, "agent answer", sampler=FunctionSampler(model), strategy="retry_with_feedback")
    assert decision.text == "v2" and len(decision.candidates) == 2 and len(model.seen) == 1
    assert model.seen[0][1] == {"role": "assistant", "content": "agent answer"}


def test_check_refuses_an_unknown_strategy_name() -> None:
    from ra_guard import ConfigurationError

    guard = Guard(policies=[POLICY], judge=judge_by_text({"agent answer": 2}))
    with pytest.raises(ConfigurationError, match="unknown strategy 'retry'"):
        guard.check(USER, "agent answer", sampler=FunctionSampler(Scripted([])), strategy="retry")
