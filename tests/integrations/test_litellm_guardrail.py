"""RaGuardGuardrail's hooks called directly (no proxy): blocking, passing, buffered streams, configuration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import litellm
import pytest
from fastapi import HTTPException
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
