"""OpenAICompatJudge against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ra_guard import Guard, Policy
from ra_guard.exceptions import (
    ConfigurationError,
    JudgeError,
    JudgeInputTooLongError,
    JudgeOutputError,
    JudgeTimeoutError,
)
from ra_guard.judges import resolve_judge
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.format import render_messages
from ra_guard.judges.openai_compat import OpenAICompatJudge
from ra_guard.testing import FunctionSampler
from tests.support.openai_server import Completion, Fault, OpenAIStubServer, is_judge_request

REQUEST = JudgeRequest(
    principle="Be concise.",
    prompt="Capital of France?",
    responses={"short": "Paris. score=5", "long": "The capital is Paris, a large city. score=2"},
)


@pytest.fixture
async def judge(openai_server: OpenAIStubServer) -> AsyncIterator[OpenAICompatJudge]:
    judge = OpenAICompatJudge(openai_server.base_url, model="ra-stub", timeout=2.0, max_retries=2)
    yield judge
    await judge.aclose()


async def test_judges_over_http(judge: OpenAICompatJudge, openai_server: OpenAIStubServer) -> None:
    verdict = await judge.ajudge(REQUEST)

    assert verdict.ranking == ["short", "long"]
    assert verdict.scores == {"short": 5.0, "long": 2.0}
    assert verdict.model == "ra-stub"
    assert verdict.usage.prompt_tokens > 0 and verdict.usage.completion_tokens > 0
    assert "short" in verdict.reasoning or "long" in verdict.reasoning  # unmasked
    # The served context is asked once (GET /models) before the first generation: max_tokens is bounded from it.
    assert [r.route for r in openai_server.requests] == ["/models", "/chat/completions"]
    (sent,) = openai_server.of_kind("judge")
    assert sent.body["messages"] == render_messages(REQUEST).messages
    assert (sent.body["temperature"], sent.body["max_tokens"], sent.body["model"]) == (0.0, 4096, "ra-stub")
    assert sent.headers["authorization"] == "Bearer EMPTY"
    assert judge.name == f"openai-compat:ra-stub@127.0.0.1:{openai_server.port}"


async def test_discovers_the_model_once(openai_server: OpenAIStubServer) -> None:
    judge = OpenAICompatJudge(openai_server.base_url)
    assert judge.name.startswith("openai-compat:?@")
    try:
        await asyncio.gather(*(judge.ajudge(REQUEST) for _ in range(5)))
    finally:
        await judge.aclose()
    assert [r.route for r in openai_server.requests].count("/models") == 1
    assert {r.body["model"] for r in openai_server.requests if r.kind == "judge"} == {"ra-stub"}
    assert judge.model == "ra-stub"
    assert judge.name == f"openai-compat:ra-stub@127.0.0.1:{openai_server.port}"


async def test_discovery_with_no_model_served(openai_server: OpenAIStubServer) -> None:
    openai_server.models.clear()
    judge = OpenAICompatJudge(openai_server.base_url, max_retries=0)
    try:
        with pytest.raises(JudgeError, match="lists no model; pass model="):
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()


def test_resolves_from_spec_strings(openai_server: OpenAIStubServer) -> None:
    for prefix in ("openai-compat", "vllm"):
        judge = resolve_judge(f"{prefix}:{openai_server.base_url}")
        assert isinstance(judge, OpenAICompatJudge)
        assert judge.base_url == openai_server.base_url
    assert OpenAICompatJudge(openai_server.root_url).base_url == openai_server.base_url


def test_sync_calls_on_fresh_loops(openai_server: OpenAIStubServer) -> None:
    judge = OpenAICompatJudge(openai_server.base_url)
    assert [judge.judge(REQUEST).best for _ in range(3)] == ["short"] * 3


@pytest.mark.parametrize(
    "kwargs",
    [{"max_concurrency": 0}, {"max_retries": -1}, {"timeout": 0}, {"mode": "telepathic"}],
)
def test_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        OpenAICompatJudge("http://127.0.0.1:9/v1", **kwargs)  # type: ignore[arg-type]


# -- faults ---------------------------------------------------------------


async def test_timed_out_generation_is_not_retried_by_default(openai_server: OpenAIStubServer) -> None:
    # A retry would pile a second generation onto a server still busy with the abandoned one.
    openai_server.script(Fault.hang(), Fault.hang())
    judge = OpenAICompatJudge(openai_server.base_url, model="ra-stub", timeout=0.2, max_retries=3)
    try:
        with pytest.raises(JudgeTimeoutError, match=r"no answer within 0\.2s while judging") as caught:
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert caught.value.retryable
    assert caught.value.judge == judge.name
    assert len(openai_server.of_kind("judge")) == 1


async def test_timeouts_are_retried_when_asked(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.hang(), Fault.hang())
    judge = OpenAICompatJudge(openai_server.base_url, model="ra-stub", timeout=0.2, max_retries=1, retry_timeouts=True)
    try:
        with pytest.raises(JudgeTimeoutError, match=r"no answer within 0\.2s after 1 retries"):
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert len(openai_server.of_kind("judge")) == 2


@pytest.mark.parametrize("fault", [Fault.error(500), Fault.error(503), Fault.rate_limit(retry_after=0.05)])
async def test_transient_status_is_retried(
    judge: OpenAICompatJudge, openai_server: OpenAIStubServer, fault: Fault
) -> None:
    openai_server.script(fault)
    verdict = await judge.ajudge(REQUEST)
    assert verdict.best == "short"
    first, second = openai_server.of_kind("judge")
    if fault.status == 429:
        assert second.received_at - first.received_at >= 0.04  # Retry-After honoured


async def test_persistent_500_raises_judge_error(judge: OpenAICompatJudge, openai_server: OpenAIStubServer) -> None:
    openai_server.script(*[Fault.error(500)] * 3)
    with pytest.raises(JudgeError, match="HTTP 500 after 2 retries") as caught:
        await judge.ajudge(REQUEST)
    assert caught.value.retryable and not isinstance(caught.value, JudgeTimeoutError)
    assert len(openai_server.of_kind("judge")) == 3


async def test_client_error_is_not_retried(judge: OpenAICompatJudge, openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.error(400, retry_after=None, message="bad request"))
    with pytest.raises(JudgeError, match="HTTP 400") as caught:
        await judge.ajudge(REQUEST)
    assert not caught.value.retryable
    assert len(openai_server.of_kind("judge")) == 1


async def test_context_overflow_is_input_too_long(judge: OpenAICompatJudge, openai_server: OpenAIStubServer) -> None:
    message = (
        "This model's maximum context length is 8192 tokens. However, you requested 12286 tokens "
        "(8190 in the messages, 4096 in the completion)."
    )
    openai_server.script(Fault.error(400, retry_after=None, message=message))
    with pytest.raises(JudgeInputTooLongError) as caught:
        await judge.ajudge(REQUEST)
    assert (caught.value.input_tokens, caught.value.max_input_tokens) == (8190, 8192)
    assert len(openai_server.of_kind("judge")) == 1  # 2 tokens of room: not worth a retry


async def test_max_tokens_shrinks_to_the_room_the_server_reports(
    judge: OpenAICompatJudge, openai_server: OpenAIStubServer
) -> None:
    message = (
        "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens "
        "(4904 in the messages, 4096 in the completion)."
    )
    openai_server.script(Fault.error(400, retry_after=None, message=message))
    assert (await judge.ajudge(REQUEST)).best == "short"
    assert [r.body["max_tokens"] for r in openai_server.of_kind("judge")] == [4096, 8192 - 4904]
    assert judge.context_tokens == 8192


async def test_dropped_connection_is_retried(judge: OpenAICompatJudge, openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.drop())
    assert (await judge.ajudge(REQUEST)).best == "short"
    assert len(openai_server.of_kind("judge")) == 2


async def test_persistent_dropped_connection_raises(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.drop(), Fault.drop())
    judge = OpenAICompatJudge(openai_server.base_url, model="ra-stub", max_retries=1)
    try:
        with pytest.raises(JudgeError, match=r"connection to .* failed after 1 retries") as caught:
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert caught.value.retryable


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"\xff\xfe not utf-8", b"[1, 2]", b'{"id": "x"}'])
async def test_garbage_body_raises_output_error(
    judge: OpenAICompatJudge, openai_server: OpenAIStubServer, body: bytes
) -> None:
    openai_server.script(Fault.garbage(body))
    with pytest.raises(JudgeOutputError) as caught:
        await judge.ajudge(REQUEST)
    assert caught.value.reason in ("no_json", "empty_output")
    assert len(openai_server.of_kind("judge")) == 1


async def test_truncated_judge_output(judge: OpenAICompatJudge, openai_server: OpenAIStubServer) -> None:
    openai_server.script(Completion.truncated_judge())
    with pytest.raises(JudgeOutputError, match="max_tokens") as caught:
        await judge.ajudge(REQUEST)
    assert caught.value.reason == "truncated_thinking"
    assert caught.value.raw_text.startswith("<think>")


async def test_reasoning_parser_output_is_reassembled(
    judge: OpenAICompatJudge, openai_server: OpenAIStubServer
) -> None:
    shown = render_messages(REQUEST).masked_to_caller
    best = next(name for name, caller in shown.items() if caller == "short")
    worst = next(name for name, caller in shown.items() if caller == "long")
    answer = {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "ra-stub",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "reasoning_content": f"{best} is terse, {worst} rambles.",
                    "content": f'{{"scores": {{"{best}": 5, "{worst}": 1}}, "best-to-worst": ["{best}", "{worst}"]}}',
                },
            }
        ],
    }
    openai_server.script(answer)
    verdict = await judge.ajudge(REQUEST)
    assert verdict.reasoning == "short is terse, long rambles."
    assert verdict.scores == {"short": 5.0, "long": 1.0}


async def test_concurrency_limit_is_respected(openai_server: OpenAIStubServer) -> None:
    openai_server.judge_latency = 0.05
    judge = OpenAICompatJudge(openai_server.base_url, model="ra-stub", max_concurrency=3)
    try:
        verdicts = await asyncio.gather(*(judge.ajudge(REQUEST) for _ in range(12)))
    finally:
        await judge.aclose()
    assert len(verdicts) == 12
    assert openai_server.max_in_flight["judge"] == 3


# -- end to end -----------------------------------------------------------


async def test_guard_end_to_end_with_judge_faults(openai_server: OpenAIStubServer) -> None:
    judge = OpenAICompatJudge(openai_server.base_url, model="ra-stub", max_retries=1)
    sampler = FunctionSampler(lambda messages, i: f"candidate {i} score={[2, 5, 3][i]}")
    guard = Guard(
        policies=[Policy(name="concise", principle="Be concise."), Policy(name="polite", principle="Be polite.")],
        judge=judge,
        sampler=sampler,
    )
    openai_server.script(Fault.error(500), Fault.drop(), when=is_judge_request)
    try:
        decision = await guard.arun([{"role": "user", "content": "Say something"}], n=3)
        openai_server.script(*[Fault.error(500)] * 4, when=is_judge_request)
        degraded = await guard.arun([{"role": "user", "content": "Again"}], n=3)
    finally:
        await guard.aclose()
    assert decision.text == "candidate 1 score=5"
    assert decision.judge_calls == 2 and not decision.fallbacks
    assert {f.kind for f in degraded.fallbacks} == {"judge_error"}
    assert all("HTTP 500" in (f.reason or "") for f in degraded.fallbacks)


def test_sync_calls_share_one_pool_that_close_releases(openai_server: OpenAIStubServer) -> None:
    # Sync calls run on one long-lived loop: the pool is reused, not rebuilt per call, until close().
    judge = OpenAICompatJudge(openai_server.base_url, model="ra-stub")
    for _ in range(3):
        judge.judge(REQUEST)
    assert openai_server.open_connections <= 1
    judge.close()
    assert openai_server.wait_connections_closed()
