"""Scores as Langfuse scores, through the real ``langfuse`` SDK against a loopback stand-in of its API."""

from __future__ import annotations

import socket
import time

import pytest

from ra_guard import Guard
from tests.observability.conftest import POLICIES, Pipeline, length_judge
from tests.observability.score_stub import ScoreStub

pytest.importorskip("langfuse")

from ra_guard.langfuse import LangfuseScores


def test_scores_land_on_the_candidates_observations(otel: Pipeline) -> None:
    with ScoreStub() as stub:
        scores = LangfuseScores(public_key="pk-lf-test", secret_key="sk-lf-secret", base_url=stub.url)
        guard = Guard(policies=POLICIES, judge=length_judge(), tracer=otel.tracer(listeners=[scores]))
        decision = guard.rerank("Say hi", ["hi", "hello there"])
        assert scores.flush(timeout=10)
        scores.close()
    sent = [score for path, batch in stub.posts if path == "/api/public/scores" for score in batch]
    assert len(sent) == 7 and scores.sent == 7 and scores.dropped == 0
    (root,) = [s for s in otel.spans if s.name.startswith("invoke_workflow")]
    trace_id, root_id = format(root.context.trace_id, "032x"), format(root.context.span_id, "016x")
    assert {s["traceId"] for s in sent} == {trace_id}
    concise = {s["metadata"]["candidate_index"]: s for s in sent if s["name"] == "concise"}
    for index, score in concise.items():
        assert score["dataType"] == "NUMERIC"
        assert score["value"] == decision.candidates[index].scores["concise"].score
        assert score["observationId"] == root_id  # given candidates' evaluations sit on the root
        assert score["metadata"]["label"] in ("pass", "fail")
    (outcome,) = [s for s in sent if s["name"] == "ra_guard.outcome"]
    assert (outcome["dataType"], outcome["value"]) == ("CATEGORICAL", "passed")
    assert len({s["id"] for s in sent}) == 7  # derived ids: a resend updates
    assert all("sk-lf-secret" not in str(h) for h in stub.headers if "Authorization" not in h)


def test_langfuse_down_loses_no_decision(otel: Pipeline) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    scores = LangfuseScores(public_key="pk-lf-test", secret_key="sk-lf-secret", base_url=f"http://127.0.0.1:{port}")
    guard = Guard(policies=POLICIES, judge=length_judge(), tracer=otel.tracer(listeners=[scores]))
    started = time.monotonic()
    decision = guard.rerank("Say hi", ["hi", "hello there"])
    assert decision.chosen_index == 0
    assert time.monotonic() - started < 2  # nothing on the request path waits for Langfuse
    scores.close()


def test_missing_langfuse_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from ra_guard.exceptions import MissingDependencyError

    monkeypatch.setitem(sys.modules, "langfuse", None)
    with pytest.raises(MissingDependencyError, match="langfuse"):
        LangfuseScores(public_key="pk", secret_key="sk", base_url="http://127.0.0.1:9")
