"""``gen_ai.evaluation.result`` as the conventions define it: a log event parented to the evaluated span,
plus (by option, on by default) the span events Phoenix reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from ra_guard import BestOfN, Guard
from ra_guard.testing import FunctionJudge
from tests.observability.conftest import POLICIES, Pipeline, length_judge, texts_sampler


@pytest.fixture
def logs() -> Iterator[tuple[LoggerProvider, InMemoryLogRecordExporter]]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_evaluations_are_log_events_parented_to_the_candidate_span(
    otel: Pipeline, logs: tuple[LoggerProvider, InMemoryLogRecordExporter]
) -> None:
    provider, exporter = logs
    guard = Guard(
        policies=POLICIES,
        judge=length_judge(),
        sampler=texts_sampler("short", "a longer answer"),
        strategy=BestOfN(n=2),
        tracer=otel.tracer(logger_provider=provider),
    )
    decision = guard.run([{"role": "user", "content": "hi"}])
    records = [r.log_record for r in exporter.get_finished_logs()]
    assert {r.event_name for r in records} == {"gen_ai.evaluation.result"}
    # Two candidates: two policies and one ra_guard.choice each.
    assert len(records) == 6
    (sampling,) = [s for s in otel.spans if (s.attributes or {}).get("openinference.span.kind") == "LLM"]
    assert {(r.trace_id, r.span_id) for r in records} == {(sampling.context.trace_id, sampling.context.span_id)}
    concise = {
        (r.attributes or {})["ra_guard.candidate.index"]: dict(r.attributes or {})
        for r in records
        if (r.attributes or {})["gen_ai.evaluation.name"] == "concise"
    }
    for index, attributes in concise.items():
        score = decision.candidates[index].scores["concise"]
        assert attributes["gen_ai.evaluation.score.value"] == score.score
        assert isinstance(attributes["gen_ai.evaluation.score.value"], float)
        assert attributes["gen_ai.evaluation.score.label"] in ("pass", "fail")
        assert attributes["gen_ai.evaluation.explanation"].startswith("scored ")
        assert attributes["gen_ai.response.id"] == f"{decision.decision_id}-{index}"
    # The span events stay (Phoenix reads only traces), the same ones.
    assert len([e for e in sampling.events if e.name == "gen_ai.evaluation.result"]) == 6


def test_span_events_can_be_turned_off(otel: Pipeline, logs: tuple[LoggerProvider, InMemoryLogRecordExporter]) -> None:
    provider, exporter = logs
    guard = Guard(
        policies=POLICIES[:1],
        judge=length_judge(),
        tracer=otel.tracer(logger_provider=provider, evaluation_span_events=False),
    )
    guard.rerank("Say hi", ["hi", "hello"])
    assert not [e for s in otel.spans for e in s.events if e.name == "gen_ai.evaluation.result"]
    assert len(exporter.get_finished_logs()) == 4


def test_a_failed_judge_is_an_evaluation_with_error_type(
    logs: tuple[LoggerProvider, InMemoryLogRecordExporter],
) -> None:
    provider, exporter = logs

    def refuse(request: object) -> dict[str, float]:
        raise RuntimeError("judge down")

    from ra_guard.tracing import DecisionTracer

    guard = Guard(policies=POLICIES[:1], judge=FunctionJudge(refuse), tracer=DecisionTracer(logger_provider=provider))
    guard.rerank("Say hi", ["hi", "hello"])
    failed = [dict(r.log_record.attributes or {}) for r in exporter.get_finished_logs()]
    policy = [a for a in failed if a["gen_ai.evaluation.name"] == "concise"]
    assert len(policy) == 2
    assert all(a["error.type"] == "JudgeError" and a["gen_ai.evaluation.score.label"] == "error" for a in policy)
    assert all("gen_ai.evaluation.score.value" not in a for a in policy)


def test_no_logger_provider_no_log_events(otel: Pipeline) -> None:
    guard = Guard(policies=POLICIES[:1], judge=length_judge(), tracer=otel.tracer())
    assert not guard.tracer.events.logging
    guard.rerank("Say hi", ["hi", "hello"])
    assert [e.name for s in otel.spans for e in s.events].count("gen_ai.evaluation.result") == 4


def test_an_api_too_old_for_event_names_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from ra_guard import _evaluations

    monkeypatch.setattr(_evaluations, "_HAS_EVENT_NAME", False)
    provider = LoggerProvider()
    with caplog.at_level("WARNING", logger="ra_guard"):
        sink = _evaluations.EventSink(provider)
    assert not sink.logging
    assert "cannot name log events" in caplog.text
    provider.shutdown()
