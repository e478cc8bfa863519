"""RaGuardGuardrail inside a real litellm proxy (subprocess, 127.0.0.1, no database).

Two proxies, each started and stopped by PID (``tests.support.servers``):

- ``proxy`` runs ``examples/litellm_proxy/config.yaml`` as shipped;
- ``lab`` runs the same config plus what the shipped one does not show: the
  Anthropic ``/v1/messages`` and ``/v1/responses`` routes (model groups whose
  provider litellm bridges to chat completions), guardrails with a hard
  policy, ``expose_candidates`` and ``guard_streams``, and a litellm
  ``CustomLogger`` that writes what every callback received to a JSONL file.

The upstream model and the RewardAnything judge are both the loopback stub
server; the judge scores each candidate by its ``score=N`` marker.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.integrations.conftest import Answers
from tests.support.openai_server import OpenAIStubServer, RecordedRequest
from tests.support.servers import free_port, http_ok, start_server

# Some of litellm[proxy]'s own dependencies; importing the proxy itself here would cost seconds at collection.
_PROXY_MODULES = ("fastapi", "uvicorn", "uvloop", "backoff", "apscheduler", "multipart", "jwt", "semver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(importlib.util.find_spec(m) for m in _PROXY_MODULES), reason="needs litellm[proxy] installed"
    ),
]

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "litellm_proxy" / "config.yaml"
BAD = "Well, so, hmm, about that, it depends. score=1"
MEH = "Paris, I would think, though do check. score=4"
OKAY = "It is Paris, the capital. score=3"
GOOD = "Paris. score=5"

RECORDER = '''
import json, os
from litellm.integrations.custom_logger import CustomLogger


class Recorder(CustomLogger):
    """Writes what each litellm callback receives, one JSON line per call."""

    def _write(self, kwargs, status):
        slo = kwargs.get("standard_logging_object") or {}
        metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        record = {
            "status": status,
            "call_type": kwargs.get("call_type"),
            "model_group": slo.get("model_group"),
            "guardrail_information": slo.get("guardrail_information"),
            "spend_logs_metadata": (slo.get("metadata") or {}).get("spend_logs_metadata"),
            "group_id": metadata.get("ra_guard_group_id"),
            "candidate": metadata.get("ra_guard_candidate"),
        }
        line = (json.dumps(record, default=str) + "\\n").encode()
        # One write on an O_APPEND descriptor: a record lands whole after the ones before it, never
        # split into pieces that another record could come between (a buffered file may split it).
        fd = os.open(os.environ["RA_GUARD_TEST_CALLBACK_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._write(kwargs, "success")

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._write(kwargs, "failure")


recorder = Recorder()
'''

HARD_POLICY = {
    "name": "no-hedging",
    "kind": "hard",
    "min_score": 3,
    "principle": "The answer commits to a fact; hedging and filler fail.",
}


class Proxy:
    def __init__(self, base_url: str, key: str, stub: OpenAIStubServer, callback_log: Path | None = None) -> None:
        self.base_url, self.key, self.stub, self.callback_log = base_url, key, stub, callback_log
        #: Where this test's callback records begin in the log (see :meth:`script`).
        self.log_offset = 0

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=self.key, max_retries=0, timeout=60)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.post(self.base_url + path, json=body, headers=headers, timeout=60)

    def script(self, *texts: str) -> None:
        """Sampler calls get ``texts`` in turn (cycling); judge calls the stub's marker judge."""
        answers = Answers(texts)

        def handle(request: RecordedRequest) -> Any:
            return answers.next() if request.kind == "sampler" else None

        self.stub.handler = handle
        self.stub.reset()
        if self.callback_log is not None:
            # Never truncate: the proxy may still be appending an earlier test's late records. Start
            # after the last finished line, so that every line read from here was written whole.
            data = self.callback_log.read_bytes()
            self.log_offset = data.rfind(b"\n") + 1

    def count(self, kind: str) -> int:
        return [r.kind for r in self.stub.requests].count(kind)

    def callbacks(self, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0) -> list[dict[str, Any]]:
        """The callback records since :meth:`script`, once ``until(records)`` holds (litellm logs after answering).

        Returns as soon as ``until`` holds; after ``timeout`` seconds, what there is (the caller's assertions fail).
        Records of earlier tests that arrive late may be among them: callers pick theirs by id.
        """
        assert self.callback_log is not None
        deadline = time.monotonic() + timeout
        while True:
            with self.callback_log.open("rb") as log:
                log.seek(self.log_offset)
                data = log.read()
            # The proxy may be writing a record now: read only the lines it has finished.
            finished = data[: data.rfind(b"\n") + 1]
            lines = [json.loads(line) for line in finished.splitlines() if line.strip()]
            if until(lines) or time.monotonic() > deadline:
                return lines
            time.sleep(0.1)


