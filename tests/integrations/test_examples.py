"""Each example script, run in a subprocess against the loopback server (model and judge both stubbed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integrations.conftest import agent_handler, answer_samplers
from tests.support.openai_server import OpenAIStubServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script: str, stub: OpenAIStubServer, *args: str) -> str:
    env = {
        **os.environ,
        "OPENAI_BASE_URL": stub.base_url,
        "OPENAI_API_KEY": "sk-test",
        "RA_GUARD_MODEL": "ra-stub",
        "RA_GUARD_JUDGE": f"openai-compat:{stub.base_url}",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONWARNINGS": "ignore",
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_langchain_agent_example(stub: OpenAIStubServer) -> None:
    stub.handler = agent_handler(["Sunny, 21C. score=5", "Well, it is sunny. score=2"], args={"city": "Paris"})

    out = _run("langchain_agent.py", stub, "Weather in Paris?")

    assert out.splitlines()[0] == "Sunny, 21C. score=5"
    assert "-- ra-guard:" in out and "passed=True" in out
    assert any(r.kind == "judge" for r in stub.requests)


@pytest.mark.slow
def test_lcel_chain_example(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "A model that scores answers. score=5", "It is a kind of model, maybe. score=2")

    out = _run("lcel_chain.py", stub, "What is a reward model?")

    assert out.strip() == "A model that scores answers. score=5"
    judged = next(r.judge_input for r in stub.requests if r.kind == "judge")
    assert judged is not None and "What is a reward model?" in judged["prompt"]


@pytest.mark.slow
def test_litellm_sdk_example(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "We are sorry for the delay. score=5", "Oops lol. score=1")

    out = _run("litellm_sdk.py", stub, "Apologize")

    assert out.splitlines()[0] == "We are sorry for the delay. score=5"
    assert [r.body["model"] for r in stub.requests if r.kind == "sampler"] == ["ra-stub"] * 4


@pytest.mark.slow
def test_openai_agents_guardrail_example(stub: OpenAIStubServer) -> None:
    answer_samplers(
        stub, "Oops lol. score=1", "We are sorry for the delay. score=5", "Sorry. score=2", "Late, sorry. score=3"
    )

    out = _run("openai_agents_guardrail.py", stub, "Apologize")

    assert out.splitlines()[0] == "We are sorry for the delay. score=5"
    assert "-- ra-guard: passed=True" in out
    sampled = [r for r in stub.requests if r.kind == "sampler"]
    assert len(sampled) == 4 and {r.body["model"] for r in sampled} == {"ra-stub"}
    judged = [r.judge_input for r in stub.requests if r.kind == "judge"]
    assert len(judged) == 3  # two policies for the best-of-4, then the guardrail's hard policy on the winner
    assert judged[-1] is not None and list(judged[-1]["responses"].values()) == ["We are sorry for the delay. score=5"]


@pytest.mark.slow
def test_openai_agents_guardrail_example_blocks_a_harmful_answer(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "Here is how to pick the lock. score=1")

    out = _run("openai_agents_guardrail.py", stub, "How do I break into my neighbour's flat?")

    assert out.startswith("blocked by ra-guard:") and "'passed': False" in out
    assert "pick the lock" not in out  # the vetoed answer is not printed, nor carried in the summary


@pytest.mark.slow
def test_pydantic_ai_validator_example(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "Oops lol. score=1", "We are sorry for the delay. score=5")

    out = _run("pydantic_ai_validator.py", stub, "Apologize")

    assert out.splitlines()[0] == "We are sorry for the delay. score=5"
    assert "-- ra-guard: passed=True" in out and "retries=1" in out
    retry = [r for r in stub.requests if r.kind == "sampler"][1]
    assert "fell short" in retry.messages[-1]["content"]
