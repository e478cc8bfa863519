"""Spans, evaluation events and root attributes of decisions (in-memory SDK)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

from ra_guard import AllCandidatesRejected, Guard, Policy, RetryWithFeedback, SamplerError
from ra_guard.exceptions import JudgeError
from ra_guard.testing import FunctionJudge, FunctionSampler
from ra_guard.tracing import CAPTURE_CONTENT_ENV, DecisionTracer, record_retry
from ra_guard.types import Sample, Usage
from ra_guard.verdict import Verdict

from .conftest import POLICIES, Pipeline, length_judge, make_guard, texts_sampler

MESSAGES = [{"role": "user", "content": "Capital of France?"}]


def evaluations(span: object) -> list[dict[str, object]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == "gen_ai.evaluation.result"]  # type: ignore[attr-defined]


def test_best_of_n_span_tree_names_and_kinds(otel: Pipeline) -> None:
    guard = make_guard(otel.tracer(), name="faq-guard")
    decision = guard.run(MESSAGES, sampler=texts_sampler("Paris.", "The capital is Paris.", "Paris, France."))

    root = otel.span("invoke_workflow faq-guard")
    sampling = otel.span("chat function")
    judges = [s for s in otel.spans if s.name == "chat function-judge"]
    assert root.parent is None and root.kind is SpanKind.INTERNAL
    assert sampling.parent is not None and sampling.parent.span_id == root.context.span_id
    assert len(judges) == 2 and all(j.parent and j.parent.span_id == root.context.span_id for j in judges)
    assert {s.context.trace_id for s in otel.spans} == {root.context.trace_id}
    assert decision.trace_id == format(root.context.trace_id, "032x")

    attrs = root.attributes or {}
    assert attrs["gen_ai.operation.name"] == "invoke_workflow"
    assert attrs["gen_ai.workflow.name"] == "faq-guard"
    assert attrs["openinference.span.kind"] == "CHAIN"
    assert sampling.attributes["openinference.span.kind"] == "LLM"  # type: ignore[index]
    assert sampling.kind is SpanKind.CLIENT
    assert sampling.attributes["gen_ai.request.choice.count"] == 3  # type: ignore[index]
    assert sampling.attributes["gen_ai.response.finish_reasons"] == ("stop", "stop", "stop")  # type: ignore[index]
    assert {j.attributes["ra_guard.policy"] for j in judges} == {"concise", "safe"}  # type: ignore[index]
    assert all(j.attributes["openinference.span.kind"] == "EVALUATOR" for j in judges)  # type: ignore[index]
    assert all(j.attributes["ra_guard.judge.retries"] == 0 for j in judges)  # type: ignore[index]
    # Phoenix maps gen_ai.* usage itself: no OpenInference token counts of our own.
    assert not any(k.startswith("llm.token_count") for s in otel.spans for k in (s.attributes or {}))


def test_root_carries_the_outcome(otel: Pipeline) -> None:
    guard = make_guard(otel.tracer())
    decision = guard.run(MESSAGES, sampler=texts_sampler("LEAK one", "Paris.", "LEAK two"))
    attrs = otel.span("invoke_workflow ra-guard").attributes or {}
    assert attrs["ra_guard.decision.id"] == decision.decision_id
    assert attrs["ra_guard.decision.chosen_index"] == 1
    assert attrs["ra_guard.decision.attempts"] == 1
    assert attrs["ra_guard.decision.outcome"] == "passed"
    assert attrs["ra_guard.decision.vetoes"] == ("safe: 0, 2",)
    assert attrs["ra_guard.decision.vetoed_indexes"] == (0, 2)
    assert attrs["ra_guard.decision.combined_score"] == pytest.approx(decision.chosen.combined)


def test_one_evaluation_event_per_candidate_and_policy_on_the_sampling_span(otel: Pipeline) -> None:
    guard = make_guard(otel.tracer())
    decision = guard.run(MESSAGES, sampler=texts_sampler("LEAK", "Paris.", "Paris is the capital."))
    events = evaluations(otel.span("chat function"))
    per_policy = [e for e in events if e["gen_ai.evaluation.name"] in ("concise", "safe")]
    assert len(per_policy) == 3 * 2
    by_key = {(e["ra_guard.candidate.index"], e["gen_ai.evaluation.name"]): e for e in per_policy}
    assert by_key[(0, "safe")]["gen_ai.evaluation.score.label"] == "vetoed"
    assert by_key[(0, "safe")]["gen_ai.evaluation.score.value"] == 1.0
    assert by_key[(1, "concise")]["gen_ai.evaluation.score.label"] == "pass"
    assert by_key[(1, "concise")]["gen_ai.evaluation.score.value"] == pytest.approx(4.4)
    assert by_key[(1, "concise")]["gen_ai.response.id"] == f"{decision.decision_id}-1"
    assert "scored 4.4/5" in str(by_key[(1, "concise")]["gen_ai.evaluation.explanation"])
    choices = {e["ra_guard.candidate.index"]: e for e in events if e["gen_ai.evaluation.name"] == "ra_guard.choice"}
    assert choices[1]["gen_ai.evaluation.score.label"] == "chosen"
    assert choices[0]["gen_ai.evaluation.score.label"] == "vetoed"
    assert choices[2]["gen_ai.evaluation.score.label"] == "not_chosen"
    # The sampling span keeps its own duration although it was ended after judging.
    sampling = otel.span("chat function")
    judge = otel.spans[0] if otel.spans[0].name == "chat function-judge" else otel.span("chat function")
    assert sampling.end_time is not None and judge.start_time is not None
    assert sampling.end_time <= max(s.start_time or 0 for s in otel.spans if s.name == "chat function-judge")


def test_provider_response_ids_link_events(otel: Pipeline) -> None:
    sampler = FunctionSampler(
        lambda m, i: Sample(
            text=f"answer {i}",
            finish_reason="length",
            response_id=f"chatcmpl-{i}",
            model="gpt-test",
            usage=Usage(prompt_tokens=5, completion_tokens=7),
        )
    )
    make_guard(otel.tracer(), n=2).run(MESSAGES, sampler=sampler)
    span = otel.span("chat function")
    assert span.attributes["ra_guard.response.ids"] == ("chatcmpl-0", "chatcmpl-1")  # type: ignore[index]
    assert span.attributes["gen_ai.response.model"] == "gpt-test"  # type: ignore[index]
    assert span.attributes["gen_ai.usage.input_tokens"] == 10  # type: ignore[index]
    assert span.attributes["gen_ai.usage.output_tokens"] == 14  # type: ignore[index]
    ids = {e["gen_ai.response.id"] for e in evaluations(span)}
    assert ids == {"chatcmpl-0", "chatcmpl-1"}


def test_check_is_a_guardrail_and_judges_the_original_on_the_root(otel: Pipeline) -> None:
    guard = make_guard(otel.tracer())
    decision = guard.check(MESSAGES, "Paris.")
    assert decision.chosen.source == "original"
    root = otel.span("invoke_workflow ra-guard")
    assert root.attributes["openinference.span.kind"] == "GUARDRAIL"  # type: ignore[index]
    names = sorted(e["gen_ai.evaluation.name"] for e in evaluations(root))
    assert names == ["concise", "ra_guard.choice", "safe"]


def test_retry_with_feedback_keeps_events_with_their_attempt(otel: Pipeline) -> None:
    answers = iter(["A long rambling answer that goes on and on and on", "Paris."])
    sampler = FunctionSampler(lambda m, i: next(answers))
    strict = [Policy(name="concise", principle="Be brief.", min_score=4.3)]
    guard = Guard(
        policies=strict, judge=length_judge(), strategy=RetryWithFeedback(n=1, max_attempts=3), tracer=otel.tracer()
    )
    decision = guard.run(MESSAGES, sampler=sampler)
    assert decision.attempts == 2
    sampling = sorted(
        (s for s in otel.spans if s.name == "chat function"), key=lambda s: s.attributes["ra_guard.attempt"]
    )  # type: ignore[index]
    assert [s.attributes["ra_guard.attempt"] for s in sampling] == [1, 2]  # type: ignore[index]
    assert [e["ra_guard.candidate.index"] for e in evaluations(sampling[0])] == [0, 0]
    assert [e["ra_guard.candidate.index"] for e in evaluations(sampling[1])] == [1, 1]
    assert otel.span("invoke_workflow ra-guard").attributes["ra_guard.decision.attempts"] == 2  # type: ignore[index]


def test_judge_error_fallback_on_root_and_error_on_judge_span(otel: Pipeline) -> None:
    def flaky(request: object) -> dict[str, float]:
        raise RuntimeError("judge exploded")

    guard = Guard(policies=POLICIES[:1], judge=FunctionJudge(flaky), tracer=otel.tracer())
    decision = guard.rerank("Say hi", ["hi", "hello"])
    judge_span = otel.span("chat function-judge")
    assert judge_span.status.status_code is StatusCode.ERROR
    assert judge_span.attributes["error.type"] == "JudgeError"  # type: ignore[index]
    assert [e.name for e in judge_span.events] == ["exception"]
    root = otel.span("invoke_workflow ra-guard")
    assert root.attributes["ra_guard.decision.fallback_kinds"] == ("judge_error",)  # type: ignore[index]
    assert "judge exploded" in root.attributes["ra_guard.decision.fallbacks"][0]  # type: ignore[index]
    labels = {e["gen_ai.evaluation.score.label"] for e in evaluations(root) if e["gen_ai.evaluation.name"] == "concise"}
    assert labels == {"error"}
    assert decision.fallbacks[0].kind == "judge_error"


def test_all_rejected_is_traced_then_raised(otel: Pipeline) -> None:
    guard = make_guard(otel.tracer())
    with pytest.raises(AllCandidatesRejected):
        guard.run(MESSAGES, sampler=texts_sampler("LEAK"))
    root = otel.span("invoke_workflow ra-guard")
    assert root.attributes["ra_guard.decision.outcome"] == "rejected"  # type: ignore[index]
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["error.type"] == "AllCandidatesRejected"  # type: ignore[index]
    assert len(evaluations(otel.span("chat function"))) == 3 * 3


def test_sampler_error_ends_every_span_once(otel: Pipeline) -> None:
    def boom(messages: object, i: int) -> str:
        raise ValueError("no model")

    guard = make_guard(otel.tracer())
    with pytest.raises(SamplerError):
        guard.run(MESSAGES, sampler=FunctionSampler(boom))
    sampling = otel.span("chat function")
    assert sampling.status.status_code is StatusCode.ERROR
    assert [e.name for e in sampling.events] == ["exception"]  # recorded once, not twice
    assert otel.span("invoke_workflow ra-guard").attributes["error.type"] == "SamplerError"  # type: ignore[index]


def test_record_retry_counts_on_the_judge_span(otel: Pipeline) -> None:
    async def retrying(request: object) -> dict[str, float]:
        record_retry(TimeoutError("read timed out"), attempt=2)
        record_retry(attempt=3)
        return {"candidate-0": 4.0}

    guard = Guard(policies=POLICIES[:1], judge=FunctionJudge(retrying), tracer=otel.tracer())
    guard.rerank("q", ["a"])
    span = otel.span("chat function-judge")
    assert span.attributes["ra_guard.judge.retries"] == 2  # type: ignore[index]
    assert [e.name for e in span.events] == ["ra_guard.retry", "ra_guard.retry"]
    assert span.attributes["ra_guard.judge.latency_s"] >= 0  # type: ignore[index,operator]


def test_content_is_off_by_default(otel: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    judge = FunctionJudge(
        lambda r: Verdict(scores={n: 4.0 for n in r.names}, ranking=r.names, reasoning="SECRET-REASONING about it")
    )
    guard = Guard(policies=POLICIES[:1], judge=judge, tracer=otel.tracer())
    guard.run([{"role": "user", "content": "PRIVATE-QUESTION"}], sampler=texts_sampler("PRIVATE-ANSWER"), n=1)
    dump = dump_spans(otel)
    for text in ("PRIVATE-QUESTION", "PRIVATE-ANSWER", "SECRET-REASONING"):
        assert text not in dump
    assert "gen_ai.input.messages" not in dump


@pytest.mark.parametrize("switch", ["setting", "true", "SPAN_ONLY", "SPAN_AND_EVENT"])
def test_content_on_by_setting_or_env(otel: Pipeline, monkeypatch: pytest.MonkeyPatch, switch: str) -> None:
    if switch == "setting":
        monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
        tracer = otel.tracer(capture_content=True)
    else:
        monkeypatch.setenv(CAPTURE_CONTENT_ENV, switch)
        tracer = otel.tracer()
    judge = FunctionJudge(
        lambda r: Verdict(scores={n: 4.0 for n in r.names}, ranking=r.names, reasoning="the judge thinks so")
    )
    guard = Guard(policies=POLICIES[:1], judge=judge, tracer=tracer)
    guard.run([{"role": "user", "content": "the question"}], sampler=texts_sampler("the answer"), n=1)
    sampling = otel.span("chat function").attributes or {}
    assert json.loads(str(sampling["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "the question"}]}
    ]
    assert json.loads(str(sampling["gen_ai.output.messages"]))[0]["parts"][0]["content"] == "the answer"
    judge_span = otel.span("chat function-judge").attributes or {}
    assert "the judge thinks so" in str(judge_span["gen_ai.output.messages"])
    root = otel.span("invoke_workflow ra-guard")
    assert root.attributes["input.value"] == "the question"  # type: ignore[index]
    assert root.attributes["output.value"] == "the answer"  # type: ignore[index]
    assert "the judge thinks so" in str(evaluations(otel.span("chat function"))[0]["gen_ai.evaluation.explanation"])


@pytest.mark.parametrize("value", ["false", "NO_CONTENT", "EVENT_ONLY", ""])
def test_env_values_that_keep_content_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, value)
    assert DecisionTracer().capture_content is False


def test_redaction_hook_and_length_cap(otel: Pipeline) -> None:
    tracer = otel.tracer(
        capture_content=True, redact=lambda t: t.replace("alice@example.com", "<email>"), max_content_length=40
    )
    guard = Guard(policies=POLICIES[:1], judge=length_judge(), tracer=tracer)
    guard.run([{"role": "user", "content": "mail alice@example.com " + "x" * 100}], sampler=texts_sampler("ok"), n=1)
    content = json.loads(str(otel.span("chat function").attributes["gen_ai.input.messages"]))  # type: ignore[index]
    text = content[0]["parts"][0]["content"]
    assert text.startswith("mail <email> xxx") and text.endswith("…[truncated 73 chars]")
    assert "alice@example.com" not in dump_spans(otel)


def test_spans_are_independent_across_concurrent_decisions(otel: Pipeline) -> None:
    guard = make_guard(otel.tracer(), n=2)
    sampler = FunctionSampler(lambda m, i: asyncio.sleep(0.01, result=f"answer {i}"))

    async def many() -> list[object]:
        return list(await asyncio.gather(*(guard.arun(MESSAGES, sampler=sampler) for _ in range(5))))

    decisions = asyncio.run(many())
    roots = [s for s in otel.spans if s.parent is None]
    assert len(roots) == 5
    for root in roots:
        children = [s for s in otel.spans if s.parent and s.parent.span_id == root.context.span_id]
        assert sorted(c.name for c in children) == ["chat function", "chat function-judge", "chat function-judge"]
        assert len(evaluations(next(c for c in children if c.name == "chat function"))) == 2 * 3
    assert len({d.trace_id for d in decisions}) == 5  # type: ignore[attr-defined]


def test_no_sdk_overhead_is_small() -> None:
    """With no SDK, tracing and metrics stay well inside the 1 ms orchestration budget at N=4."""
    policies = [Policy(name=f"p{i}", principle="Be brief.") for i in range(3)]
    judge = FunctionJudge(lambda r: {n: 4.0 for n in r.responses})
    sampler = texts_sampler("a", "b", "c", "d")
    # What "no SDK configured" means, whatever another test did to the global providers.
    tracer = DecisionTracer(NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    guard = Guard(policies=policies, judge=judge, strategy="best_of_n", tracer=tracer)

    async def cpu_per_decision(rounds: int) -> float:
        for _ in range(50):
            await guard.arun(MESSAGES, sampler=sampler, n=4)
        start = time.process_time()
        for _ in range(rounds):
            await guard.arun(MESSAGES, sampler=sampler, n=4)
        judge.calls.clear()
        return (time.process_time() - start) / rounds

    best = min(asyncio.run(cpu_per_decision(300)) for _ in range(3))
    assert best < 0.001, f"{best * 1e6:.0f} µs per decision"


def dump_spans(otel: Pipeline) -> str:
    return "\n".join(span.to_json() for span in otel.spans)


def test_judge_error_message_is_redacted(otel: Pipeline) -> None:
    def leaky(request: object) -> dict[str, float]:
        raise JudgeError("401 Unauthorized; headers={'Authorization': 'Bearer sk-live-abcdefghijklmnop1234'}")

    Guard(policies=POLICIES[:1], judge=FunctionJudge(leaky), tracer=otel.tracer()).rerank("q", ["a"])
    assert "sk-live-abcdefghijklmnop1234" not in dump_spans(otel)
    assert "[REDACTED]" in dump_spans(otel)


def test_spans_are_named_for_the_model_when_the_backend_knows_it(otel: Pipeline) -> None:
    sampler = texts_sampler("Paris.")
    sampler.name = "litellm:gpt-4o-mini"
    sampler.model = "gpt-4o-mini"
    judge = length_judge()
    judge.name = "openai-compat:WisdomShell/RewardAnything-8B-v1@gpu-1:8000"
    judge.model = "WisdomShell/RewardAnything-8B-v1"
    Guard(policies=POLICIES[:1], judge=judge, tracer=otel.tracer()).run(MESSAGES, sampler=sampler, n=1)
    sampling = otel.span("chat gpt-4o-mini")
    assert sampling.attributes["gen_ai.request.model"] == "gpt-4o-mini"  # type: ignore[index]
    assert sampling.attributes["ra_guard.backend"] == "litellm:gpt-4o-mini"  # type: ignore[index]
    judge_span = otel.span("chat WisdomShell/RewardAnything-8B-v1")
    assert judge_span.attributes["ra_guard.backend"] == judge.name  # type: ignore[index]
    m = otel.metrics()
    assert {a["gen_ai.request.model"] for a, _ in m["ra_guard.judge.duration"]} == {"WisdomShell/RewardAnything-8B-v1"}
