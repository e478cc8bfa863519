"""Conformance: every span, metric and event a representative set of decisions emits, against the
OpenTelemetry GenAI semantic conventions.

The tables below are written from the conventions' markdown in
``open-telemetry/semantic-conventions-genai`` (development status; read at commit
``002c8a6e`` for ``docs/gen-ai/gen-ai-spans.md`` and ``gen-ai-events.md``, ``004902b8`` for
``gen-ai-metrics.md``, ``f5e3733b`` for ``gen-ai-guardrails.md``; the attribute and event
references there link semantic-conventions v1.41.1 to v1.44.0):

- inference span (``gen_ai.inference.client``): name ``{gen_ai.operation.name} {gen_ai.request.model}``,
  kind CLIENT; Required ``gen_ai.operation.name``, ``gen_ai.provider.name``; Conditionally Required
  ``error.type`` (on error), ``gen_ai.request.choice.count`` (int), ``gen_ai.request.model``,
  ``server.port`` (int, when ``server.address`` is set);
- workflow span (``gen_ai.invoke_workflow.internal``): name ``invoke_workflow {gen_ai.workflow.name}``,
  kind INTERNAL; Required ``gen_ai.operation.name``; Conditionally Required ``gen_ai.workflow.name``,
  ``error.type``;
- event ``gen_ai.evaluation.result``: Required ``gen_ai.evaluation.name`` (string);
  ``gen_ai.evaluation.score.value`` double, ``score.label``/``explanation``/``gen_ai.response.id``
  strings; parented to the evaluated span;
- event ``gen_ai.guardrail.result``: ``gen_ai.guardrail.*`` strings (``risk.score`` double);
- metric ``gen_ai.client.operation.duration``: histogram, ``s``, buckets 0.01 … 81.92; Required
  ``gen_ai.operation.name``; ``gen_ai.provider.name`` (Conditionally Required, always set here),
  ``gen_ai.request.model``, ``server.port`` when ``server.address``, ``error.type`` on error;
- metric ``gen_ai.client.token.usage``: histogram, ``{token}``, buckets 1 … 67108864; Required
  ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.token.type`` (``input``/``output``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics.export import Histogram
from opentelemetry.trace import SpanKind, StatusCode

from ra_guard import BestOfN, Guard
from ra_guard.judges.openai_compat import OpenAICompatJudge
from ra_guard.samplers.litellm import LiteLLMSampler
from ra_guard.testing import FunctionJudge
from tests.observability.conftest import POLICIES, Pipeline, length_judge, texts_sampler
from tests.support.openai_server import OpenAIStubServer

pytestmark = pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning")

STR, INT, DOUBLE, BOOL, STR_ARRAY = "string", "int", "double", "boolean", "string[]"

#: Every ``gen_ai.*`` / ``server.*`` / ``error.*`` key ra-guard may set, with the registry's value type
#: (``any``-typed message attributes are recorded as JSON strings on spans, which the conventions allow).
REGISTRY = {
    "gen_ai.operation.name": STR,
    "gen_ai.provider.name": STR,
    "gen_ai.request.model": STR,
    "gen_ai.request.choice.count": INT,
    "gen_ai.request.temperature": DOUBLE,
    "gen_ai.response.model": STR,
    "gen_ai.response.id": STR,
    "gen_ai.response.finish_reasons": STR_ARRAY,
    "gen_ai.usage.input_tokens": INT,
    "gen_ai.usage.output_tokens": INT,
    "gen_ai.workflow.name": STR,
    "gen_ai.input.messages": STR,
    "gen_ai.output.messages": STR,
    "gen_ai.system_instructions": STR,
    "gen_ai.evaluation.name": STR,
    "gen_ai.evaluation.score.value": DOUBLE,
    "gen_ai.evaluation.score.label": STR,
    "gen_ai.evaluation.explanation": STR,
    "gen_ai.guardrail.component.name": STR,
    "gen_ai.guardrail.policy.id": STR,
    "gen_ai.guardrail.result.type": STR,
    "gen_ai.guardrail.result.value": STR,
    "gen_ai.guardrail.source": STR,
    "gen_ai.token.type": STR,
    "server.address": STR,
    "server.port": INT,
    "error.type": STR,
}
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
TOKEN_BUCKETS = [4**i for i in range(14)]  # 1, 4, 16, ... 67108864
EVENTS = {"gen_ai.evaluation.result": ("gen_ai.evaluation.name",), "gen_ai.guardrail.result": ()}


def _type_of(value: object) -> str:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STR
    if isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value):
        return STR_ARRAY
    return type(value).__name__


def _check_types(where: str, attributes: dict[str, Any]) -> None:
    for key, value in attributes.items():
        if key.split(".")[0] in ("gen_ai", "server", "error"):
            assert key in REGISTRY, f"{where}: {key} is not a GenAI conventions attribute ra-guard should set"
            assert _type_of(value) == REGISTRY[key], f"{where}: {key}={value!r} should be a {REGISTRY[key]}"


def _check_required(where: str, attributes: dict[str, Any], *keys: str) -> None:
    for key in keys:
        assert key in attributes, f"{where}: required {key} is missing"


@pytest.fixture
def logs() -> Iterator[tuple[LoggerProvider, InMemoryLogRecordExporter]]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _decisions(otel: Pipeline, logger_provider: LoggerProvider, server: OpenAIStubServer) -> None:
    """run, check and rerank through an HTTP judge and litellm; a FunctionSampler; a judge that fails."""
    tracer = otel.tracer(logger_provider=logger_provider)
    judge = OpenAICompatJudge(server.base_url, max_retries=0)  # model discovered from /v1/models
    sampler = LiteLLMSampler("openai/gen", api_base=server.base_url, api_key="x", max_retries=0)
    with Guard(
        policies=POLICIES, judge=judge, sampler=sampler, strategy=BestOfN(n=2, temperature=0.7), tracer=tracer
    ) as guard:
        guard.run([{"role": "user", "content": "Name a colour"}])
        guard.check([{"role": "user", "content": "Name a colour"}], "Blue.")
        guard.rerank("Name a colour", ["Blue.", "Green, I think."])
    local = Guard(
        policies=POLICIES, judge=length_judge(), sampler=texts_sampler("a", "bb"), strategy=BestOfN(n=2), tracer=tracer
    )
    local.run([{"role": "user", "content": "hi"}])

    def down(request: object) -> dict[str, float]:
        raise RuntimeError("judge down")

    failing = Guard(policies=POLICIES[:1], judge=FunctionJudge(down), tracer=tracer)
    failing.rerank("Say hi", ["hi", "hello"])


def test_every_span_metric_and_event_follows_the_conventions(
    otel: Pipeline, logs: tuple[LoggerProvider, InMemoryLogRecordExporter], openai_server: OpenAIStubServer
) -> None:
    logger_provider, log_exporter = logs
    _decisions(otel, logger_provider, openai_server)
    spans = otel.spans
    operations = {str((s.attributes or {}).get("gen_ai.operation.name")) for s in spans}
    assert operations == {"chat", "invoke_workflow"}
    kinds = {(s.attributes or {}).get("openinference.span.kind") for s in spans}
    assert kinds == {"CHAIN", "GUARDRAIL", "LLM", "EVALUATOR"}  # every kind of span was walked
    providers = {(s.attributes or {}).get("gen_ai.provider.name") for s in spans}
    assert providers == {None, "openai", "unknown"}  # None: the roots
    span_ids = {(s.context.trace_id, s.context.span_id) for s in spans}

    for span in spans:
        attributes = dict(span.attributes or {})
        where = f"span {span.name!r}"
        _check_types(where, attributes)
        failed = span.status.status_code is StatusCode.ERROR
        assert ("error.type" in attributes) == failed, f"{where}: error.type iff the status is ERROR"
        if attributes["gen_ai.operation.name"] == "chat":
            _check_required(where, attributes, "gen_ai.operation.name", "gen_ai.provider.name")
            assert span.kind is SpanKind.CLIENT
            assert span.name == f"chat {attributes['gen_ai.request.model']}"
            if "server.address" in attributes:
                _check_required(where, attributes, "server.port")
            if attributes.get("openinference.span.kind") == "LLM":
                assert attributes["gen_ai.request.choice.count"] == 2
        else:
            _check_required(where, attributes, "gen_ai.operation.name", "gen_ai.workflow.name")
            assert span.kind is SpanKind.INTERNAL
            assert span.name == f"invoke_workflow {attributes['gen_ai.workflow.name']}"
        assert not any(key.startswith("ra_guard.score.") for key in attributes), f"{where}: per-call keys"
        for event in span.events:
            if event.name in EVENTS:
                event_attributes = dict(event.attributes or {})
                _check_types(f"{where} event {event.name}", event_attributes)
                _check_required(f"{where} event {event.name}", event_attributes, *EVENTS[event.name])
            else:
                assert event.name in ("exception", "ra_guard.retry"), f"{where}: unexpected event {event.name}"

    records = [r.log_record for r in log_exporter.get_finished_logs()]
    assert {r.event_name for r in records} == set(EVENTS)
    for record in records:
        attributes = dict(record.attributes or {})
        where = f"log event {record.event_name}"
        _check_types(where, attributes)
        _check_required(where, attributes, *EVENTS[str(record.event_name)])
        # Parented to the span it is about: that span was exported.
        assert (record.trace_id, record.span_id) in span_ids, f"{where}: not in the trace context of a span"
    labels = {
        (r.attributes or {}).get("gen_ai.evaluation.score.label")
        for r in records
        if r.event_name == "gen_ai.evaluation.result"
    }
    assert "error" in labels  # the failed judge's evaluations were walked too

    data = otel.reader.get_metrics_data()
    assert data is not None
    seen: set[str] = set()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if not metric.name.startswith("gen_ai."):
                    continue
                seen.add(metric.name)
                assert metric.name in ("gen_ai.client.operation.duration", "gen_ai.client.token.usage")
                assert isinstance(metric.data, Histogram)
                duration = metric.name == "gen_ai.client.operation.duration"
                assert metric.unit == ("s" if duration else "{token}")
                for point in metric.data.data_points:
                    attributes = dict(point.attributes or {})
                    where = f"metric {metric.name}"
                    _check_types(where, attributes)
                    required = ["gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model"]
                    _check_required(where, attributes, *required, *([] if duration else ["gen_ai.token.type"]))
                    if "server.address" in attributes:
                        _check_required(where, attributes, "server.port")
                    if not duration:
                        assert attributes["gen_ai.token.type"] in ("input", "output")
                    assert list(point.explicit_bounds) == (DURATION_BUCKETS if duration else TOKEN_BUCKETS)
    assert seen == {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"}
