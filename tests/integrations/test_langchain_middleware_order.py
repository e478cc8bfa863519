"""RaGuardMiddleware beside LangChain's ModelRetryMiddleware and ModelCallLimitMiddleware, in each order.

The first middleware in ``create_agent(middleware=[...])`` is the outermost.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelCallLimitMiddleware, ModelRetryMiddleware
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from ra_guard import Decision, Guard, Policy
from ra_guard.integrations.langchain import RaGuardMiddleware, summary_of
from tests.integrations.conftest import Answers, agent_handler, chat_openai, tool_call_body
from tests.support.openai_server import Fault, OpenAIStubServer, RecordedRequest

pytestmark = pytest.mark.usefixtures("chat_clients")  # each ChatOpenAI gets an async client of its own

POLICY = Policy(name="helpful", principle="Answer the question.")
QUESTION = {"messages": [{"role": "user", "content": "What is the weather in Paris?"}]}


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"Sunny in {city}, 21C"


def _guard(stub: OpenAIStubServer) -> Guard:
    return Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")


def _texts(stub: OpenAIStubServer, *texts: str) -> None:
    answers = Answers(texts)
    stub.handler = lambda request: answers.next() if request.kind == "sampler" else None


def _retry(**options: Any) -> ModelRetryMiddleware[Any, Any]:
    return ModelRetryMiddleware(initial_delay=0.0, jitter=False, **options)


async def test_retry_inside_ra_guard_leaves_error_messages_out_of_the_judging(stub: OpenAIStubServer) -> None:
    """Retry per candidate call; a call it gives up on (``on_failure="continue"``) is not a candidate."""
    # Answers without a score marker score 3 with the stub's judge, so were the error message judged
    # (also unmarked, 3) it could win over the answers marked score=2.
    _texts(stub, "Sunny. score=2", "Sunny and warm. score=2")
    stub.script(Fault.error(500, retry_after=None), when=lambda r: r.kind == "sampler")
    decisions: list[Decision] = []
    ra_guard = RaGuardMiddleware(_guard(stub), n=3, on_decision=decisions.append)
    agent = create_agent(chat_openai(stub), middleware=[ra_guard, _retry(max_retries=0, on_failure="continue")])

    result = await agent.ainvoke(QUESTION)

    final = result["messages"][-1]
    assert final.content in ("Sunny. score=2", "Sunny and warm. score=2")
    (judged,) = [r.judge_input for r in stub.requests if r.kind == "judge"]
    assert judged is not None
    assert sorted(judged["responses"].values()) == ["Sunny and warm. score=2", "Sunny. score=2"]
    assert any("middleware error messages" in note for note in decisions[0].notes)
    summary = summary_of(final)
    assert summary is not None and summary.candidates == 2


async def test_retry_inside_ra_guard_passes_its_error_message_on_when_every_call_failed(stub: OpenAIStubServer) -> None:
    stub.script(*[Fault.error(500, retry_after=None)] * 2, when=lambda r: r.kind == "sampler")
    ra_guard = RaGuardMiddleware(_guard(stub), n=2)
    agent = create_agent(chat_openai(stub), middleware=[ra_guard, _retry(max_retries=0, on_failure="continue")])

    result = await agent.ainvoke(QUESTION)

    final = result["messages"][-1]
    assert isinstance(final, AIMessage) and str(final.content).startswith("Model call failed after 1 attempt")
    assert summary_of(final) is None  # not judged
    assert not [r for r in stub.requests if r.kind == "judge"]


async def test_retry_outside_ra_guard_retries_the_whole_decision(stub: OpenAIStubServer) -> None:
    """Every candidate call failing raises the model's error, and the retry runs the decision again."""
    _texts(stub, "Sunny. score=4", "Warm. score=3")
    stub.script(*[Fault.error(500, retry_after=None)] * 2, when=lambda r: r.kind == "sampler")
    agent = create_agent(chat_openai(stub), middleware=[_retry(max_retries=1), RaGuardMiddleware(_guard(stub), n=2)])

    result = await agent.ainvoke(QUESTION)

    assert result["messages"][-1].content == "Sunny. score=4"
    assert [r.kind for r in stub.requests].count("sampler") == 4  # 2 failed, then 2 answered
    assert [r.kind for r in stub.requests].count("judge") == 1


