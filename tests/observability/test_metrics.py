"""Metrics through the OpenTelemetry metrics API (in-memory reader)."""

from __future__ import annotations

import pytest

from ra_guard import AllCandidatesRejected, Guard, SamplerError
from ra_guard.testing import FunctionJudge, FunctionSampler

from .conftest import POLICIES, Pipeline, make_guard, texts_sampler

MESSAGES = [{"role": "user", "content": "Capital of France?"}]


def test_decision_outcomes_latencies_scores_vetoes_fallbacks(otel: Pipeline) -> None:
    guard = make_guard(otel.tracer(), name="faq")
    guard.run(MESSAGES, sampler=texts_sampler("Paris.", "LEAK", "The capital is Paris."))
    with pytest.raises(AllCandidatesRejected):
        guard.run(MESSAGES, sampler=texts_sampler("LEAK"))

    def boom(messages: object, i: int) -> str:
        raise ValueError("down")

    with pytest.raises(SamplerError):
        guard.run(MESSAGES, sampler=FunctionSampler(boom))

    def broken(request: object) -> dict[str, float]:
        raise RuntimeError("judge down")

    Guard(policies=POLICIES[:1], judge=FunctionJudge(broken), tracer=otel.tracer(), name="faq").rerank("q", ["a"])

    m = otel.metrics()
    outcomes = {
        (a["ra_guard.strategy"], a["ra_guard.outcome"], a.get("error.type")): p.value  # type: ignore[attr-defined]
        for a, p in m["ra_guard.decisions"]
    }
    assert outcomes == {
        ("best_of_n", "passed", None): 1,
        ("best_of_n", "rejected", None): 1,
        ("best_of_n", "error", "SamplerError"): 1,
        ("rerank", "passed", None): 1,
    }
    assert all(a["gen_ai.workflow.name"] == "faq" for a, _ in m["ra_guard.decisions"])
    assert sum(p.count for _, p in m["ra_guard.decision.duration"]) == 4  # type: ignore[attr-defined]

    sampling = {a.get("error.type"): p.count for a, p in m["ra_guard.sampling.duration"]}  # type: ignore[attr-defined]
    assert sampling == {None: 2, "SamplerError": 1}
    judge = {(a["ra_guard.policy"], a.get("error.type")): p.count for a, p in m["ra_guard.judge.duration"]}  # type: ignore[attr-defined]
    assert judge == {("concise", None): 2, ("safe", None): 2, ("concise", "JudgeError"): 1}

    scores = {a["ra_guard.policy"]: p for a, p in m["ra_guard.score"]}
    assert scores["safe"].count == 6 and scores["concise"].count == 6  # type: ignore[attr-defined]
    assert scores["safe"].min == 1.0  # type: ignore[attr-defined]
    assert list(scores["safe"].explicit_bounds) == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]  # type: ignore[attr-defined]

    vetoes = {a["ra_guard.policy"]: p.value for a, p in m["ra_guard.vetoes"]}  # type: ignore[attr-defined]
    assert vetoes == {"safe": 1 + 3}
    fallbacks = {(a["ra_guard.fallback.kind"], a.get("ra_guard.policy")): p.value for a, p in m["ra_guard.fallbacks"]}  # type: ignore[attr-defined]
    assert fallbacks == {("judge_error", "concise"): 1}


def test_token_usage_and_retries(otel: Pipeline) -> None:
    from ra_guard.tracing import record_retry
    from ra_guard.types import Sample, Usage
    from ra_guard.verdict import Verdict

    def judge(request: object) -> Verdict:
        record_retry(attempt=2)
        names = request.names  # type: ignore[attr-defined]
        return Verdict(
            scores={n: 4.0 for n in names}, ranking=names, usage=Usage(prompt_tokens=100, completion_tokens=20)
        )

    sampler = FunctionSampler(lambda m, i: Sample(text="hi", usage=Usage(prompt_tokens=3, completion_tokens=2)))
    Guard(policies=POLICIES[:1], judge=FunctionJudge(judge), tracer=otel.tracer()).run(MESSAGES, sampler=sampler, n=2)
    m = otel.metrics()
    tokens = {(a["ra_guard.call"], a["gen_ai.token.type"]): p.sum for a, p in m["gen_ai.client.token.usage"]}  # type: ignore[attr-defined]
    assert tokens == {
        ("sampling", "input"): 6,
        ("sampling", "output"): 4,
        ("judge", "input"): 100,
        ("judge", "output"): 20,
    }
    assert [p.value for _, p in m["ra_guard.judge.retries"]] == [1]  # type: ignore[attr-defined]
