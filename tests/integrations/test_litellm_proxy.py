"""RaGuardGuardrail inside a real litellm proxy (subprocess, 127.0.0.1, no database), with examples/litellm_proxy.

The proxy runs ``examples/litellm_proxy/config.yaml`` as shipped; its upstream
model and its RewardAnything judge are both the loopback stub server.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.integrations.conftest import Answers
from tests.support.openai_server import OpenAIStubServer, RecordedRequest

# Some of litellm[proxy]'s own dependencies; importing the proxy itself here would cost seconds at collection.
_PROXY_MODULES = ("fastapi", "uvicorn", "uvloop", "backoff", "apscheduler", "multipart", "jwt", "semver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(importlib.util.find_spec(m) for m in _PROXY_MODULES), reason="needs litellm[proxy] installed"
    ),
]

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "litellm_proxy" / "config.yaml"
BAD, GOOD = "Well, so, hmm, about that, it depends. score=1", "Paris. score=5"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _handler(request: RecordedRequest, answers: Answers) -> Any:
    if request.kind != "sampler":
        return None  # the judge: the stub scores by the score=N markers
    last = request.messages[-1].get("content", "")
    return BAD if "strict" in str(last) else answers.next()


class Proxy:
    def __init__(self, base_url: str, key: str, stub: OpenAIStubServer) -> None:
        self.base_url, self.key, self.stub = base_url, key, stub

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=self.key, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    with OpenAIStubServer(models=["ra-stub"]) as stub:
        port, key = _free_port(), "sk-" + secrets.token_hex(24)
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
        )
        log = tmp_path_factory.mktemp("proxy") / "proxy.log"
        cli = Path(sys.executable).parent / "litellm"
        command = [str(cli), "--config", str(CONFIG), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
        with log.open("w") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the proxy exited ({process.returncode}):\n{log.read_text()[-4000:]}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"the proxy did not start in 120s:\n{log.read_text()[-4000:]}")
                time.sleep(0.25)
            yield Proxy(f"http://127.0.0.1:{port}/v1", key, stub)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def test_failing_answer_is_resampled_through_the_router(proxy: Proxy) -> None:
    answers = Answers([BAD, GOOD])
    proxy.stub.handler = lambda request: _handler(request, answers)
    proxy.stub.reset()

    with proxy.client() as client:
        reply = client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "Capital of France?"}], temperature=0.5
        )

    assert reply.choices[0].message.content == GOOD
    decision = (reply.model_extra or {})["ra_guard"]
    assert decision["strategy"] == "check" and decision["passed"] is True
    assert decision["candidates"][0]["text"] == BAD and decision["candidates"][0]["source"] == "original"
    assert decision["candidates"][decision["chosen_index"]]["source"] == "sampled"
    sampled = [r for r in proxy.stub.requests if r.kind == "sampler"]
    assert len(sampled) == 5  # the original call, then 4 alternatives through the proxy's router
    assert all(r.body.get("temperature") == 0.5 for r in sampled)  # the request's own parameters
    assert [r.kind for r in proxy.stub.requests].count("judge") == 4  # 2 policies x (original, all)


def test_passing_answer_goes_out_unchanged(proxy: Proxy) -> None:
    answers = Answers([GOOD])
    proxy.stub.handler = lambda request: _handler(request, answers)
    proxy.stub.reset()

    with proxy.client() as client:
        reply = client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "Hi"}])

    assert reply.choices[0].message.content == GOOD
    assert (reply.model_extra or {})["ra_guard"]["candidates"][0]["source"] == "original"
    assert [r.kind for r in proxy.stub.requests].count("sampler") == 1


def test_strict_guardrail_blocks_with_a_clear_error(proxy: Proxy) -> None:
    answers = Answers([BAD])
    proxy.stub.handler = lambda request: _handler(request, answers)
    proxy.stub.reset()

    with proxy.client() as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="assistant",
            messages=[{"role": "user", "content": "Answer, strict please"}],
            extra_body={"guardrails": ["ra-guard-strict"]},
        )

    assert "ra-guard blocked this response" in str(caught.value)
    assert "concise" in str(caught.value)


def test_streams_pass_through_unjudged_by_default(proxy: Proxy) -> None:
    answers = Answers([BAD])
    proxy.stub.handler = lambda request: _handler(request, answers)
    proxy.stub.reset()

    with proxy.client() as client:
        stream = client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    assert text == BAD
    assert not [r for r in proxy.stub.requests if r.kind == "judge"]
