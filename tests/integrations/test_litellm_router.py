"""RouterJudge: RewardAnything behind a litellm Router, two loopback endpoints, one of them down."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from ra_guard import Guard, Policy
from ra_guard.exceptions import ConfigurationError, JudgeError, JudgeTimeoutError
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


def _judge_requests(server: OpenAIStubServer) -> int:
    return sum(r.kind == "judge" for r in server.requests)


async def test_a_timed_out_generation_is_not_retried_by_default(stub: OpenAIStubServer) -> None:
    stub.script(*[Fault.hang(5)] * 4)
    judge = router_judge([stub.base_url], model="ra-stub", timeout=0.5)  # num_retries=3 for other failures

    with pytest.raises(JudgeTimeoutError, match="timed out"):
        await judge.ajudge(REQUEST)

    assert _judge_requests(stub) == 1  # the server may still be generating: a retry would pile up


async def test_retry_timeouts_retries_a_timed_out_generation(stub: OpenAIStubServer) -> None:
    stub.script(Fault.hang(30))
    # The retry must answer within the same timeout: 3 s, not 0.5 s, which a loaded machine could spend on the
    # retry's new connection and a garbage-collector pause. The request count shows the first attempt timed out.
    judge = router_judge([stub.base_url], model="ra-stub", timeout=3, num_retries=1, retry_timeouts=True)

    assert (await judge.ajudge(REQUEST)).scores == {"a": 2.0, "b": 5.0}
    assert _judge_requests(stub) == 2


async def test_a_retry_policy_of_your_own_wins(stub: OpenAIStubServer) -> None:
    from litellm.types.router import RetryPolicy

    stub.script(*[Fault.hang(5)] * 4)
    judge = router_judge(
        [stub.base_url], model="ra-stub", timeout=0.5, num_retries=3, retry_policy=RetryPolicy(TimeoutErrorRetries=1)
    )

    with pytest.raises(JudgeTimeoutError):
        await judge.ajudge(REQUEST)
    assert _judge_requests(stub) == 2


@pytest.mark.parametrize("fault", [Fault.error(503), Fault.error(500), Fault.drop()], ids=["503", "500", "drop"])
async def test_server_errors_and_dropped_connections_are_still_retried(stub: OpenAIStubServer, fault: Fault) -> None:
    stub.script(fault)
    judge = router_judge([stub.base_url], model="ra-stub", timeout=5, num_retries=2)

    assert (await judge.ajudge(REQUEST)).scores == {"a": 2.0, "b": 5.0}
    assert _judge_requests(stub) == 2


@pytest.mark.parametrize(
    ("num_retries", "call_timeout", "limit"),
    [(0, None, "2"), (3, 1.0, "1")],
    ids=["derived-from-timeout", "given"],
)
async def test_call_timeout_bounds_the_whole_call_against_a_trickling_server(
    stub: OpenAIStubServer, num_retries: int, call_timeout: float | None, limit: str
) -> None:
    # Each read gets a byte every 0.1 s, within the router's 2 s read timeout; only a bound on the whole call stops
    # this. A read's timeout is no shorter than call_timeout and starts later, so no pause between bytes (a loaded
    # machine, a garbage-collector pause) can time a read out first and end the call with another error.
    stub.script(Fault.trickle(interval=0.1, seconds=30))
    options = {} if call_timeout is None else {"call_timeout": call_timeout}
    judge = router_judge([stub.base_url], model="ra-stub", timeout=2.0, num_retries=num_retries, **options)
    started = time.perf_counter()

    with pytest.raises(JudgeTimeoutError, match=rf"within call_timeout={limit}s"):
        await judge.ajudge(REQUEST)

    assert time.perf_counter() - started < 10  # not the trickle's 30 s
    assert _judge_requests(stub) == 1


def test_call_timeout_defaults_to_what_the_router_settings_allow() -> None:
    judge = router_judge(["http://127.0.0.1:9/v1"], model="m", timeout=10, num_retries=2, retry_after=20)
    assert judge.call_timeout == 10 * 3 + 20 * 2  # every attempt its whole timeout, the longest wait before each retry
    assert router_judge(["http://127.0.0.1:9/v1"], model="m", call_timeout=None).call_timeout is None


def test_bad_call_timeout_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="call_timeout must be positive"):
        router_judge(["http://127.0.0.1:9/v1"], model="m", call_timeout=0)


async def test_closing_the_judge_closes_the_connections_it_opened(stub: OpenAIStubServer) -> None:
    # The router sends through litellm's per-loop clients: a closed guard must not leave them open
    # (they were left for the garbage collector, which reported them in whichever test ran next).
    guard = Guard(
        policies=[Policy(name="brief", principle="Be brief.")], judge=router_judge([stub.base_url], model="ra-stub")
    )
    await guard.arerank("Hi", ["Hello there. score=2", "Hi. score=5"])
    assert stub.open_connections >= 1

    await guard.aclose()

    assert await asyncio.to_thread(stub.wait_connections_closed)
    # The router stays usable: the next call opens a fresh connection.
    again = await guard.arerank("Hi", ["Hello there. score=2", "Hi. score=5"])
    assert again.chosen_index == 1 and not again.degraded
    await guard.aclose()


def test_sync_calls_reuse_one_pool_that_close_releases(stub: OpenAIStubServer) -> None:
    judge = router_judge([stub.base_url], model="ra-stub")
    assert [judge.judge(REQUEST).best for _ in range(3)] == ["b"] * 3
    assert stub.open_connections <= 1

    judge.close()

    assert stub.wait_connections_closed()
