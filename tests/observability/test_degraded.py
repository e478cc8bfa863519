"""Fallbacks are seen: counted in a metric, and marked on the decision span as degraded."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from ra_guard import AllCandidatesRejected, BestOfN, Guard, Policy
from ra_guard.decision import Candidate, Decision, Fallback
from ra_guard.exceptions import JudgeError
from ra_guard.testing import FunctionJudge

from .conftest import POLICIES, Pipeline, length_judge, make_guard, texts_sampler

MESSAGES = [{"role": "user", "content": "Capital of France?"}]


def refusing_judge() -> FunctionJudge:
    def refuse(request: object) -> dict[str, float]:
        raise JudgeError("connection refused: http://[REDACTED]@127.0.0.1:9/v1", judge="ra")

    return FunctionJudge(refuse)


def test_a_judge_that_cannot_answer_marks_the_decision_degraded(otel: Pipeline) -> None:
    policies = [Policy(name="concise", principle="Be brief."), Policy(name="polite", principle="Be polite.")]
    guard = Guard(policies=policies, judge=refusing_judge(), tracer=otel.tracer(), name="faq")
    decision = guard.rerank("q", ["a", "b"])
    assert decision.passed  # fail_open: approved although nobody judged it...
    root = otel.span("invoke_workflow faq")
    attributes = root.attributes or {}
    assert attributes["ra_guard.decision.degraded"] is True  # ...and the trace says so
    reasons = list(attributes["ra_guard.decision.degraded_reasons"])  # type: ignore[arg-type]
    assert len(reasons) == 2
    assert all(reason.startswith("judge_error: ") and "connection refused" in reason for reason in reasons)
    assert {reason.split(": ")[1] for reason in reasons} == {"concise", "polite"}

    m = otel.metrics()
    fallbacks = {(a["ra_guard.fallback.kind"], a["ra_guard.policy"]): p.value for a, p in m["ra_guard.fallbacks"]}  # type: ignore[attr-defined]
    assert fallbacks == {("judge_error", "concise"): 1, ("judge_error", "polite"): 1}
    decisions = {a["ra_guard.degraded"]: p.value for a, p in m["ra_guard.decisions"]}  # type: ignore[attr-defined]
    assert decisions == {True: 1}


def test_a_judged_decision_is_not_degraded_and_rejection_is_no_fault(otel: Pipeline) -> None:
    guard = make_guard(otel.tracer(), name="ok")
    guard.run(MESSAGES, sampler=texts_sampler("Paris.", "The capital is Paris."))
    root = otel.span("invoke_workflow ok")
    assert (root.attributes or {})["ra_guard.decision.degraded"] is False
    assert "ra_guard.decision.degraded_reasons" not in (root.attributes or {})
    with pytest.raises(AllCandidatesRejected) as caught:
        guard.run(MESSAGES, sampler=texts_sampler("LEAK"))
    assert caught.value.decision.vetoes
    assert all(
        s.attributes["ra_guard.decision.degraded"] is False for s in otel.spans if s.name == "invoke_workflow ok"
    )  # type: ignore[index]
    decisions = Counter(
        {(a["ra_guard.degraded"], a["ra_guard.outcome"]): p.value for a, p in otel.metrics()["ra_guard.decisions"]}
    )  # type: ignore[attr-defined]
    assert decisions == {(False, "passed"): 1, (False, "rejected"): 1}


def test_every_fallback_is_counted_across_decisions(otel: Pipeline) -> None:
    guard = Guard(policies=POLICIES[:1], judge=refusing_judge(), tracer=otel.tracer())
    for _ in range(3):
        guard.rerank("q", ["a"])
    points = otel.metrics()["ra_guard.fallbacks"]
    assert sum(p.value for _, p in points) == 3  # type: ignore[attr-defined]


def test_each_captured_text_is_redacted_once_per_decision(otel: Pipeline) -> None:
    seen: Counter[str] = Counter()

    def hook(text: str) -> str:
        seen[text] += 1
        return text

    texts = [f"candidate {i}: " + "Paris is the capital. " * 90 for i in range(3)]
    tracer = otel.tracer(capture_content=True, redact=hook)
    guard = Guard(policies=POLICIES[:1], judge=length_judge(), strategy=BestOfN(n=3), tracer=tracer)
    guard.run(MESSAGES, sampler=texts_sampler(*texts))
    assert all(seen[text] == 1 for text in texts), [seen[text] for text in texts]
    assert max(seen.values()) == 1


def test_a_huge_error_does_not_hold_the_loop(otel: Pipeline) -> None:
    def verbose(request: object) -> dict[str, float]:
        raise JudgeError("HTTP 400: " + "a." * 200_000, judge="ra")  # a 400 KB error body

    guard = Guard(policies=POLICIES[:1], judge=FunctionJudge(verbose), tracer=otel.tracer(capture_content=True))
    started = time.perf_counter()
    guard.rerank("q", ["a"])
    assert time.perf_counter() - started < 2.0  # loose: the quadratic redactor took minutes on this
    event = next(e for s in otel.spans for e in s.events if e.name == "exception")
    assert len(str((event.attributes or {})["exception.message"])) < 5000


def test_only_all_rejected_is_not_degraded(otel: Pipeline) -> None:
    tracer = otel.tracer()
    fallbacks = {
        "rejected": [Fallback(kind="all_rejected", reason="every candidate vetoed", action="returned best")],
        "deadline": [Fallback(kind="deadline", reason="deadline passed during sampling", action="kept best so far")],
    }
    for name, taken in fallbacks.items():
        with tracer.decision(guard=name, strategy="best_of_n", policies=["safe"]) as span:
            decision = Decision(chosen_index=0, candidates=[Candidate(index=0, text="x")], fallbacks=taken)
            tracer.finish_decision(span, decision)
    assert otel.span("invoke_workflow rejected").attributes["ra_guard.decision.degraded"] is False  # type: ignore[index]
    deadline = otel.span("invoke_workflow deadline").attributes or {}
    assert deadline["ra_guard.decision.degraded"] is True
    assert list(deadline["ra_guard.decision.degraded_reasons"]) == ["deadline: -: deadline passed during sampling"]  # type: ignore[arg-type]
