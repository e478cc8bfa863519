"""PhoenixAnnotator against a loopback stand-in for Phoenix's REST API (fast suite)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ra_guard.phoenix import PhoenixAnnotator

from .conftest import Pipeline, make_guard, texts_sampler


class FakePhoenix:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.posts: list[tuple[str, dict[str, str], Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.posts.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = fake.statuses.pop(0) if fake.statuses else 200
                payload = b'{"data": []}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_phoenix() -> Iterator[FakePhoenix]:
    fake = FakePhoenix([])
    yield fake
    fake.stop()


def test_posts_one_annotation_per_candidate_and_policy(otel: Pipeline, fake_phoenix: FakePhoenix) -> None:
    annotator = PhoenixAnnotator(fake_phoenix.url, api_key="phx-key")
    guard = make_guard(otel.tracer(listeners=[annotator]))
    decision = guard.run([{"role": "user", "content": "q"}], sampler=texts_sampler("Paris.", "LEAK"), n=2)
    assert annotator.flush(10)
    annotator.close()
    [(path, headers, body)] = fake_phoenix.posts
    assert path == "/v1/span_annotations?sync=false"
    assert headers["authorization"] == "Bearer phx-key"
    notes = body["data"]
    sampling = otel.span("chat function")
    root = otel.span("invoke_workflow ra-guard")
    per_policy = [n for n in notes if n["name"] in ("concise", "safe")]
    assert len(per_policy) == 2 * 2
    assert {n["span_id"] for n in per_policy} == {format(sampling.context.span_id, "016x")}
    assert {n["annotator_kind"] for n in notes} == {"LLM"}
    vetoed = next(n for n in per_policy if n["name"] == "safe" and n["metadata"]["candidate_index"] == 1)
    assert vetoed["result"] == {"label": "vetoed", "score": 1.0, "explanation": "candidate 1: scored 1/5"}
    assert vetoed["identifier"] == f"ra-guard:{decision.decision_id}:1"
    [outcome] = [n for n in notes if n["name"] == "ra_guard.outcome"]
    assert outcome["span_id"] == format(root.context.span_id, "016x")
    assert outcome["result"]["label"] == "passed"
    assert annotator.sent == len(notes) and annotator.dropped == 0


def test_retries_server_errors_then_gives_up_counting(otel: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakePhoenix([503, 200, 422])
    try:
        annotator = PhoenixAnnotator(fake.url, attempts=2)
        guard = make_guard(otel.tracer(listeners=[annotator]))
        guard.rerank("q", ["a"])  # 503 then 200: sent
        guard.rerank("q", ["b"])  # 422: a client error is not retried
        assert annotator.flush(10)
        annotator.close()
    finally:
        fake.stop()
    assert len(fake.posts) == 3
    assert annotator.dropped == 1 and annotator.sent > 0
    assert "HTTP 422" in caplog.text


def test_no_listener_call_without_a_recording_span() -> None:
    from ra_guard.tracing import DecisionTracer

    calls: list[object] = []

    class Listener:
        def on_decision(self, decision: object, spans: object) -> None:
            calls.append(decision)

    make_guard(DecisionTracer(listeners=[Listener()])).rerank("q", ["a"])  # no SDK: nothing to annotate
    assert calls == []
