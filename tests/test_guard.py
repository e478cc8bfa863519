"""The guard loop with test doubles: selection, vetoes, failure modes, check, rerank, budgets."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from ra_guard import (
    AllCandidatesRejected,
    BestOfN,
    Budget,
    ConfigurationError,
    DeadlineExceeded,
    Decision,
    Guard,
    JudgeError,
    JudgeRequest,
    Policy,
    SamplerError,
    UnknownBackendError,
    Verdict,
)
from ra_guard.testing import FunctionJudge, FunctionSampler

USER = [{"role": "user", "content": "What is the capital of France?"}]
TEXTS = ["Paris.", "It is Paris, the capital and largest city of France.", "Lyon.", "I cannot help with that."]

SCORES = {  # per principle, per text
    "brief": {TEXTS[0]: 5, TEXTS[1]: 3, TEXTS[2]: 5, TEXTS[3]: 4},
    "correct": {TEXTS[0]: 5, TEXTS[1]: 5, TEXTS[2]: 1, TEXTS[3]: 2},
}

BRIEF = Policy(name="brief", principle="brief", weight=1.0)
CORRECT_HARD = Policy(name="correct", principle="correct", kind="hard", min_score=3)


def table_judge(table: Mapping[str, Mapping[str, float]] = SCORES, **kw: float) -> FunctionJudge:
    return FunctionJudge(lambda req: {n: table[req.principle][t] for n, t in req.responses.items()}, **kw)


def fixed_sampler(texts: list[str] = TEXTS) -> FunctionSampler:
    return FunctionSampler(lambda messages, i: texts[i % len(texts)])


def test_best_of_n_picks_highest_combined_and_hard_vetoes() -> None:
    guard = Guard(policies=[BRIEF, CORRECT_HARD], judge=table_judge(), strategy=BestOfN(n=4))
    decision = guard.run(USER, sampler=fixed_sampler())
    assert decision.text == "Paris."
    assert decision.passed
    assert len(decision.candidates) == 4
    lyon = decision.candidates[2]
    assert lyon.vetoed and lyon.scores["correct"].vetoed and not lyon.scores["brief"].vetoed
    assert decision.vetoes == {"correct": [2, 3]}
    assert decision.judge_calls == 2  # one listwise call per policy
    assert decision.candidates[0].scores["brief"].score == 5
    assert "candidate 0" in decision.why and "vetoed: [2, 3]" in decision.why


def test_soft_weights_change_the_winner() -> None:
    table = {"a": {"x": 5, "y": 2}, "b": {"x": 1, "y": 5}}
    sampler = fixed_sampler(["x", "y"])
    light_b = [Policy(name="a", principle="a", weight=3), Policy(name="b", principle="b", weight=1)]
    heavy_b = [Policy(name="a", principle="a", weight=1), Policy(name="b", principle="b", weight=3)]
    assert Guard(policies=light_b, judge=table_judge(table)).run(USER, sampler=sampler, n=2).text == "x"
    assert Guard(policies=heavy_b, judge=table_judge(table)).run(USER, sampler=sampler, n=2).text == "y"


def test_judge_ranking_breaks_score_ties() -> None:
    def judge(req: JudgeRequest) -> Verdict:
        names = req.names
        return Verdict(scores={n: 4.0 for n in names}, ranking=list(reversed(names)))

    decision = Guard(policies=[BRIEF], judge=FunctionJudge(judge)).run(USER, sampler=fixed_sampler(), n=3)
    assert decision.chosen_index == 2  # ranked first by the judge among equal scores


def test_all_vetoed_raises_with_candidates_and_scores() -> None:
    table = {"correct": dict.fromkeys(TEXTS, 1)}
    guard = Guard(policies=[CORRECT_HARD], judge=table_judge(table))
    with pytest.raises(AllCandidatesRejected) as info:
        guard.run(USER, sampler=fixed_sampler(), n=2)
    err = info.value
    assert len(err.candidates) == 2
    assert err.scores == [{"correct": 1}, {"correct": 1}]
    assert "return_best" in str(err)
    assert err.decision.passed is False


def test_all_vetoed_return_best_option() -> None:
    table = {"correct": {TEXTS[0]: 2, TEXTS[1]: 1}}
    guard = Guard(policies=[CORRECT_HARD], judge=table_judge(table), on_all_rejected="return_best")
    decision = guard.run(USER, sampler=fixed_sampler(), n=2)
    assert decision.text == TEXTS[0]
    assert decision.passed is False
    assert [f.kind for f in decision.fallbacks] == ["all_rejected"]


def failing_for(principle: str, table: Mapping[str, Mapping[str, float]] = SCORES) -> FunctionJudge:
    def judge(req: JudgeRequest) -> Mapping[str, float]:
        if req.principle == principle:
            raise JudgeError("upstream 503", judge="stub")
        return {n: table[req.principle][t] for n, t in req.responses.items()}

    return FunctionJudge(judge)


def test_fail_open_ignores_the_policy_and_records_it() -> None:
    guard = Guard(
        policies=[BRIEF, CORRECT_HARD.model_copy(update={"on_judge_error": "fail_open"})], judge=failing_for("correct")
    )
    decision = guard.run(USER, sampler=fixed_sampler(), n=3)
    # "correct" is ignored, so Lyon (brief 5) is no longer vetoed; the tie with Paris goes to the lower index
    assert decision.text == "Paris."
    assert decision.candidates[2].scores["correct"].error is not None
    assert not decision.candidates[2].vetoed
    (fallback,) = decision.fallbacks
    assert (fallback.kind, fallback.policy) == ("judge_error", "correct")
    assert "fail_open" in fallback.action and "upstream 503" in fallback.reason


def test_fail_closed_vetoes_everything() -> None:
    guard = Guard(
        policies=[BRIEF, CORRECT_HARD.model_copy(update={"on_judge_error": "fail_closed"})],
        judge=failing_for("correct"),
    )
    with pytest.raises(AllCandidatesRejected) as info:
        guard.run(USER, sampler=fixed_sampler(), n=2)
    assert info.value.decision.fallbacks[0].action.endswith("(fail_closed)")


def test_policies_are_judged_concurrently() -> None:
    in_flight = 0
    peak = 0

    async def judge(req: JudgeRequest) -> Mapping[str, float]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return dict.fromkeys(req.names, 4)

    policies = [Policy(name=f"p{i}", principle=f"p{i}") for i in range(5)]
    Guard(policies=policies, judge=FunctionJudge(judge)).run(USER, sampler=fixed_sampler(), n=2)
    assert peak == 5


def test_candidates_are_sampled_together_and_judged_listwise() -> None:
    judge = table_judge()
    Guard(policies=[BRIEF], judge=judge, strategy=BestOfN(n=4)).run(USER, sampler=fixed_sampler())
    (request,) = judge.calls
    assert sorted(request.responses.values()) == sorted(TEXTS)
    assert request.prompt == USER[0]["content"]
    assert request.mask is True


def test_sampler_errors_surface_typed() -> None:
    def boom(messages: object, i: int) -> str:
        raise RuntimeError("model down")

    guard = Guard(policies=[BRIEF], judge=table_judge())
    with pytest.raises(SamplerError, match="model down"):
        guard.run(USER, sampler=FunctionSampler(boom))


def test_decision_round_trips_through_json() -> None:
    decision = Guard(policies=[BRIEF, CORRECT_HARD], judge=table_judge()).run(USER, sampler=fixed_sampler(), n=4)
    again = Decision.model_validate_json(decision.model_dump_json())
    assert again == decision
    assert again.chosen.scores["correct"].score == 5


def test_usage_is_summed() -> None:
    from ra_guard import Sample, Usage

    sampler = FunctionSampler(
        lambda m, i: Sample(text=TEXTS[i], usage=Usage(prompt_tokens=10, completion_tokens=i + 1))
    )
    judge = FunctionJudge(
        lambda r: Verdict(
            scores=dict.fromkeys(r.names, 4.0), ranking=r.names, usage=Usage(prompt_tokens=100, completion_tokens=7)
        )
    )
    decision = Guard(policies=[BRIEF, CORRECT_HARD], judge=judge).run(USER, sampler=sampler, n=3)
    assert decision.sampling_usage == Usage(prompt_tokens=30, completion_tokens=6)
    assert decision.judge_usage == Usage(prompt_tokens=200, completion_tokens=14)


# -- check ----------------------------------------------------------------------------


def test_check_keeps_a_passing_output_without_sampling() -> None:
    sampler = FunctionSampler(lambda m, i: pytest.fail("must not sample"))
    decision = Guard(policies=[BRIEF, CORRECT_HARD], judge=table_judge()).check(USER, "Paris.", sampler=sampler)
    assert decision.chosen.source == "original" and decision.passed
    assert decision.attempts == 1 and len(decision.candidates) == 1


def test_check_replaces_a_failing_output_judging_it_with_alternatives() -> None:
    judge = table_judge()
    guard = Guard(policies=[BRIEF, CORRECT_HARD], judge=judge)
    decision = guard.check(USER, "Lyon.", sampler=fixed_sampler(TEXTS[:2]), n=2)
    assert decision.text == "Paris."
    assert decision.candidates[0].source == "original" and decision.candidates[0].vetoed
    assert {c.source for c in decision.candidates[1:]} == {"sampled"}
    # second round: the original and the alternatives in one listwise call per policy
    assert len(judge.calls[-1].responses) == 3


def test_check_always_compares() -> None:
    decision = Guard(policies=[BRIEF, CORRECT_HARD], judge=table_judge()).check(
        USER, TEXTS[1], sampler=fixed_sampler(TEXTS[:1]), n=1, mode="always"
    )
    assert decision.text == "Paris."
    assert len(decision.candidates) == 2


def test_check_without_sampler_only_judges() -> None:
    decision = Guard(policies=[BRIEF], judge=table_judge(), on_all_rejected="return_best").check(USER, "Lyon.")
    assert decision.text == "Lyon." and len(decision.candidates) == 1


# -- rerank ---------------------------------------------------------------------------


def test_rerank_scores_given_candidates() -> None:
    decision = Guard(policies=[BRIEF, CORRECT_HARD], judge=table_judge()).rerank(USER[0]["content"], TEXTS)
    assert decision.text == "Paris."
    assert {c.source for c in decision.candidates} == {"given"}
    assert decision.strategy == "rerank"


async def test_async_entry_points_and_sync_inside_a_loop() -> None:
    guard = Guard(policies=[BRIEF], judge=table_judge())
    decision = await guard.arun(USER, sampler=fixed_sampler(), n=2)
    assert decision.text == "Paris."
    # a sync call from inside a running loop (notebooks, frameworks) must not deadlock
    assert guard.rerank("q", TEXTS[:2]).text == "Paris."


# -- budgets --------------------------------------------------------------------------


def test_deadline_cuts_a_slow_judge_and_follows_the_failure_mode() -> None:
    guard = Guard(policies=[BRIEF], judge=table_judge(delay=5), budget=Budget(deadline_s=0.2))
    decision = guard.run(USER, sampler=fixed_sampler(), n=2)
    assert decision.fallbacks[0].kind == "deadline"
    assert decision.candidates[0].scores["brief"].score is None
    assert decision.latency_s < 4  # the judge was cancelled, not awaited


def test_deadline_during_first_sampling_raises() -> None:
    async def slow(messages: object, i: int) -> str:
        await asyncio.sleep(5)
        return "late"

    guard = Guard(policies=[BRIEF], judge=table_judge(), budget=Budget(deadline_s=0.1))
    with pytest.raises(DeadlineExceeded, match="deadline_s"):
        guard.run(USER, sampler=FunctionSampler(slow))


def test_max_candidates_caps_sampling() -> None:
    guard = Guard(policies=[BRIEF], judge=table_judge(), strategy=BestOfN(n=8), budget=Budget(max_candidates=3))
    assert len(guard.run(USER, sampler=fixed_sampler()).candidates) == 3


def test_max_judge_calls_skips_remaining_policies_by_their_failure_mode() -> None:
    guard = Guard(policies=[BRIEF, CORRECT_HARD], judge=table_judge(), budget=Budget(max_judge_calls=1))
    decision = guard.run(USER, sampler=fixed_sampler(), n=2)
    assert decision.judge_calls == 1
    assert [(f.kind, f.policy) for f in decision.fallbacks] == [("budget", "correct")]


# -- configuration errors -------------------------------------------------------------


def test_configuration_errors_say_what_to_do() -> None:
    judge = table_judge()
    with pytest.raises(ConfigurationError, match="at least one policy"):
        Guard(policies=[], judge=judge)
    with pytest.raises(ConfigurationError, match="repeated: brief"):
        Guard(policies=[BRIEF, BRIEF], judge=judge)
    with pytest.raises(ConfigurationError, match="unknown strategy 'best_of'"):
        Guard(policies=[BRIEF], judge=judge, strategy="best_of")
    with pytest.raises(UnknownBackendError, match="did you mean 'openai-compat'"):
        Guard(policies=[BRIEF], judge="openai-compt:http://127.0.0.1:1/v1")
    with pytest.raises(UnknownBackendError, match="needs a target"):
        Guard(policies=[BRIEF], judge="litellm:")
    with pytest.raises(ConfigurationError, match="needs a sampler"):
        Guard(policies=[BRIEF], judge=judge).run(USER)
    with pytest.raises(ConfigurationError, match=r"BestOfN\.n"):
        BestOfN(n=0)


def test_guard_accepts_shipped_names_and_paths(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nprinciple: Be mine.\n", encoding="utf-8")
    guard = Guard(policies=["concise", path], judge=table_judge())
    assert [p.name for p in guard.policies] == ["concise", "mine"]


def test_a_judge_bug_or_an_incomplete_verdict_follows_the_failure_mode() -> None:
    def buggy(req: JudgeRequest) -> Verdict:
        if req.principle == "brief":
            raise ZeroDivisionError("oops")
        first = req.names[0]
        return Verdict(scores={first: 5.0}, ranking=[first])  # forgets the others

    guard = Guard(
        policies=[BRIEF, CORRECT_HARD.model_copy(update={"on_judge_error": "fail_open"})], judge=FunctionJudge(buggy)
    )
    decision = guard.run(USER, sampler=fixed_sampler(), n=2)
    reasons = {f.policy: f.reason for f in decision.fallbacks}
    assert "ZeroDivisionError" in reasons["brief"]
    assert "[missing_candidate]" in reasons["correct"] and "candidate-1" in reasons["correct"]
    assert decision.chosen_index == 0


def test_an_unexpected_exception_from_a_custom_judge_never_loses_the_request() -> None:
    from ra_guard import Judge

    class Broken(Judge):
        name = "broken"

        async def ajudge(self, request: JudgeRequest) -> Verdict:
            raise KeyError("bug in a custom judge")

    decision = Guard(policies=[BRIEF], judge=Broken()).run(USER, sampler=fixed_sampler(), n=2)
    assert decision.text == TEXTS[0]
    assert "KeyError" in decision.fallbacks[0].reason


def test_function_judge_ranks_best_first_and_keeps_ties_in_the_callers_order() -> None:
    judge = FunctionJudge(lambda req: {"a": 3, "b": 5, "c": 3, "d": 5, "e": 1})
    request = JudgeRequest(principle="p", prompt="q", responses={k: k for k in "abcde"})
    verdict = judge.judge(request)
    assert verdict.ranking == ["b", "d", "a", "c", "e"]
    assert verdict.scores == {"a": 3.0, "b": 5.0, "c": 3.0, "d": 5.0, "e": 1.0}
    assert list(verdict.scores) == list("abcde")


def test_each_decision_gets_a_fresh_uuid4_hex_id() -> None:
    import uuid

    guard = Guard(policies=[BRIEF], judge=table_judge())
    ids = [guard.run(USER, sampler=fixed_sampler(), n=2).decision_id for _ in range(20)]
    assert len(set(ids)) == len(ids)
    for decision_id in ids:
        parsed = uuid.UUID(hex=decision_id)
        assert parsed.hex == decision_id and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_function_sampler_answer_is_a_plain_str_sample_and_a_bad_one_names_the_sampler() -> None:
    class Marked(str):
        pass

    sampler = FunctionSampler(lambda m, i: Marked(TEXTS[i]), name="mine")
    decision = Guard(policies=[BRIEF], judge=table_judge()).run(USER, sampler=sampler, n=2)
    assert [type(c.text) for c in decision.candidates] == [str, str]
    assert decision.model_dump_json() == Decision.model_validate_json(decision.model_dump_json()).model_dump_json()
    assert [c.finish_reason for c in decision.candidates] == ["stop", "stop"]

    async def none_for_one(m: object, i: int) -> str | None:
        return None if i == 1 else TEXTS[i]

    with pytest.raises(SamplerError, match=r"^mine: sampling function returned None for sample 1; return the answer"):
        Guard(policies=[BRIEF], judge=table_judge()).run(USER, sampler=FunctionSampler(none_for_one, name="mine"), n=2)


def test_async_sampling_functions_fail_typed_and_name_the_sampler() -> None:
    guard = Guard(policies=[BRIEF], judge=table_judge())

    async def down(messages: object, i: int) -> str:
        if i == 2:
            raise RuntimeError("model down")
        return TEXTS[i]

    with pytest.raises(SamplerError, match=r"^mine: sampling function raised RuntimeError\('model down'\)$"):
        guard.run(USER, sampler=FunctionSampler(down, name="mine"), n=3)

    async def wrong_arity(messages: object) -> str:  # called with (messages, i): a TypeError at the call
        return "x"

    # No coroutine is left un-awaited (pytest turns that RuntimeWarning into an error).
    with pytest.raises(SamplerError, match=r"^mine: sampling function raised TypeError"):
        guard.run(USER, sampler=FunctionSampler(wrong_arity, name="mine"), n=3)  # type: ignore[arg-type]

    async def a_number(messages: object, i: int) -> object:
        return 42 if i == 1 else TEXTS[i]

    with pytest.raises(SamplerError, match=r"^mine: sampling function returned int for sample 1; return the answer"):
        guard.run(USER, sampler=FunctionSampler(a_number, name="mine"), n=3)  # type: ignore[arg-type]


def test_async_sampling_functions_may_mix_strings_and_samples_in_order() -> None:
    from ra_guard import Sample

    async def mixed(messages: object, i: int) -> str | Sample:
        return Sample(text=TEXTS[i], finish_reason="length", response_id=f"r{i}") if i % 2 else TEXTS[i]

    decision = Guard(policies=[BRIEF], judge=table_judge()).run(USER, sampler=FunctionSampler(mixed), n=4)
    assert [c.text for c in decision.candidates] == TEXTS
    assert [c.finish_reason for c in decision.candidates] == ["stop", "length", "stop", "length"]
    assert [c.response_id for c in decision.candidates] == [None, "r1", None, "r3"]
