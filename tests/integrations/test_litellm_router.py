"""RouterJudge: RewardAnything behind a litellm Router, two loopback endpoints, one of them down."""

from __future__ import annotations

import asyncio
import socket

import pytest

from ra_guard import Guard, Policy
from ra_guard.exceptions import JudgeError
from ra_guard.integrations.litellm import RouterJudge, router_judge
from ra_guard.judges.base import JudgeRequest
from tests.support.openai_server import Fault, OpenAIStubServer

REQUEST = JudgeRequest(principle="Be brief.", prompt="Hi", responses={"a": "Hello there. score=2", "b": "Hi. score=5"})


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens here once the socket is closed


async def test_fails_over_to_the_live_endpoint(stub: OpenAIStubServer) -> None:
    judge = router_judge([_dead_url(), stub.base_url], model="ra-stub", num_retries=2, retry_after=0)

    verdicts = [await judge.ajudge(REQUEST) for _ in range(4)]

    assert all(v.scores == {"a": 2.0, "b": 5.0} for v in verdicts)
    assert [r.kind for r in stub.requests] == ["judge"] * 4
    assert stub.requests[0].body["model"] == "ra-stub"


async def test_balances_across_live_endpoints() -> None:
    with OpenAIStubServer(models=["ra-stub"]) as one, OpenAIStubServer(models=["ra-stub"]) as two:
        judge = router_judge([one.base_url, two.base_url], model="ra-stub")
        await asyncio.gather(*(judge.ajudge(REQUEST) for _ in range(16)))
        assert len(one.requests) + len(two.requests) == 16
        assert one.requests and two.requests


async def test_router_judge_in_a_guard(stub: OpenAIStubServer) -> None:
    from litellm.router import Router

    router = Router(
        model_list=[
            {
                "model_name": "rewardanything",
                "litellm_params": {"model": "openai/ra-stub", "api_base": stub.base_url, "api_key": "x"},
            }
        ]
    )
    guard = Guard(policies=[Policy(name="brief", principle="Be brief.")], judge=RouterJudge(router, "rewardanything"))

    decision = await guard.arerank("Hi", ["Hello there, how are you today? score=2", "Hi! score=5"])

    assert decision.chosen_index == 1
    assert decision.judge_usage.total_tokens > 0


async def test_router_errors_keep_the_server_explanation(stub: OpenAIStubServer) -> None:
    pinned = "Server is pinned to 'tiny-judge'; requested 'RewardAnything-8B'"
    stub.script(*[Fault.error(400, retry_after=None, message=pinned, shape="fastapi")] * 4)
    judge = router_judge([stub.base_url], model="RewardAnything-8B", num_retries=0)
    with pytest.raises(JudgeError, match="HTTP 400") as caught:
        await judge.ajudge(REQUEST)
    assert pinned in str(caught.value)


async def test_router_judge_passes_completion_kwargs_on_every_call(stub: OpenAIStubServer) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": {"type": "object"}}}
    judge = router_judge(
        [stub.base_url],
        model="ra-stub",
        completion_kwargs={"max_tokens": 2048, "response_format": schema, "extra_body": {"top_k": 1}},
    )

    verdicts = [await judge.ajudge(REQUEST) for _ in range(2)]

    assert all(v.scores == {"a": 2.0, "b": 5.0} for v in verdicts)
    bodies = [r.body for r in stub.requests if r.kind == "judge"]
    assert len(bodies) == 2
    assert all(b["max_tokens"] == 2048 and b["response_format"] == schema and b["top_k"] == 1 for b in bodies)
    assert all(b["temperature"] == 0.0 for b in bodies)  # the judge's own default stays
