"""OpenAICompatJudge against the faults real servers showed: rejected fields, thin digits, slow servers."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from typing import Any

import pytest

from ra_guard._warn import reset_fallback_warnings
from ra_guard.exceptions import ConfigurationError, JudgeError, JudgeOutputError, JudgeTimeoutError
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.openai_compat import LOGPROBS_UNAVAILABLE, OpenAICompatJudge
from tests.support.openai_server import Completion, Fault, OpenAIStubServer, RecordedRequest, is_judge_request

REQUEST = JudgeRequest(
    principle="Be concise.",
    prompt="Capital of France?",
    responses={"short": "Paris. score=5", "long": "The capital is Paris, a large city. score=2"},
)
ASKED = re.compile(r'"(model-\d+)": $')
# transformers serve's answer to vLLM-only fields.
UNEXPECTED = "Unexpected fields in the request: {'continue_final_message', 'add_generation_prompt'}"


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    reset_fallback_warnings()


def _is_digit_step(request: RecordedRequest) -> bool:
    return bool((request.body or {}).get("logprobs"))


def _top(entries: dict[str, float]) -> Completion:
    top = [{"token": token, "logprob": math.log(p), "bytes": None} for token, p in entries.items()]
    first = next(iter(entries))
    logprobs = {"content": [{"token": first, "logprob": top[0]["logprob"], "bytes": None, "top_logprobs": top}]}
    return Completion(texts=[first], logprobs=[logprobs])


def _judge(server: OpenAIStubServer, **kwargs: Any) -> OpenAICompatJudge:
    kwargs.setdefault("model", "ra-stub")
    kwargs.setdefault("timeout", 5.0)
    return OpenAICompatJudge(server.base_url, **kwargs)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("ra_guard") and r.levelno == logging.WARNING]


# -- 1. a server that rejects the forced-prefix fields -------------------------


@pytest.mark.parametrize("mode", ["fast", "hybrid"])
async def test_rejected_prefix_fields_fall_back_to_parsing_remembered(
    openai_server: OpenAIStubServer, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    openai_server.script(
        *[Fault.error(422, retry_after=None, message=UNEXPECTED, shape="fastapi")] * 3, when=_is_digit_step
    )
    judge = _judge(openai_server, mode=mode, thinking_budget=32)
    try:
        with caplog.at_level(logging.WARNING, logger="ra_guard"):
            first = await judge.ajudge(REQUEST)
        steps_before = sum(_is_digit_step(r) for r in openai_server.requests)
        second = await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()

    assert first.scores == second.scores == {"short": 5.0, "long": 2.0}  # parsed from the stub's generation
    assert any(r.startswith("digits_unsupported:") and "Unexpected fields" in r for r in first.repairs)
    assert any(r.startswith("digits_unsupported:") for r in second.repairs)
    assert judge.digits_supported is False
    assert sum(_is_digit_step(r) for r in openai_server.requests) == steps_before == 1  # not asked again
    assert any("digits_unsupported" in w for w in _warnings(caplog))
    fallbacks = [r for r in openai_server.requests if r.kind == "judge" and not _is_digit_step(r)]
    assert fallbacks[-1].body["max_tokens"] == 512  # the bounded fallback generation


# -- 2. digit probability mass ----------------------------------------------


async def test_thin_digit_mass_falls_back_and_says_so(
    openai_server: OpenAIStubServer, caplog: pytest.LogCaptureFixture
) -> None:
    # llama.cpp on a general chat model: only "2" among the top 20, at 0.5%.
    openai_server.script(_top({"The": 0.9, "2": 0.005}), when=_is_digit_step)
    judge = _judge(openai_server, mode="fast", fallback_max_tokens=64)
    try:
        with caplog.at_level(logging.WARNING, logger="ra_guard"):
            verdict = await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert verdict.scores == {"short": 5.0, "long": 2.0}  # not the one-hot 2.0 read from 0.5%
    (note,) = [r for r in verdict.repairs if r.startswith("low_digit_mass:")]
    assert "0.5%" in note and "min_digit_mass=0.1" in note
    assert openai_server.requests[-1].body["max_tokens"] == 64
    assert any("low_digit_mass" in w for w in _warnings(caplog))


async def test_thin_digit_mass_can_raise(openai_server: OpenAIStubServer) -> None:
    openai_server.script(_top({"The": 0.9, "2": 0.005}), when=_is_digit_step)
    judge = _judge(openai_server, mode="fast", on_low_digit_mass="raise")
    try:
        with pytest.raises(JudgeOutputError, match="low_digit_mass") as caught:
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert caught.value.reason == "low_digit_mass"
    assert len(openai_server.of_kind("judge")) == 1  # no fallback generation


async def test_enough_digit_mass_is_read(openai_server: OpenAIStubServer) -> None:
    openai_server.script(_top({"4": 0.3, "The": 0.5}), _top({"2": 0.6}), when=_is_digit_step)
    judge = _judge(openai_server, mode="fast", min_digit_mass=0.25)
    try:
        verdict = await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert verdict.repairs == [] and verdict.distributions is not None
    assert sorted(verdict.scores.values()) == [2.0, 4.0]


async def test_no_digit_in_top_logprobs_gets_a_bounded_visible_fallback(
    openai_server: OpenAIStubServer, caplog: pytest.LogCaptureFixture
) -> None:
    openai_server.script(_top({"The": 0.6, "I": 0.3}), when=_is_digit_step)
    judge = _judge(openai_server, mode="fast")
    try:
        with caplog.at_level(logging.WARNING, logger="ra_guard"):
            verdict = await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert any(r.startswith("low_digit_mass: the digits 1-5 held 0.0%") for r in verdict.repairs)
    (fallback,) = [r for r in openai_server.of_kind("judge") if not _is_digit_step(r)]
    assert fallback.body["max_tokens"] == 512  # not the full 4096-token reasoning run
    assert any("fallback generation of at most 512 tokens" in w for w in _warnings(caplog))


async def test_missing_logprobs_fallback_is_bounded_and_logged(
    openai_server: OpenAIStubServer, caplog: pytest.LogCaptureFixture
) -> None:
    judge = _judge(openai_server, mode="fast")  # the stub sends no logprobs unless scripted
    try:
        with caplog.at_level(logging.WARNING, logger="ra_guard"):
            verdict = await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert LOGPROBS_UNAVAILABLE in verdict.repairs
    assert openai_server.requests[-1].body["max_tokens"] == 512
    assert any("logprobs_unavailable" in w for w in _warnings(caplog))


async def test_a_fallback_that_cannot_be_parsed_says_it_was_the_fallback(openai_server: OpenAIStubServer) -> None:
    """The parse error names the fallback and its bound, so a user sees why a fast judge generated text."""
    openai_server.script("3", "I would rather not give scores.")  # a digit step without logprobs, then prose
    judge = _judge(openai_server, mode="fast")
    try:
        with pytest.raises(JudgeOutputError) as caught:
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert caught.value.reason == "no_json"
    assert "in the logprobs_unavailable fallback, a generation of at most 512 tokens" in str(caught.value)


def test_digit_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="min_digit_mass"):
        OpenAICompatJudge("http://127.0.0.1:1/v1", min_digit_mass=1.5)
    with pytest.raises(ConfigurationError, match="on_low_digit_mass"):
        OpenAICompatJudge("http://127.0.0.1:1/v1", on_low_digit_mass="ignore")  # type: ignore[arg-type]


# -- 4. the server's explanation ----------------------------------------------


async def test_http_error_keeps_the_server_explanation(openai_server: OpenAIStubServer) -> None:
    pinned = "Server is pinned to 'tiny-judge'; requested 'RewardAnything-8B'"
    openai_server.script(Fault.error(400, retry_after=None, message=pinned, shape="fastapi"))
    judge = _judge(openai_server, model="RewardAnything-8B")
    try:
        with pytest.raises(JudgeError, match="HTTP 400") as caught:
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert pinned in str(caught.value)


async def test_long_explanations_are_capped(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.error(400, retry_after=None, message="x" * 40_000, shape="fastapi"))
    judge = _judge(openai_server)
    try:
        with pytest.raises(JudgeError) as caught:
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert "x" * 500 in str(caught.value) and len(str(caught.value)) < 800


# -- 5. slow servers ------------------------------------------------------------


async def test_timeout_bounds_the_whole_call_not_each_read(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.trickle(interval=0.1, seconds=20))
    judge = _judge(openai_server, timeout=0.5, max_retries=3)
    started = time.perf_counter()
    try:
        with pytest.raises(JudgeTimeoutError, match=r"no answer within 0\.5s"):
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert time.perf_counter() - started < 5  # a per-read timeout would wait the whole 20 s
    assert len(openai_server.of_kind("judge")) == 1  # and a timed-out generation is not retried


async def test_max_tokens_is_bounded_by_the_served_context(openai_server: OpenAIStubServer) -> None:
    openai_server.model_extras = {"max_model_len": 1024}  # vLLM's /v1/models entry
    judge = OpenAICompatJudge(openai_server.base_url, timeout=5.0)  # discovers the model and its context
    try:
        await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert judge.context_tokens == 1024
    (call,) = [r for r in openai_server.requests if r.kind == "judge"]
    assert 16 <= call.body["max_tokens"] < 1024  # room left for the input


async def test_a_given_model_is_bounded_by_the_served_context_from_its_first_call(
    openai_server: OpenAIStubServer,
) -> None:
    openai_server.model_extras = {"max_model_len": 1024}  # vLLM's /v1/models entry
    judge = _judge(openai_server)  # model= given: no discovery, and no 400 to learn from
    try:
        await asyncio.gather(*(judge.ajudge(REQUEST) for _ in range(3)))  # three first calls at once
        await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert judge.context_tokens == 1024
    assert len(openai_server.of_kind("models")) == 1  # asked once per judge
    calls = openai_server.of_kind("judge")
    assert len(calls) == 4
    assert all(16 <= call.body["max_tokens"] < 1024 for call in calls)  # not the 4096 the server would refuse


async def test_a_max_tokens_refusal_naming_the_context_is_learned_and_retried_within_it(
    openai_server: OpenAIStubServer,
) -> None:
    """vLLM 0.32 refuses max_tokens above max_model_len with the limit alone (seen against the real server)."""
    refusal = "max_tokens=4096 cannot be greater than max_model_len=1024. Please request fewer output tokens."
    openai_server.script(Fault.error(400, retry_after=None, message=refusal), when=is_judge_request)
    judge = _judge(openai_server)  # the stub's /models reports no context: only the refusal tells it
    try:
        verdict = await judge.ajudge(REQUEST)
        await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert verdict.best == "short"
    assert judge.context_tokens == 1024
    sent = [call.body["max_tokens"] for call in openai_server.of_kind("judge")]
    assert sent[0] == 4096 and all(16 <= n < 1024 for n in sent[1:]) and len(sent) == 3


def _is_models_request(request: RecordedRequest) -> bool:
    return request.route == "/models"


@pytest.mark.parametrize(
    "fault",
    [None, Fault.error(404, retry_after=None), Fault.error(500, retry_after=None), Fault.hang(), Fault.garbage()],
    ids=["no-max_model_len", "404", "500", "hang", "garbage"],
)
async def test_the_served_context_is_optional_knowledge(
    openai_server: OpenAIStubServer, caplog: pytest.LogCaptureFixture, fault: Fault | None
) -> None:
    if fault is not None:
        openai_server.script(fault, fault, when=_is_models_request)
    judge = _judge(openai_server, timeout=1.0)
    try:
        with caplog.at_level(logging.DEBUG, logger="ra_guard.judges"):
            verdicts = [await judge.ajudge(REQUEST) for _ in range(2)]
    finally:
        await judge.aclose()
    assert [v.best for v in verdicts] == ["short", "short"]  # no failure for want of the context
    assert judge.context_tokens is None
    assert [c.body["max_tokens"] for c in openai_server.of_kind("judge")] == [4096, 4096]
    assert len(openai_server.of_kind("models")) == 1  # not asked again on every call
    debug = [r.getMessage() for r in caplog.records if r.name == "ra_guard.judges" and r.levelno == logging.DEBUG]
    assert any("GET /models" in m for m in debug)
    assert not _warnings(caplog)


# -- 8. health check --------------------------------------------------------------


async def test_ping_passes_and_learns_the_context(openai_server: OpenAIStubServer) -> None:
    openai_server.model_extras = {"max_model_len": 8192}
    judge = _judge(openai_server)
    try:
        assert await judge.aping() is None
    finally:
        await judge.aclose()
    assert [r.route for r in openai_server.requests] == ["/models"]
    assert judge.context_tokens == 8192


async def test_ping_names_a_model_that_is_not_served(openai_server: OpenAIStubServer) -> None:
    judge = _judge(openai_server, model="RewardAnything-8B")
    try:
        with pytest.raises(ConfigurationError, match=r"'RewardAnything-8B' is not served .* \['ra-stub'\]"):
            await judge.aping()
    finally:
        await judge.aclose()


async def test_ping_explains_a_wrong_base_path(openai_server: OpenAIStubServer) -> None:
    judge = OpenAICompatJudge(openai_server.root_url + "/api", model="ra-stub", max_retries=0)
    try:
        with pytest.raises(JudgeError, match=r"HTTP 404 .*wrong base path\? .*try 'http://127\.0\.0\.1:\d+/v1'"):
            await judge.aping()
    finally:
        await judge.aclose()


async def test_ping_says_connection_refused(unused_tcp_port: int) -> None:
    judge = OpenAICompatJudge(f"http://127.0.0.1:{unused_tcp_port}/v1", model="m", max_retries=0)
    try:
        with pytest.raises(
            JudgeError, match=rf"connection to http://127\.0\.0\.1:{unused_tcp_port}/v1 failed"
        ) as caught:
            await judge.aping()
    finally:
        await judge.aclose()
    assert f"is the server running at 127.0.0.1:{unused_tcp_port}?" in str(caught.value)


def test_sync_ping(openai_server: OpenAIStubServer) -> None:
    _judge(openai_server).ping()
    assert openai_server.requests[0].route == "/models"


async def test_gateway_timeout_is_not_retried_by_default(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.error(504), Fault.error(504))
    judge = _judge(openai_server, max_retries=2)
    try:
        with pytest.raises(JudgeError, match="HTTP 504") as caught:
            await judge.ajudge(REQUEST)
    finally:
        await judge.aclose()
    assert not caught.value.retryable
    assert len(openai_server.of_kind("judge")) == 1


async def test_unavailable_server_is_retried_with_backoff(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.error(503, retry_after=0.05), Fault.drop())
    judge = _judge(openai_server, max_retries=2)
    try:
        assert (await judge.ajudge(REQUEST)).best == "short"
    finally:
        await judge.aclose()
    first, second, _third = openai_server.of_kind("judge")  # 503, dropped connection, answer
    assert second.received_at - first.received_at >= 0.04  # the server's Retry-After


# -- a generation cut off inside its thinking holds no verdict -----------------


@pytest.mark.parametrize("finish_reason", ["length", "stop"])
async def test_draft_verdict_in_cut_off_thinking_is_not_read(
    openai_server: OpenAIStubServer, finish_reason: str
) -> None:
    from ra_guard.judges.format import render_messages

    masked = list(render_messages(REQUEST).masked_to_caller)
    scores = {name: 5 if i == 0 else 1 for i, name in enumerate(masked)}
    draft = json.dumps({"scores": scores, "best-to-worst ranking": masked})
    # The judge drafted a verdict while thinking and was cut off before closing </think>.
    openai_server.script(Completion(texts=[f"<think>Perhaps {draft} but first"], finish_reason=finish_reason))
    judge = _judge(openai_server, mode="reasoning")
    if finish_reason == "length":
        with pytest.raises(JudgeOutputError) as caught:
            await judge.ajudge(REQUEST)
        assert caught.value.reason == "truncated_thinking"
    else:  # finished thinking-only output: the reference reads the JSON it holds
        verdict = await judge.ajudge(REQUEST)
        assert set(verdict.scores) == set(REQUEST.responses)
    await judge.aclose()
