"""A guard built before any OpenTelemetry provider exists still reports once one is set.

A guard with the default tracer skips the span and metric work of a decision while
neither a tracer nor a meter provider exists anywhere (nothing would be kept). These
tests check that skipping never outlives the providers' absence: each runs in a fresh
interpreter, because OpenTelemetry's global providers can be set once per process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

_SETUP = """
import json
from ra_guard import BestOfN, Guard
from ra_guard.testing import FunctionJudge, FunctionSampler

judge = FunctionJudge(lambda r: {k: 5 - len(t) % 5 for k, t in r.responses.items()})
sampler = FunctionSampler(lambda m, i: ["Paris.", "It is Paris."][i % 2])
guard = Guard(policies=["concise"], judge=judge, sampler=sampler, strategy=BestOfN(n=2))
messages = [{"role": "user", "content": "Capital of France?"}]
guard.run(messages)  # before any provider: a silent decision
"""


def _run(script: str) -> dict[str, object]:
    code = textwrap.dedent(_SETUP) + textwrap.dedent(script)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def test_a_tracer_provider_set_after_a_decision_gets_every_span_of_the_next() -> None:
    found = _run(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        guard.run(messages)
        print(json.dumps({"spans": sorted(s.name for s in exporter.get_finished_spans())}))
        """
    )
    spans = found["spans"]
    assert isinstance(spans, list)
    # The decision, its sampling call and its judge call are all exported, not only the root.
    assert len(spans) >= 3, spans
    assert any("judge" in name for name in spans), spans
    assert any(name.startswith("chat") and "judge" not in name for name in spans), spans


def test_a_meter_provider_alone_still_gets_the_call_metrics() -> None:
    found = _run(
        """
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        guard.run(messages)
        data = reader.get_metrics_data()
        names = sorted({m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics})
        print(json.dumps({"metrics": names}))
        """
    )
    names = found["metrics"]
    assert isinstance(names, list)
    for expected in ("ra_guard.sampling.duration", "ra_guard.judge.duration", "ra_guard.score"):
        assert expected in names, names
