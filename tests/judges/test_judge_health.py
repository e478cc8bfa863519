"""Health checks (``aping``/``ping``) and server explanations in errors."""

from __future__ import annotations

import pytest

from ra_guard.exceptions import JudgeError
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.rewardanything_server import RewardAnythingServerJudge
from ra_guard.testing import FunctionJudge
from tests.support.openai_server import Fault, OpenAIStubServer

REQUEST = JudgeRequest(principle="p", prompt="q", responses={"a": "x score=4", "b": "y score=2"})
PINNED = "Server is pinned to 'tiny-judge'; requested 'RewardAnything-8B'"


async def test_default_ping_sends_one_minimal_request() -> None:
    judge = FunctionJudge(lambda request: {name: 3 for name in request.responses})
    assert await judge.aping() is None
    (request,) = judge.calls
    assert len(request.responses) == 1


async def test_default_ping_raises_what_the_judge_raises() -> None:
    def broken(request: JudgeRequest) -> dict[str, float]:
        raise RuntimeError("model not loaded")

    with pytest.raises(JudgeError, match="model not loaded"):
        await FunctionJudge(broken).aping()


# -- the reference server ---------------------------------------------------


async def test_reference_ping_asks_health(openai_server: OpenAIStubServer) -> None:
    judge = RewardAnythingServerJudge(openai_server.root_url)
    try:
        assert await judge.aping() is None
    finally:
        await judge.aclose()
    assert [r.path for r in openai_server.requests] == ["/health"]


async def test_reference_ping_on_a_server_without_health(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.error(404, retry_after=None), when=lambda r: r.path == "/health")
    judge = RewardAnythingServerJudge(openai_server.root_url)
    try:
        with pytest.raises(JudgeError, match=r"HTTP 404 .*not the reference `rewardanything serve` API"):
            await judge.aping()
    finally:
        await judge.aclose()


async def test_reference_ping_says_connection_refused(unused_tcp_port: int) -> None:
    judge = RewardAnythingServerJudge(f"http://127.0.0.1:{unused_tcp_port}")
    try:
        with pytest.raises(JudgeError, match=rf"cannot connect to 127\.0\.0\.1:{unused_tcp_port}"):
            await judge.aping()
    finally:
        await judge.aclose()


async def test_reference_errors_keep_the_server_explanation(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.error(400, retry_after=None, message=PINNED, shape="fastapi"))
    judge = RewardAnythingServerJudge(openai_server.root_url)
    try:
        with pytest.raises(JudgeError) as caught:
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert f"HTTP 400 from {openai_server.root_url}/api/rewardanything: {PINNED}" in str(caught.value)


@pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning")
async def test_litellm_errors_keep_the_server_explanation(openai_server: OpenAIStubServer) -> None:
    from ra_guard.judges.litellm_judge import LiteLLMJudge

    openai_server.script(Fault.error(400, retry_after=None, message=PINNED, shape="fastapi"))
    judge = LiteLLMJudge("openai/RewardAnything-8B", api_base=openai_server.base_url, api_key="x")
    try:
        with pytest.raises(JudgeError) as caught:
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert PINNED in str(caught.value)
