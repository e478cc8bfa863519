"""The OTLP/HTTP exporter against a real (tiny) receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from ra_guard.tracing import DecisionTracer

from .conftest import make_guard, texts_sampler
from .otlp_receiver import OtlpReceiver


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    r.start()
    yield r
    r.stop()


def test_decision_exported_over_otlp_http(receiver: OtlpReceiver) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "faq-bot"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.endpoint, timeout=5)))
    guard = make_guard(DecisionTracer(provider), name="faq-guard")
    decision = guard.run(
        [{"role": "user", "content": "Capital of France?"}], sampler=texts_sampler("Paris.", "LEAK"), n=2
    )
    assert provider.force_flush(10_000)
    provider.shutdown()

    assert receiver.requests and receiver.requests[0]["content-type"] == "application/x-protobuf"
    by_name: dict[str, list[object]] = {}
    for span in receiver.spans:
        by_name.setdefault(span.name, []).append(span)
    assert sorted((k, len(v)) for k, v in by_name.items()) == [
        ("chat function", 1),
        ("chat function-judge", 2),
        ("invoke_workflow faq-guard", 1),
    ]
    root = by_name["invoke_workflow faq-guard"][0]
    assert root.parent_span_id == "" and root.trace_id == decision.trace_id  # type: ignore[attr-defined]
    assert root.resource["service.name"] == "faq-bot"  # type: ignore[attr-defined]
    assert root.attributes["openinference.span.kind"] == "CHAIN"  # type: ignore[attr-defined]
    assert root.attributes["ra_guard.decision.chosen_index"] == 0  # type: ignore[attr-defined]
    assert root.attributes["ra_guard.decision.vetoes"] == ("safe: 1",)  # type: ignore[attr-defined]
    children = [s for s in receiver.spans if s.parent_span_id == root.span_id]  # type: ignore[attr-defined]
    assert len(children) == 3
    sampling = by_name["chat function"][0]
    assert sampling.kind == 3  # type: ignore[attr-defined]  # SPAN_KIND_CLIENT
    events = [attrs for name, attrs in sampling.events if name == "gen_ai.evaluation.result"]  # type: ignore[attr-defined]
    assert len(events) == 2 * 3
    vetoed = [e for e in events if e["gen_ai.evaluation.score.label"] == "vetoed"]
    assert [(e["gen_ai.evaluation.name"], e["ra_guard.candidate.index"]) for e in vetoed] == [
        ("safe", 1),
        ("ra_guard.choice", 1),
    ]