def _start(config: Path, stub: OpenAIStubServer, log_dir: Path, extra_env: dict[str, str]) -> Iterator[Proxy]:
    port, key = free_port(), "sk-" + secrets.token_hex(24)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_HOST", "REDIS_URL")}
    env.update(
        LITELLM_MASTER_KEY=key,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        NO_PROXY="127.0.0.1,localhost",
        RA_GUARD_UPSTREAM="openai/ra-stub",
        OPENAI_BASE_URL=stub.base_url,
        OPENAI_API_KEY="sk-test",
        RA_GUARD_JUDGE_MODEL="openai/ra-stub",
        RA_GUARD_JUDGE_BASE_URL=stub.base_url,
        RA_GUARD_JUDGE_API_KEY="x",
        **extra_env,
    )
    cli = Path(sys.executable).parent / "litellm"
    argv = [str(cli), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    server = start_server(
        "litellm-proxy",
        argv,
        port=port,
        ready=http_ok("/health/liveliness"),
        log_path=log_dir / "proxy.log",
        env=env,
        cwd=config.parent,
        timeout_s=180,
    )
    try:
        yield Proxy(server.url, key, stub, Path(extra_env["RA_GUARD_TEST_CALLBACK_LOG"]) if extra_env else None)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    with OpenAIStubServer(models=["ra-stub"]) as stub:
        yield from _start(CONFIG, stub, tmp_path_factory.mktemp("proxy"), {})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    folder = tmp_path_factory.mktemp("lab")
    (folder / "ra_guard_test_recorder.py").write_text(RECORDER)
    (folder / "no-hedging.yaml").write_text(yaml.safe_dump(HARD_POLICY))
    config = yaml.safe_load(CONFIG.read_text())
    stub_base = {"api_base": "os.environ/OPENAI_BASE_URL", "api_key": "os.environ/OPENAI_API_KEY"}
    config["model_list"] += [
        {"model_name": "assistant-messages", "litellm_params": {"model": "hosted_vllm/ra-stub", **stub_base}},
        {
            "model_name": "assistant-responses",  # litellm bridges /v1/responses to the stub's chat completions
            "litellm_params": {"model": "openai/chat_completions/ra-stub", **stub_base},
        },
    ]
    guardrail = "ra_guard.integrations.litellm.guardrail.RaGuardGuardrail"
    hard = [str(folder / "no-hedging.yaml"), "concise"]
    for name, params in {
        "ra-guard-hard": {"policies": hard, "on_fail": "resample", "candidates": 3},
        "ra-guard-expose": {"policies": hard, "on_fail": "resample", "candidates": 3, "expose_candidates": True},
        "ra-guard-streams": {"policies": ["concise"], "on_fail": "block", "guard_streams": True},
    }.items():
        config["guardrails"].append(
            {
                "guardrail_name": name,
                "litellm_params": {
                    "guardrail": guardrail,
                    "mode": "post_call",
                    "judge_model": "rewardanything",
                    **params,
                },
            }
        )
    config["litellm_settings"] = {"callbacks": ["ra_guard_test_recorder.recorder"]}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    log = folder / "callbacks.jsonl"
    log.write_text("")
    with OpenAIStubServer(models=["ra-stub"]) as stub:
        yield from _start(path, stub, folder, {"RA_GUARD_TEST_CALLBACK_LOG": str(log)})


def _chat(proxy: Proxy, content: str, **body: Any) -> httpx.Response:
    return proxy.post(
        "/v1/chat/completions", {"model": "assistant", "messages": [{"role": "user", "content": content}], **body}
    )


def _all_bytes(response: httpx.Response) -> str:
    return "\n".join([*(f"{k}: {v}" for k, v in response.headers.items()), response.text])


# -- the shipped example ------------------------------------------------------


def test_failing_answer_is_resampled_and_only_the_winner_leaves(proxy: Proxy) -> None:
    proxy.script(BAD, MEH, GOOD, OKAY, MEH)

    response = _chat(proxy, "Capital of France?", temperature=0.5)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == GOOD
    summary = body["ra_guard"]
    assert summary["strategy"] == "check" and summary["passed"] is True
    assert summary["chosen_source"] == "sampled" and summary["candidates_considered"] == 5
    assert set(summary["scores"]) == {"concise", "professional-tone"}
    client_sees = _all_bytes(response)
    for text in (BAD, MEH, OKAY):  # the vetoed original and every alternative stay in the proxy
        assert text not in client_sees
    assert "candidates" not in summary
    sampled = [r for r in proxy.stub.requests if r.kind == "sampler"]
    assert len(sampled) == 5  # the original call, then 4 alternatives through the proxy's router
    assert all(r.body.get("temperature") == 0.5 for r in sampled)  # the request's own parameters
    assert proxy.count("judge") == 4  # 2 policies x (original, all)
    assert "ra-guard" in response.headers["x-litellm-applied-guardrails"].split(",")


def test_passing_answer_goes_out_unchanged(proxy: Proxy) -> None:
    proxy.script(GOOD)

    with proxy.client() as client:
        reply = client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "Hi"}])

    assert reply.choices[0].message.content == GOOD
    assert (reply.model_extra or {})["ra_guard"]["chosen_source"] == "original"
    assert proxy.count("sampler") == 1