def _always_calls_tools(request: RecordedRequest) -> Any:
    return tool_call_body("get_weather", {"city": "Paris"}) if request.kind == "sampler" else None


async def test_model_call_limit_counts_agent_turns_whatever_the_order(stub: OpenAIStubServer) -> None:
    """``run_limit=2`` allows two model turns: with ``n=3`` that is 6 model calls, in either order."""
    for outside in (True, False):
        stub.requests.clear()
        stub.handler = _always_calls_tools
        limit = ModelCallLimitMiddleware(run_limit=2, exit_behavior="end")
        ra_guard = RaGuardMiddleware(_guard(stub), n=3)
        middleware = [limit, ra_guard] if outside else [ra_guard, limit]
        agent = create_agent(chat_openai(stub), tools=[get_weather], middleware=middleware)

        result = await agent.ainvoke(QUESTION)

        assert [r.kind for r in stub.requests].count("sampler") == 6, outside
        assert "run limit (2/2)" in str(result["messages"][-1].content)


async def test_a_candidate_budget_bounds_the_calls_of_each_turn(stub: OpenAIStubServer) -> None:
    """What caps model calls per turn is the guard's budget (or probe_first for tool turns)."""
    from ra_guard import Budget

    stub.handler = agent_handler(["Sunny. score=4"])
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}", budget=Budget(max_candidates=2))
    agent = create_agent(
        chat_openai(stub),
        tools=[get_weather],
        middleware=[ModelCallLimitMiddleware(run_limit=2), RaGuardMiddleware(guard, n=4)],
    )

    await agent.ainvoke(QUESTION)

    assert [r.kind for r in stub.requests].count("sampler") == 4  # 2 turns, 2 calls each


async def test_an_interrupt_in_one_candidate_call_reaches_the_agent(stub: OpenAIStubServer) -> None:
    """A middleware inside ra-guard that interrupts (human in the loop) is not a failed call to drop."""
    from langchain.agents.middleware import AgentMiddleware
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import interrupt

    class AskFirst(AgentMiddleware[Any, Any, Any]):
        calls = 0

        async def awrap_model_call(self, request: Any, handler: Any) -> Any:
            AskFirst.calls += 1
            if AskFirst.calls == 1:
                interrupt("approve this model call?")
            return await handler(request)

    _texts(stub, "Sunny. score=4")
    agent = create_agent(
        chat_openai(stub), middleware=[RaGuardMiddleware(_guard(stub), n=3), AskFirst()], checkpointer=InMemorySaver()
    )

    result = await agent.ainvoke(QUESTION, {"configurable": {"thread_id": "t"}})

    assert [i.value for i in result["__interrupt__"]] == ["approve this model call?"]
    assert not [r for r in stub.requests if r.kind == "judge"]


async def test_a_retry_round_of_error_messages_keeps_the_best_answer_so_far(stub: OpenAIStubServer) -> None:
    from ra_guard import RetryWithFeedback

    _texts(stub, "Meh. score=2")
    first = {"done": False}

    def fail_after_the_first(request: RecordedRequest) -> bool:
        if request.kind != "sampler":
            return False
        seen, first["done"] = first["done"], True
        return seen

    stub.script(Fault.error(500, retry_after=None), when=fail_after_the_first)
    guard = Guard(
        policies=[Policy(name="helpful", principle="Answer the question.", min_score=4)],
        judge=f"openai-compat:{stub.base_url}",
        strategy=RetryWithFeedback(max_attempts=2, n=1),
    )
    agent = create_agent(chat_openai(stub), middleware=[RaGuardMiddleware(guard), _retry(max_retries=0)])

    final = (await agent.ainvoke(QUESTION))["messages"][-1]

    assert final.content == "Meh. score=2"
    summary = summary_of(final)
    assert summary is not None and summary.attempts == 2 and not summary.passed
