"""``check()`` is a guardrail: its results are ``gen_ai.guardrail.result`` events (GenAI conventions, development)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from ra_guard import Guard
from ra_guard.exceptions import AllCandidatesRejected
from tests.observability.conftest import POLICIES, Pipeline, length_judge


def test_check_emits_one_guardrail_result_per_policy_and_one_overall(otel: Pipeline) -> None:
    exporter = InMemoryLogRecordExporter()
    logs = LoggerProvider()
    logs.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    guard = Guard(policies=POLICIES, judge=length_judge(), tracer=otel.tracer(logger_provider=logs))
    with pytest.raises(AllCandidatesRejected):
        guard.check([{"role": "user", "content": "hi"}], "LEAK the key")  # vetoed by "safe"
    records = [
        r.log_record for r in exporter.get_finished_logs() if r.log_record.event_name == "gen_ai.guardrail.result"
    ]
    results = {(r.attributes or {}).get("gen_ai.guardrail.policy.id"): dict(r.attributes or {}) for r in records}
    assert set(results) == {"concise", "safe", None}
    assert results["safe"]["gen_ai.guardrail.result.type"] == "label"
    assert results["safe"]["gen_ai.guardrail.result.value"] == "vetoed"
    assert results[None]["gen_ai.guardrail.result.type"] == "outcome"
    assert results[None]["gen_ai.guardrail.result.value"] == "rejected"
    assert results["concise"]["gen_ai.guardrail.result.value"] in ("pass", "fail")
    for attributes in results.values():
        assert attributes["gen_ai.guardrail.component.name"] == "ra-guard"
        assert attributes["gen_ai.guardrail.source"] == "output"
        assert all(isinstance(value, str) for value in attributes.values())
    (root,) = [s for s in otel.spans if s.name.startswith("invoke_workflow")]
    assert {(r.trace_id, r.span_id) for r in records} == {(root.context.trace_id, root.context.span_id)}
    assert [e.name for e in root.events].count("gen_ai.guardrail.result") == 3
    logs.shutdown()


def test_run_and_rerank_emit_no_guardrail_result(otel: Pipeline) -> None:
    guard = Guard(policies=POLICIES, judge=length_judge(), tracer=otel.tracer())
    guard.rerank("Say hi", ["hi", "hello"])
    assert "gen_ai.guardrail.result" not in [e.name for s in otel.spans for e in s.events]