def test_strict_guardrail_runs_alone_and_blocks_without_the_answer(proxy: Proxy) -> None:
    proxy.script(BAD)

    response = _chat(proxy, "Answer, strict please", guardrails=["ra-guard-strict"])

    assert response.status_code == 400
    assert "ra-guard blocked this response" in response.text and "concise" in response.text
    assert BAD not in _all_bytes(response)
    # Only ra-guard-strict ran: the default_on ra-guard stepped aside (it would re-sample 4 and judge twice more).
    assert proxy.count("sampler") == 1
    assert proxy.count("judge") == 2  # 2 policies x the original
    assert response.headers["x-litellm-applied-guardrails"].split(",") == ["ra-guard-strict"]


def test_default_guardrail_runs_when_the_request_names_none(proxy: Proxy) -> None:
    proxy.script(BAD, GOOD)

    response = _chat(proxy, "Capital?")

    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == GOOD
    assert proxy.count("sampler") == 5


def test_streams_pass_through_unjudged_by_default(proxy: Proxy) -> None:
    proxy.script(BAD)

    with proxy.client() as client:
        stream = client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    assert text == BAD
    assert proxy.count("judge") == 0


# -- what the client may read -------------------------------------------------


def test_vetoed_answer_is_blocked_even_when_resampling_finds_nothing_better(lab: Proxy) -> None:
    proxy = lab
    proxy.script(BAD)  # the original and every alternative fail the hard policy

    response = _chat(proxy, "Capital?", guardrails=["ra-guard-hard"])

    assert response.status_code == 400
    assert BAD not in _all_bytes(response)
    assert "no-hedging" in response.text
    assert proxy.count("sampler") == 4  # the original and 3 alternatives: it did try


def test_exposed_candidates_are_opt_in_and_never_vetoed_texts(lab: Proxy) -> None:
    lab.script(BAD, MEH, GOOD, BAD)

    response = _chat(lab, "Capital?", guardrails=["ra-guard-expose"])

    assert response.status_code == 200, response.text
    candidates = response.json()["ra_guard"]["candidates"]
    assert response.json()["choices"][0]["message"]["content"] == GOOD
    assert {c["text"] for c in candidates if not c["vetoed"]} == {MEH, GOOD}  # the operator asked for these
    assert BAD not in _all_bytes(response)
    assert all(c["text"] == "[withheld: vetoed by a policy]" for c in candidates if c["vetoed"])


def test_a_blocked_stream_sends_none_of_the_answer(lab: Proxy) -> None:
    lab.script(BAD)
    body = {
        "model": "assistant",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "guardrails": ["ra-guard-streams"],
    }

    with httpx.stream(
        "POST", lab.base_url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {lab.key}"}
    ) as response:
        raw = response.read().decode()

    assert "ra-guard blocked this response" in raw
    assert "hmm" not in raw and BAD not in raw
    assert lab.count("judge") == 1


