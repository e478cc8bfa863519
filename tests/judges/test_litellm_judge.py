"""LiteLLMJudge through litellm, pointed at a real loopback OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import httpx
import pytest

from ra_guard.exceptions import (
    ConfigurationError,
    JudgeError,
    JudgeOutputError,
    JudgeTimeoutError,
    MissingDependencyError,
)
from ra_guard.judges import resolve_judge
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.format import render_messages
from ra_guard.judges.litellm_judge import LiteLLMJudge
from tests.support.openai_server import Completion, Fault, OpenAIStubServer

# litellm builds a pydantic schema for a TypedDict with ReadOnly items on its first call (a UserWarning
# pydantic raises); the lead is asked to add this filter to pyproject's filterwarnings.
pytestmark = pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning")

REQUEST = JudgeRequest(
    principle="Be concise.",
    prompt="Capital of France?",
    responses={"short": "Paris. score=5", "long": "The capital is Paris, a large city. score=2"},
)


def _judge(server: OpenAIStubServer, **kwargs: Any) -> LiteLLMJudge:
    kwargs.setdefault("max_retries", 0)
    return LiteLLMJudge("openai/ra-stub", api_base=server.base_url, api_key="x", **kwargs)


async def test_judges_through_litellm(openai_server: OpenAIStubServer) -> None:
    verdict = await _judge(openai_server).ajudge(REQUEST)

    assert verdict.scores == {"short": 5.0, "long": 2.0}
    assert verdict.ranking == ["short", "long"]
    assert verdict.model == "ra-stub"
    assert verdict.usage.total_tokens > 0
    (sent,) = openai_server.requests
    assert sent.body["messages"] == render_messages(REQUEST).messages
    assert (sent.body["model"], sent.body["temperature"], sent.body["max_tokens"]) == ("ra-stub", 0.0, 4096)


def test_resolves_from_spec_string() -> None:
    judge = resolve_judge("litellm:openai/ra-stub")
    assert isinstance(judge, LiteLLMJudge)
    assert judge.name == "litellm:openai/ra-stub"


def test_missing_litellm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'ra-guard\[litellm\]'"):
        LiteLLMJudge("gpt-4o-mini")


async def test_timeout_raises_judge_timeout(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.hang())
    with pytest.raises(JudgeTimeoutError) as caught:
        await _judge(openai_server, timeout=0.2).ajudge(REQUEST)
    assert caught.value.retryable


async def test_timeout_bounds_each_attempt_against_a_trickling_server(openai_server: OpenAIStubServer) -> None:
    # Each read gets a byte within the 0.5 s timeout: only a bound on the attempt as a whole stops this.
    openai_server.script(Fault.trickle(interval=0.1, seconds=8))
    judge = _judge(openai_server, timeout=0.5, max_retries=3)
    started = time.perf_counter()

    with pytest.raises(JudgeTimeoutError, match=r"no answer within 0\.5s"):
        await judge.ajudge(REQUEST)

    assert time.perf_counter() - started < 4  # not the trickle's 8 s
    assert len(openai_server.requests) == 1  # and the timed-out attempt is not retried


@pytest.mark.parametrize("timeout", [0.5, httpx.Timeout(0.5)], ids=["seconds", "httpx-timeout"])
async def test_a_timed_out_generation_is_not_retried_by_default(
    openai_server: OpenAIStubServer, timeout: float | httpx.Timeout
) -> None:
    openai_server.script(*[Fault.hang(5)] * 4)
    judge = LiteLLMJudge("openai/ra-stub", api_base=openai_server.base_url, api_key="x", timeout=timeout)

    with pytest.raises(JudgeTimeoutError):
        await judge.ajudge(REQUEST)

    # Neither the judge nor litellm nor the openai SDK under it retries: the server may still be generating.
    assert len(openai_server.requests) == 1


async def test_retry_timeouts_retries_a_timed_out_generation(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.hang(30))
    # The retry must answer within the same timeout: 3 s, not 0.5 s, which a loaded machine could spend on the
    # retry's new connection and a garbage-collector pause. The request count shows the first attempt timed out.
    verdict = await _judge(openai_server, timeout=3, max_retries=1, retry_timeouts=True).ajudge(REQUEST)
    assert verdict.best == "short"
    assert len(openai_server.requests) == 2


async def test_server_errors_are_retried_by_default(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.error(503), Fault.drop())
    judge = LiteLLMJudge("openai/ra-stub", api_base=openai_server.base_url, api_key="x", timeout=5)
    assert (await judge.ajudge(REQUEST)).best == "short"
    assert len(openai_server.requests) == 3


def test_negative_max_retries_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="max_retries must be 0 or more"):
        LiteLLMJudge("openai/ra-stub", max_retries=-1)


@pytest.mark.parametrize("fault", [Fault.error(500), Fault.rate_limit(), Fault.drop()])
async def test_transient_failures_are_retried(openai_server: OpenAIStubServer, fault: Fault) -> None:
    openai_server.script(fault)
    verdict = await _judge(openai_server, max_retries=2).ajudge(REQUEST)
    assert verdict.best == "short"
    assert len(openai_server.requests) == 2


async def test_persistent_500_raises_judge_error(openai_server: OpenAIStubServer) -> None:
    openai_server.script(*[Fault.error(500)] * 3)
    with pytest.raises(JudgeError, match="HTTP 500") as caught:
        await _judge(openai_server, max_retries=2).ajudge(REQUEST)
    assert caught.value.retryable
    assert len(openai_server.requests) == 3


async def test_dropped_connection_raises_judge_error(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.drop())
    with pytest.raises(JudgeError) as caught:
        await _judge(openai_server).ajudge(REQUEST)
    assert caught.value.retryable


async def test_garbage_body_raises_judge_error(openai_server: OpenAIStubServer) -> None:
    # litellm reports an undecodable body as a server error: retryable, not an output error.
    openai_server.script(Fault.garbage())
    with pytest.raises(JudgeError):
        await _judge(openai_server).ajudge(REQUEST)


async def test_truncated_output_raises_output_error(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Completion.truncated_judge())
    with pytest.raises(JudgeOutputError) as caught:
        await _judge(openai_server).ajudge(REQUEST)
    assert caught.value.reason == "truncated_thinking"


async def test_concurrency_limit_is_respected(openai_server: OpenAIStubServer) -> None:
    openai_server.judge_latency = 0.05
    judge = _judge(openai_server, max_concurrency=2)
    verdicts = await asyncio.gather(*(judge.ajudge(REQUEST) for _ in range(6)))
    assert len(verdicts) == 6
    assert openai_server.max_in_flight["judge"] == 2


def test_sync_calls_share_one_pool_that_close_releases(openai_server: OpenAIStubServer) -> None:
    judge = _judge(openai_server)
    assert [judge.judge(REQUEST).best for _ in range(3)] == ["short"] * 3
    assert openai_server.open_connections <= 1
    judge.close()
    assert openai_server.wait_connections_closed()
