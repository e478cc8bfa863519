"""Where LangChain users count a guarded call's spend: the usage callback sees every call, the message the winner's.

``get_usage_metadata_callback()`` (``UsageMetadataCallbackHandler``) adds up
``usage_metadata`` per chat model call, through callbacks. The candidates of a
:class:`GuardedRunnable` or a :class:`RaGuardMiddleware` agent turn and the
calls of a :class:`ChatModelJudge` are real
chat model calls, so the handler counts each; the guarded message keeps the
winner's own ``usage_metadata``, and is not a model call itself, so nothing
is counted twice. A judge that is no LangChain model (an HTTP RewardAnything
server) is invisible to the handler: its tokens are in the decision
(``decision.judge_usage``: ``with_decision=True``, the ``ra_guard_decision``
callback event, the audit log).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import pytest
from langchain_core.callbacks import AsyncCallbackHandler, get_usage_metadata_callback
from langchain_core.messages import AIMessage

from ra_guard import Decision, Guard, Policy
from ra_guard.integrations.langchain import (
    DECISION_EVENT,
    ChatModelJudge,
    ChatModelSampler,
    GuardedRunnable,
    RaGuardMiddleware,
)
from tests.integrations.conftest import answer_samplers, chat_openai
from tests.support.openai_server import OpenAIStubServer

pytestmark = pytest.mark.usefixtures("chat_clients")  # each ChatOpenAI gets an async client of its own

POLICY = Policy(name="correct", principle="The answer is factually correct.")


def _counted(handler_usage: dict[str, Any]) -> tuple[int, int]:
    """Input and output tokens the usage callback counted, over every model."""
    return (
        sum(usage["input_tokens"] for usage in handler_usage.values()),
        sum(usage["output_tokens"] for usage in handler_usage.values()),
    )


def _check(stub: OpenAIStubServer, decision: Decision, winner: AIMessage, counted: tuple[int, int]) -> None:
    assert decision.judge_calls >= 1 and len(decision.candidates) == 3
    # the callback counted every candidate and every judge call: the decision's whole spend...
    assert counted == (decision.total_usage.prompt_tokens, decision.total_usage.completion_tokens)
    # ...which the stub really served: the tokens of every request it answered
    served = [r for r in stub.requests if r.kind in {"sampler", "judge"}]
    assert len(served) == 3 + decision.judge_calls
    # the guarded message keeps the winner's own usage, a part of it
    assert winner.usage_metadata is not None
    assert winner.usage_metadata["total_tokens"] == decision.chosen.usage.total_tokens
    assert winner.usage_metadata["total_tokens"] < decision.total_usage.total_tokens / 3


def test_usage_callback_counts_every_candidate_and_judge_call_sync(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "Lyon. score=1", "Paris, the capital. score=5", "Nice. score=2")
    with httpx.Client() as client:  # our own, closed here: the model's default one would outlive the test
        guard = Guard(policies=[POLICY], judge=ChatModelJudge(chat_openai(stub, temperature=0, http_client=client)))
        model = chat_openai(stub, temperature=0.8, http_client=client)
        guarded = GuardedRunnable(model, guard, n=3, with_decision=True)

        with get_usage_metadata_callback() as handler:
            out = guarded.invoke("Capital of France?")
        guard.close()

    _check(stub, out["decision"], out["output"], _counted(handler.usage_metadata))


async def test_usage_callback_counts_every_candidate_and_judge_call_async(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "Lyon. score=1", "Paris, the capital. score=5", "Nice. score=2")
    async with httpx.AsyncClient() as client:
        judge = ChatModelJudge(chat_openai(stub, temperature=0, http_async_client=client))
        guard = Guard(policies=[POLICY], judge=judge)
        model = chat_openai(stub, temperature=0.8, http_async_client=client)
        guarded = GuardedRunnable(model, guard, n=3, with_decision=True)

        with get_usage_metadata_callback() as handler:
            out = await guarded.ainvoke("Capital of France?")
        await guard.aclose()

    _check(stub, out["decision"], out["output"], _counted(handler.usage_metadata))


async def test_a_sync_guard_call_under_a_running_loop_keeps_the_callers_callbacks(stub: OpenAIStubServer) -> None:
    """Sync code inside a coroutine (a notebook cell, a sync tool under an async framework).

    ``guard.run`` runs the decision on the guard's own loop; the caller's context goes with it,
    so LangChain's usage callback (a context variable, no config passed) still sees every
    candidate and judge call.
    """
    answer_samplers(stub, "Lyon. score=1", "Paris, the capital. score=5", "Nice. score=2")
    with httpx.Client() as client:
        guard = Guard(policies=[POLICY], judge=ChatModelJudge(chat_openai(stub, temperature=0, http_client=client)))
        sampler = ChatModelSampler(chat_openai(stub, temperature=0.8, http_client=client))

        with get_usage_metadata_callback() as handler:
            decision = guard.run([{"role": "user", "content": "Capital of France?"}], sampler=sampler, n=3)
        guard.close()

    assert len(decision.candidates) == 3 and decision.judge_calls >= 1
    total = decision.total_usage
    assert _counted(handler.usage_metadata) == (total.prompt_tokens, total.completion_tokens)


class _DecisionEvents(AsyncCallbackHandler):
    """Keeps the decisions a guarded call reports as the ``ra_guard_decision`` custom event."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    async def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if name == DECISION_EVENT:
            self.decisions.append(Decision.model_validate(data))


async def test_a_judge_outside_langchain_is_counted_in_the_decision_event(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "Lyon. score=1", "Paris, the capital. score=5", "Nice. score=2")
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")  # an HTTP judge, no LangChain call
    events = _DecisionEvents()
    async with httpx.AsyncClient() as client:
        guarded = GuardedRunnable(chat_openai(stub, temperature=0.8, http_async_client=client), guard, n=3)
        with get_usage_metadata_callback() as handler:
            await guarded.ainvoke("Capital of France?", {"callbacks": [events]})
    await guard.aclose()

    (decision,) = events.decisions
    assert decision.judge_calls >= 1 and decision.judge_usage.total_tokens > 0
    # the usage handler saw the candidates only; the judge's tokens are in the decision
    sampled = decision.sampling_usage
    assert _counted(handler.usage_metadata) == (sampled.prompt_tokens, sampled.completion_tokens)


async def test_usage_callback_counts_every_candidate_of_an_agent_turn(stub: OpenAIStubServer) -> None:
    from langchain.agents import create_agent

    answer_samplers(stub, "Lyon. score=1", "Paris, the capital. score=5", "Nice. score=2")
    decisions: list[Decision] = []
    async with httpx.AsyncClient() as client:
        guard = Guard(
            policies=[POLICY], judge=ChatModelJudge(chat_openai(stub, temperature=0, http_async_client=client))
        )
        middleware = RaGuardMiddleware(guard, n=3, on_decision=decisions.append)
        agent = create_agent(chat_openai(stub, temperature=0.8, http_async_client=client), middleware=[middleware])
        with get_usage_metadata_callback() as handler:
            result = await agent.ainvoke({"messages": [{"role": "user", "content": "Capital of France?"}]})
        await guard.aclose()

    (decision,) = decisions
    final = result["messages"][-1]
    _check(stub, decision, final, _counted(handler.usage_metadata))