def test_a_passing_guarded_stream_is_replayed(lab: Proxy) -> None:
    lab.script(GOOD)

    with lab.client() as client:
        stream = client.chat.completions.create(
            model="assistant",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            extra_body={"guardrails": ["ra-guard-streams"]},
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    assert text == GOOD
    assert lab.count("judge") == 1


# -- litellm's logging conventions ---------------------------------------------


def _guardrail_entries(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for r in records for e in (r["guardrail_information"] or []) if e.get("guardrail_name")]


def _request_record(proxy: Proxy, decision_id: str) -> dict[str, Any]:
    """The callback record of the request whose guardrail made ``decision_id`` (late records of others ignored)."""

    def mine(record: dict[str, Any]) -> bool:
        entries = record["guardrail_information"] or []
        return any((e.get("guardrail_response") or {}).get("decision_id") == decision_id for e in entries)

    records = proxy.callbacks(until=lambda records: any(mine(r) for r in records))
    found = [r for r in records if mine(r)]
    assert len(found) == 1, records
    return found[0]


def test_decision_reaches_the_standard_logging_payload(lab: Proxy) -> None:
    lab.script(BAD, GOOD, MEH, OKAY, MEH)

    response = _chat(lab, "Capital?")

    assert response.status_code == 200, response.text
    decision_id = response.json()["ra_guard"]["decision_id"]
    entries = _guardrail_entries([_request_record(lab, decision_id)])
    assert [e["guardrail_name"] for e in entries] == ["ra-guard"]
    entry = entries[0]
    assert entry["guardrail_provider"] == "ra-guard"
    assert entry["guardrail_status"] == "guardrail_intervened"  # a re-sampled answer replaced the original
    assert entry["guardrail_response"]["decision_id"] == decision_id
    assert entry["guardrail_response"]["chosen_source"] == "sampled"
    assert BAD not in json.dumps(entries) and MEH not in json.dumps(entries)  # no texts in the logs either


def test_a_block_is_logged_as_an_intervention(lab: Proxy) -> None:
    lab.script(BAD)

    response = _chat(lab, "Capital?", guardrails=["ra-guard-strict"])

    assert response.status_code == 400
    decision_id = response.json()["error"]["message"].rsplit("decision_id=", 1)[1][:32]
    entries = _guardrail_entries([_request_record(lab, decision_id)])
    assert [e["guardrail_name"] for e in entries] == ["ra-guard-strict"]  # the default_on ra-guard did not run
    assert entries[0]["guardrail_status"] == "guardrail_intervened"
    assert entries[0]["guardrail_response"]["passed"] is False


def test_candidate_calls_carry_their_group_and_index(lab: Proxy) -> None:
    lab.script(BAD, MEH, GOOD, OKAY, MEH)

    response = _chat(lab, "Capital?")

    group = response.json()["ra_guard"]["group_id"]
    records = lab.callbacks(until=lambda records: len([r for r in records if r["group_id"] == group]) >= 8)
    candidates = [r for r in records if r["group_id"] == group and isinstance(r["candidate"], int)]
    assert sorted(r["candidate"] for r in candidates) == [1, 2, 3, 4]
    assert all(r["spend_logs_metadata"]["ra_guard_group_id"] == group for r in candidates)
    judged = [r for r in records if r["group_id"] == group and r["candidate"] == "judge"]
    assert len(judged) == 4  # 2 policies x 2 rounds (the original, then all), judged through the router


# -- the other routes ------------------------------------------------------------


def test_anthropic_messages_route_is_judged_and_a_failing_answer_blocked(lab: Proxy) -> None:
    lab.script(BAD)
    body = {"model": "assistant-messages", "max_tokens": 64, "messages": [{"role": "user", "content": "Capital?"}]}

    blocked = lab.post("/v1/messages", body)

    assert blocked.status_code == 400
    assert BAD not in _all_bytes(blocked)
    assert lab.count("judge") == 2

    lab.script(GOOD)
    passed = lab.post("/v1/messages", body)
    assert passed.status_code == 200 and passed.json()["content"][0]["text"] == GOOD
    assert lab.count("judge") == 2
    assert "ra-guard" in passed.headers["x-litellm-applied-guardrails"].split(",")


def test_responses_route_is_judged_and_a_failing_answer_blocked(lab: Proxy) -> None:
    lab.script(BAD)
    body = {"model": "assistant-responses", "input": "Capital?", "instructions": "Answer briefly."}

    blocked = lab.post("/v1/responses", body)

    assert blocked.status_code == 400
    assert BAD not in _all_bytes(blocked)
    assert lab.count("judge") == 2
    judge_input = next(r for r in lab.stub.requests if r.kind == "judge").judge_input or {}
    assert "Capital?" in json.dumps(judge_input)

    lab.script(GOOD)
    passed = lab.post("/v1/responses", body)
    assert passed.status_code == 200, passed.text
    assert passed.json()["output"][0]["content"][0]["text"] == GOOD
    assert lab.count("judge") == 2


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/messages",
            {"model": "assistant-messages", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]},
        ),
        ("/v1/responses", {"model": "assistant-responses", "input": "Hi"}),
    ],
)
def test_guarded_streams_on_the_other_routes(lab: Proxy, path: str, body: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {lab.key}"}
    body = {**body, "stream": True, "guardrails": ["ra-guard-streams"]}

    lab.script(BAD)
    with httpx.stream("POST", lab.base_url + path, json=body, headers=headers, timeout=60) as response:
        blocked = response.read().decode()
    assert "ra-guard blocked this response" in blocked
    assert "hmm" not in blocked
    assert lab.count("judge") == 1

    lab.script(GOOD)
    with httpx.stream("POST", lab.base_url + path, json=body, headers=headers, timeout=60) as response:
        replayed = response.read().decode()
    assert response.status_code == 200 and "Paris." in replayed and "blocked" not in replayed
    assert lab.count("judge") == 1
