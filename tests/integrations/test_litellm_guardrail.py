"""RaGuardGuardrail's hooks called directly (no proxy): blocking, passing, buffered streams, configuration."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import litellm
import pytest
from fastapi import HTTPException
from litellm.types.guardrails import GuardrailEventHooks
from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices

from ra_guard import ConfigurationError, Policy
from ra_guard.integrations.litellm.guardrail import RaGuardGuardrail
from ra_guard.testing import FunctionJudge

POLICY = Policy(name="polite", principle="Be polite.", min_score=3)
DATA = {"model": "assistant", "messages": [{"role": "user", "content": "Help me"}]}
JUDGE = FunctionJudge(lambda r: {k: 5 if "please" in t else 1 for k, t in r.responses.items()})


def _response(text: str) -> litellm.ModelResponse:
    return litellm.ModelResponse(
        choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}], model="m"
    )


def _guardrail(**kwargs: Any) -> RaGuardGuardrail:
    return RaGuardGuardrail(policies=[POLICY], judge=JUDGE, guardrail_name="ra-guard", event_hook="post_call", **kwargs)


async def test_block_raises_http_400_naming_the_policy() -> None:
    with pytest.raises(HTTPException) as caught:
        await _guardrail(on_fail="block").async_post_call_success_hook(DATA, None, _response("No."))
    assert caught.value.status_code == 400
    detail: Any = caught.value.detail
    assert "polite" in detail["error"]
    assert detail["ra_guard"]["passed"] is False


async def test_passing_response_is_returned_with_the_decision() -> None:
    out = await _guardrail(on_fail="block").async_post_call_success_hook(DATA, None, _response("Sure, please."))
    assert out.choices[0].message.content == "Sure, please."
    assert out.ra_guard["passed"] is True


async def test_tool_call_responses_pass_unjudged() -> None:
    response = litellm.ModelResponse(
        choices=[
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                "finish_reason": "tool_calls",
            }
        ]
    )
    assert await _guardrail(on_fail="block").async_post_call_success_hook(DATA, None, response) is None


async def _chunks(*pieces: str) -> AsyncIterator[ModelResponseStream]:
    for piece in pieces:
        yield ModelResponseStream(id="s", model="m", choices=[StreamingChoices(index=0, delta=Delta(content=piece))])


async def test_streams_pass_through_unless_guarded() -> None:
    plain = _guardrail(on_fail="block")
    passed = [c async for c in plain.async_post_call_streaming_iterator_hook(None, _chunks("No", "."), DATA)]
    assert len(passed) == 2

    guarded = _guardrail(on_fail="block", guard_streams=True)
    replayed = [c async for c in guarded.async_post_call_streaming_iterator_hook(None, _chunks("Yes ", "please"), DATA)]
    assert "".join(c.choices[0].delta.content for c in replayed) == "Yes please"
    with pytest.raises(HTTPException):
        [c async for c in guarded.async_post_call_streaming_iterator_hook(None, _chunks("No", "."), DATA)]


def test_configuration_errors_say_what_to_change() -> None:
    with pytest.raises(ConfigurationError, match="exactly one of judge"):
        RaGuardGuardrail(policies=[POLICY])
    with pytest.raises(ConfigurationError, match="on_fail"):
        RaGuardGuardrail(policies=[POLICY], judge=JUDGE, on_fail="retry")


HARD = Policy(name="no-insults", principle="Never insult the user.", kind="hard", min_score=3)


def _logging_obj(call_type: str) -> Any:
    from litellm.litellm_core_utils.litellm_logging import Logging

    return Logging(
        model="assistant",
        messages=[],
        stream=False,
        call_type=call_type,
        start_time=None,
        litellm_call_id="call-1",
        function_id="f",
    )


async def test_a_blocked_answer_is_not_in_the_error() -> None:
    with pytest.raises(HTTPException) as caught:
        await _guardrail(on_fail="block").async_post_call_success_hook(dict(DATA), None, _response("No, go away."))
    assert "go away" not in json.dumps(caught.value.detail)
    assert caught.value.detail["ra_guard"]["failed_policies"] == ["polite"]


async def test_a_vetoed_answer_is_blocked_even_with_resample() -> None:
    guardrail = RaGuardGuardrail(
        policies=[HARD], judge=JUDGE, guardrail_name="ra-guard-hard", event_hook="post_call", on_fail="resample"
    )
    with pytest.raises(HTTPException) as caught:
        await guardrail.async_post_call_success_hook(dict(DATA), None, _response("No, go away."))
    assert caught.value.status_code == 400 and "go away" not in json.dumps(caught.value.detail)


async def test_the_body_summary_has_scores_but_no_text() -> None:
    out = await _guardrail(on_fail="block").async_post_call_success_hook(dict(DATA), None, _response("Sure, please."))
    summary = out.ra_guard
    assert summary["scores"]["polite"]["score"] == 5 and "candidates" not in summary
    assert "Sure, please." not in json.dumps(summary)
    assert "ra_guard_decision" not in out._hidden_params


def test_a_default_on_guardrail_steps_aside_for_another_ra_guard_guardrail() -> None:
    default = _guardrail(default_on=True)
    strict = RaGuardGuardrail(policies=[POLICY], judge=JUDGE, guardrail_name="ra-guard-strict", event_hook="post_call")
    post_call = GuardrailEventHooks.post_call

    assert default.should_run_guardrail({**DATA}, post_call) is True
    assert default.should_run_guardrail({**DATA, "guardrails": ["ra-guard-strict"]}, post_call) is False
    assert strict.should_run_guardrail({**DATA, "guardrails": ["ra-guard-strict"]}, post_call) is True
    # other guardrails named beside it do not switch it off, nor does naming it
    assert default.should_run_guardrail({**DATA, "guardrails": ["pii-mask"]}, post_call) is True
    assert default.should_run_guardrail({**DATA, "guardrails": ["ra-guard", "ra-guard-strict"]}, post_call) is True
    assert default.should_run_guardrail({**DATA, "guardrails": [{"ra-guard-strict": {}}]}, post_call) is False


async def test_anthropic_messages_answers_are_judged() -> None:
    data = {"model": "assistant", "system": "Be kind.", "messages": [{"role": "user", "content": "Help me"}]}
    data["litellm_logging_obj"] = _logging_obj("anthropic_messages")
    answer = {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "No."}]}
    with pytest.raises(HTTPException):
        await _guardrail().async_post_call_success_hook(data, None, answer)
    passing = {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "Yes, please."}]}
    assert await _guardrail().async_post_call_success_hook(data, None, passing) is None


async def test_responses_api_answers_are_judged() -> None:
    from litellm.types.llms.openai import ResponsesAPIResponse

    def response(text: str) -> ResponsesAPIResponse:
        return ResponsesAPIResponse(
            id="resp_1",
            created_at=0,
            output=[
                {
                    "type": "message",
                    "id": "m",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ],
        )

    data = {"model": "assistant", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Help"}]}]}
    with pytest.raises(HTTPException):
        await _guardrail().async_post_call_success_hook(data, None, response("No."))
    assert await _guardrail().async_post_call_success_hook(data, None, response("Yes, please.")) is None


async def _anthropic_stream(text: str) -> AsyncIterator[bytes]:
    events = [
        {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "content": []}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        {"type": "message_stop"},
    ]
    for event in events:
        yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def test_guarded_anthropic_streams_are_judged_before_any_chunk() -> None:
    data = {**DATA, "stream": True, "litellm_logging_obj": _logging_obj("anthropic_messages")}
    guarded = _guardrail(on_fail="block", guard_streams=True)
    sent: list[bytes] = []

    async def drain() -> None:
        async for chunk in guarded.async_post_call_streaming_iterator_hook(None, _anthropic_stream("No."), data):
            sent.append(chunk)

    with pytest.raises(HTTPException):
        await drain()
    assert sent == []
    replayed = [
        c async for c in guarded.async_post_call_streaming_iterator_hook(None, _anthropic_stream("Yes please"), data)
    ]
    assert len(replayed) == 4


async def test_a_judge_error_quoting_the_answer_does_not_carry_it_out() -> None:
    def judge_fails(request: Any) -> dict[str, float]:
        raise RuntimeError(f"could not parse the judge's output about {list(request.responses.values())}")

    closed = Policy(name="polite", principle="Be polite.", min_score=3, on_judge_error="fail_closed")
    guardrail = RaGuardGuardrail(
        policies=[closed], judge=FunctionJudge(judge_fails), guardrail_name="ra-guard", event_hook="post_call"
    )
    data: dict[str, Any] = {"model": "assistant", "messages": [{"role": "user", "content": "Help me"}]}

    with pytest.raises(HTTPException) as caught:
        await guardrail.async_post_call_success_hook(data, None, _response("No, go away."))

    assert "go away" not in json.dumps(caught.value.detail)
    assert caught.value.detail["ra_guard"]["fallback_kinds"] == ["all_rejected", "judge_error"]
    (logged,) = data["metadata"]["standard_logging_guardrail_information"]
    assert "go away" not in json.dumps(logged["guardrail_response"])


async def test_resample_cannot_replace_a_responses_answer_so_it_blocks_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from litellm.types.llms.openai import ResponsesAPIResponse

    answer = ResponsesAPIResponse(
        id="resp_1",
        created_at=0,
        output=[
            {
                "type": "message",
                "id": "m",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "No.", "annotations": []}],
            }
        ],
    )
    data: dict[str, Any] = {"model": "assistant", "input": "Help me"}

    with caplog.at_level("WARNING", logger="ra_guard"), pytest.raises(HTTPException) as caught:
        await _guardrail(on_fail="resample").async_post_call_success_hook(data, None, answer)

    assert caught.value.detail["ra_guard"]["action"] == "blocked"
    assert "re-sampling is done for chat completions only" in caplog.text
    (logged,) = data["litellm_metadata" if "litellm_metadata" in data else "metadata"][
        "standard_logging_guardrail_information"
    ]
    assert logged["guardrail_status"] == "guardrail_intervened"
    assert data.get("metadata", data.get("litellm_metadata", {}))["applied_guardrails"] == ["ra-guard"]


async def test_an_anthropic_stream_split_mid_event_is_read_whole() -> None:
    whole = b"".join([chunk async for chunk in _anthropic_stream("Yes please")])

    async def in_pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(whole), 7):  # every event split across chunks
            yield whole[start : start + 7]

    data = {**DATA, "stream": True, "litellm_logging_obj": _logging_obj("anthropic_messages")}
    guarded = _guardrail(on_fail="block", guard_streams=True)
    replayed = [c async for c in guarded.async_post_call_streaming_iterator_hook(None, in_pieces(), data)]
    assert b"".join(replayed) == whole
