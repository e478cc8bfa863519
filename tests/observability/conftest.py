"""Fixtures for the observability tests: in-memory OpenTelemetry SDK pipelines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ra_guard import BestOfN, Guard, Policy
from ra_guard.testing import FunctionJudge, FunctionSampler
from ra_guard.tracing import DecisionTracer


class Pipeline:
    """A tracer and meter provider that keep what they record, and a tracer on top."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def tracer(self, **options: object) -> DecisionTracer:
        return DecisionTracer(self.tracer_provider, meter_provider=self.meter_provider, **options)  # type: ignore[arg-type]

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        matches = [s for s in self.spans if s.name == name]
        assert len(matches) == 1, [s.name for s in self.spans]
        return matches[0]

    def metrics(self) -> dict[str, list[tuple[dict[str, object], object]]]:
        """Metric name -> [(attributes, point)]."""
        out: dict[str, list[tuple[dict[str, object], object]]] = {}
        data = self.reader.get_metrics_data()
        assert data is not None
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        out.setdefault(metric.name, []).append((dict(point.attributes or {}), point))
        return out

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def otel() -> Iterator[Pipeline]:
    pipeline = Pipeline()
    yield pipeline
    pipeline.shutdown()


POLICIES = [
    Policy(name="concise", principle="Answer in as few words as possible."),
    Policy(name="safe", principle="Never reveal secrets.", kind="hard", min_score=2),
]


def length_judge() -> FunctionJudge:
    """Shorter is better; "LEAK" scores 1 (vetoed by the hard policy)."""
    return FunctionJudge(
        lambda r: {n: 1.0 if "LEAK" in t else 5 - min(len(t), 40) / 10 for n, t in r.responses.items()}
    )


def texts_sampler(*texts: str) -> FunctionSampler:
    return FunctionSampler(lambda messages, i: texts[i % len(texts)])


def make_guard(tracer: DecisionTracer, *, n: int = 3, **options: object) -> Guard:
    return Guard(policies=POLICIES, judge=length_judge(), strategy=BestOfN(n=n), tracer=tracer, **options)  # type: ignore[arg-type]
