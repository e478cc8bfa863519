"""A real Phoenix: export decisions over OTLP/HTTP, read them back through its REST API.

The first run installs ``arize-phoenix`` into a cached venv (see ``phoenix_server.py``);
later runs reuse it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from ra_guard.phoenix import PhoenixAnnotator
from ra_guard.tracing import DecisionTracer
from ra_guard.types import Sample, Usage

from .conftest import make_guard
from .phoenix_server import PhoenixProcess, phoenix_venv, start_phoenix

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PROJECT = "ra-guard-it"
T = TypeVar("T")


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixProcess]:
    venv, install_s = phoenix_venv()
    if install_s:
        print(f"\ninstalled Phoenix in {install_s:.0f}s")
    server = start_phoenix(tmp_path_factory.mktemp("phoenix"), venv=venv)
    yield server
    server.stop()  # by PID: SIGTERM, then SIGKILL
    with pytest.raises(ProcessLookupError):
        os.kill(server.process.pid, 0)


class NotYet(Exception):
    """Phoenix answered with a server error: it may be busy ingesting; ask again."""


def eventually(fetch: Callable[[], T], done: Callable[[T], bool], timeout_s: float = 60) -> T:
    """``fetch()`` until ``done`` holds, or ``timeout_s`` passed: then the last value, for the caller to assert on.

    A timeout or a server error while Phoenix ingests is "not yet"; one that lasts past the deadline is raised.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = fetch()
        except (httpx.TimeoutException, NotYet):
            if time.monotonic() > deadline:
                raise
        else:
            if done(value) or time.monotonic() > deadline:
                return value
        time.sleep(0.5)


def sampler_with_usage() -> Any:
    from ra_guard.testing import FunctionSampler

    texts = ["Paris.", "LEAK: the admin password", "Paris, France."]
    return FunctionSampler(
        lambda m, i: Sample(
            text=texts[i % 3],
            finish_reason="stop",
            model="demo-llm",
            usage=Usage(prompt_tokens=12, completion_tokens=5 + i),
        )
    )


def test_decisions_in_phoenix(phoenix: PhoenixProcess) -> None:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "faq-bot", "openinference.project.name": PROJECT})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=phoenix.otlp_endpoint, timeout=10)))
    annotator = PhoenixAnnotator(phoenix.url)
    guard = make_guard(DecisionTracer(provider, capture_content=True, listeners=[annotator]), name="faq-guard")
    run = guard.run([{"role": "user", "content": "Capital of France?"}], sampler=sampler_with_usage(), n=3)
    check = guard.check([{"role": "user", "content": "Capital of France?"}], "Paris.")
    assert provider.force_flush(30_000)
    assert annotator.flush(30)
    provider.shutdown()
    annotator.close()
    assert annotator.dropped == 0 and annotator.sent > 0

    with httpx.Client(base_url=f"{phoenix.url}/v1", timeout=10) as client:
        check_in_phoenix(client, run, check)


def check_in_phoenix(client: httpx.Client, run: Any, check: Any) -> None:

    def spans_of(trace_id: str, expected: int) -> list[dict[str, Any]]:
        return eventually(
            lambda: data_of(client.get(f"/projects/{PROJECT}/spans", params={"trace_id": trace_id, "limit": 100})),
            lambda data: len(data) >= expected,
        )

    # -- the best-of-n decision: tree, kinds, evaluation events -----------
    spans = spans_of(run.trace_id or "", 4)
    assert len(spans) == 4, spans
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    [root] = by_name["invoke_workflow faq-guard"]
    [sampling] = by_name["chat function"]
    judges = by_name["chat function-judge"]
    assert root["parent_id"] is None
    assert {s["parent_id"] for s in [sampling, *judges]} == {root["context"]["span_id"]}
    assert (root["span_kind"], sampling["span_kind"], {j["span_kind"] for j in judges}) == (
        "CHAIN",
        "LLM",
        {"EVALUATOR"},
    )
    attributes = flatten(root["attributes"])
    assert attributes["ra_guard.decision.chosen_index"] == run.chosen_index
    assert attributes["ra_guard.decision.vetoes"] == ["safe: 1"]
    assert attributes["input.value"] == "Capital of France?"
    # Phoenix maps gen_ai.* usage to its own token counts on ingest.
    assert flatten(sampling["attributes"])["llm.token_count.prompt"] == 36
    events = [e for e in sampling["events"] if e["name"] == "gen_ai.evaluation.result"]
    assert len(events) == 3 * 3
    vetoed = [
        flatten(e["attributes"])
        for e in events
        if flatten(e["attributes"])["gen_ai.evaluation.score.label"] == "vetoed"
    ]
    assert sorted(e["gen_ai.evaluation.name"] for e in vetoed) == ["ra_guard.choice", "safe"]

    # -- check: a GUARDRAIL root judging the agent's own output -----------
    [check_root] = [s for s in spans_of(check.trace_id or "", 3) if s["parent_id"] is None]
    assert check_root["span_kind"] == "GUARDRAIL"
    assert len([e for e in check_root["events"] if e["name"] == "gen_ai.evaluation.result"]) == 3

    # -- annotations: one per candidate and policy, filterable by name ----
    span_ids = [root["context"]["span_id"], sampling["context"]["span_id"]]
    expected = 3 * 2 + 3 + 1  # candidates x policies, choices, outcome
    notes = eventually(
        lambda: data_of(
            client.get(f"/projects/{PROJECT}/span_annotations", params={"span_ids": span_ids, "limit": 1000})
        ),
        lambda data: len(data) >= expected,
    )
    assert len(notes) == expected, notes
    assert {n["annotator_kind"] for n in notes} == {"LLM"}
    by_key = {(n["name"], n["metadata"].get("candidate_index")): n for n in notes}
    assert by_key[("safe", 1)]["result"]["label"] == "vetoed"
    assert by_key[("safe", 1)]["span_id"] == sampling["context"]["span_id"]
    assert by_key[("concise", 0)]["result"]["score"] == pytest.approx(4.4)
    assert by_key[("ra_guard.outcome", None)]["result"]["label"] == "passed"
    assert by_key[("ra_guard.outcome", None)]["span_id"] == root["context"]["span_id"]


def data_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The ``data`` of a REST answer; nothing while the project does not exist yet (ingestion is async).

    Raises:
        NotYet: A server error (5xx), which :func:`eventually` retries until its deadline.
    """
    if response.status_code == 404:
        return []
    if response.is_server_error:
        raise NotYet(f"{response.status_code} from {response.url}: {response.text[:500]}")
    response.raise_for_status()
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def flatten(attributes: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Phoenix returns dotted attributes nested (``{"llm": {"token_count": ...}}``); flatten them."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        out[name] = value
    return out
