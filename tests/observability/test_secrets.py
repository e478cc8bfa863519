"""A planted API key must not appear in spans, events, metrics, logs, the audit log or annotations."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from ra_guard import Guard, Policy, SamplerError
from ra_guard.audit import AuditLog
from ra_guard.exceptions import JudgeError
from ra_guard.judges.base import JudgeRequest
from ra_guard.phoenix import annotations_for
from ra_guard.testing import FunctionJudge, FunctionSampler
from ra_guard.tracing import DecisionSpans, DecisionTracer
from ra_guard.verdict import Verdict

from .conftest import Pipeline

KEY = "sk-test-PLANTEDkey1234567890abcdef"
OTHER_KEY = "AKIAPLANTED123456789"  # an AWS-shaped access key id (20 chars)
PASSWORD = "hunter2PLANTEDpassword"  # in a URL's userinfo
SIGNATURE = "PLANTEDsig0123456789xyz"  # in a URL's key-like query parameters
JUDGE_URL = f"http://bob:{PASSWORD}@127.0.0.1:9/v1"
SIGNED_URL = f"https://bucket.example/o?alt=json&key={SIGNATURE}&sig={SIGNATURE}&token={SIGNATURE}"
SECRETS = (KEY, OTHER_KEY, PASSWORD, SIGNATURE)


class _Unauthorized(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "invalid api key"}')

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def unauthorized_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class KeyedSampler(FunctionSampler):
    """A sampler configured the way real ones are: a key and a URL carrying it."""

    def __init__(self, fn: object) -> None:
        super().__init__(fn, name=f"openai-compat:http://127.0.0.1:9/v1?api_key={KEY}&signature={SIGNATURE}")  # type: ignore[arg-type]
        self.api_key = KEY
        self.headers = {"Authorization": f"Bearer {KEY}"}


def test_planted_key_never_leaves(
    otel: Pipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture, unauthorized_server: str
) -> None:
    caplog.set_level(logging.DEBUG)

    def http_judge(request: JudgeRequest) -> Verdict:
        if "fail-judge" in request.prompt:
            # A real HTTP error from a judge endpoint, surfaced with the request's headers.
            try:
                httpx.post(
                    f"{unauthorized_server}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, json={}
                ).raise_for_status()
            except httpx.HTTPStatusError as exc:
                raise JudgeError(
                    f"{exc}; request headers: {dict(exc.request.headers)}; via {JUDGE_URL} and {SIGNED_URL}",
                    judge=f"openai-compat:{JUDGE_URL}",
                ) from exc
        return Verdict(
            scores={n: 4.0 for n in request.names},
            ranking=request.names,
            reasoning=f"The answer repeats the user's key {KEY} and {OTHER_KEY}, and {JUDGE_URL}.",
            raw_text=f"<think>key {KEY} at {SIGNED_URL}</think>",
        )

    def sample(messages: object, i: int) -> str:
        if "fail-sampler" in str(messages):
            raise ValueError(f"401 from provider {JUDGE_URL}: Authorization: Bearer {KEY}; x-api-key: {KEY}")
        return f"Use api_key={KEY} or {KEY} in the Authorization: Bearer {KEY} header, or {SIGNED_URL}"

    judge = FunctionJudge(http_judge, name=f"openai-compat:{JUDGE_URL}?api_key={KEY}")
    judge.headers = {"Authorization": f"Bearer {KEY}"}  # type: ignore[attr-defined]
    policies = [Policy(name="helpful", principle="Be helpful.")]
    seen: list[tuple[object, DecisionSpans]] = []

    class Collect:
        def on_decision(self, decision: object, spans: DecisionSpans) -> None:
            seen.append((decision, spans))

    tracer = DecisionTracer(
        otel.tracer_provider, meter_provider=otel.meter_provider, capture_content=True, listeners=[Collect()]
    )
    audit_path = tmp_path / "audit.jsonl"
    with AuditLog(audit_path, include_text=True) as audit:
        guard = Guard(
            policies=policies, judge=judge, tracer=tracer, audit_log=audit, name=f"guard@{JUDGE_URL}?token={KEY}"
        )
        sampler = KeyedSampler(sample)
        guard.run(
            [
                {"role": "system", "content": f"Your key is {KEY}"},
                {"role": "user", "content": f"my key is {KEY}, Authorization: Bearer {KEY}, fetch {SIGNED_URL}"},
            ],
            sampler=sampler,
            n=2,
        )
        guard.run([{"role": "user", "content": f"fail-judge {KEY}"}], sampler=sampler, n=1)
        with pytest.raises(SamplerError):
            guard.run([{"role": "user", "content": "fail-sampler"}], sampler=sampler, n=1)
        guard.check([{"role": "user", "content": "q"}], f"agent output with {KEY} from {JUDGE_URL}")

    spans = "\n".join(s.to_json() for s in otel.spans)
    assert "[REDACTED]" in spans  # content was captured, and scrubbed
    data = otel.reader.get_metrics_data()
    assert data is not None
    metrics = data.to_json()
    audit_text = audit_path.read_text()
    assert len(audit_text.splitlines()) == 3
    notes = json.dumps([annotations_for(d, s, include_reasoning=True) for d, s in seen])  # type: ignore[arg-type]
    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for where, text in {
        "spans": spans,
        "metrics": metrics,
        "audit": audit_text,
        "annotations": notes,
        "logs": logs,
    }.items():
        for secret in SECRETS:
            assert secret not in text, (where, secret)
        assert "Bearer sk-" not in text, where
    assert "401 Unauthorized" in spans and "authorization': '[REDACTED]" in spans  # the HTTP error was recorded
    fallbacks = [r["fallbacks"] for r in map(json.loads, audit_text.splitlines()) if r["fallbacks"]]
    assert fallbacks and "401 Unauthorized" in fallbacks[0][0]["reason"]


def test_redact_name_remembers_the_names_it_redacted() -> None:
    from ra_guard._redact import redact_name, redact_secrets

    name = f"remembered:{JUDGE_URL}?api_key={KEY}"  # a name no other test redacts
    first = redact_name(name)
    hits = redact_name.cache_info().hits
    assert redact_name(name) == first == redact_secrets(name)
    assert redact_name.cache_info().hits == hits + 1  # the docstring's cache is real: a second call is a hit
    assert PASSWORD not in redact_name(name) and KEY not in redact_name(name)
