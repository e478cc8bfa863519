"""Scores as LangSmith feedback, through the real ``langsmith`` SDK against a loopback stand-in of its API."""

from __future__ import annotations

import logging
import socket
import uuid

import pytest

from ra_guard import Guard
from ra_guard.langsmith import LangSmithFeedback, run_id_of
from tests.observability.conftest import POLICIES, Pipeline, length_judge
from tests.observability.score_stub import ScoreStub

SESSION = uuid.UUID("11111111-2222-3333-4444-555555555555")


def test_run_ids_follow_the_sdk() -> None:
    from langsmith.integrations.otel import langsmith_run_id_from_otel_span_id

    assert run_id_of("a1b2c3d4e5f60718") == langsmith_run_id_from_otel_span_id(0xA1B2C3D4E5F60718)


def test_scores_become_feedback_on_the_candidates_runs(otel: Pipeline) -> None:
    with ScoreStub() as stub:
        feedback = LangSmithFeedback(api_url=stub.url, api_key="lsv2-test-key", session_id=SESSION)
        guard = Guard(policies=POLICIES, judge=length_judge(), tracer=otel.tracer(listeners=[feedback]))
        decision = guard.rerank("Say hi", ["hi", "hello there"])
        assert feedback.flush(timeout=10)
        feedback.close()
    bodies = [body for path, body in stub.posts if path.endswith("/feedback")]
    # Two candidates x (two policies + ra_guard.choice), and the outcome.
    assert len(bodies) == 7 and feedback.sent == 7 and feedback.dropped == 0
    (root,) = [s for s in otel.spans if s.name.startswith("invoke_workflow")]
    root_run = str(uuid.UUID(bytes=root.context.span_id.to_bytes(16, "big")))
    assert {b["trace_id"] for b in bodies} == {root_run}
    concise = {b["feedback_source"]["metadata"]["candidate_index"]: b for b in bodies if b["key"] == "concise"}
    for index, body in concise.items():
        assert body["score"] == decision.candidates[index].scores["concise"].score
        assert body["value"] in ("pass", "fail")
        assert body["run_id"] == root_run  # given candidates' evaluations sit on the root
    (outcome,) = [b for b in bodies if b["key"] == "ra_guard.outcome"]
    assert outcome["value"] == "passed"
    assert stub.headers[0]["x-api-key"] == "lsv2-test-key"
    # Resending a decision updates its feedback: the ids are derived, not random.
    assert len({b["id"] for b in bodies}) == 7


def test_langsmith_down_loses_no_decision(otel: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    feedback = LangSmithFeedback(
        api_url=f"http://127.0.0.1:{port}", api_key="lsv2-secret", attempts=1, session_id=SESSION
    )
    guard = Guard(policies=POLICIES, judge=length_judge(), tracer=otel.tracer(listeners=[feedback]))
    with caplog.at_level(logging.WARNING, logger="ra_guard.langsmith"):
        decision = guard.rerank("Say hi", ["hi", "hello there"])
        assert decision.chosen_index == 0
        assert feedback.flush(timeout=20)
    feedback.close()
    assert feedback.dropped == 1 and feedback.sent == 0
    assert any("could not send feedback" in r.getMessage() for r in caplog.records)
    assert "lsv2-secret" not in caplog.text


def test_missing_langsmith_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from ra_guard.exceptions import MissingDependencyError

    monkeypatch.setitem(sys.modules, "langsmith", None)
    with pytest.raises(MissingDependencyError, match=r"ra-guard\[langsmith\]"):
        LangSmithFeedback(api_url="http://127.0.0.1:9", api_key="k")
