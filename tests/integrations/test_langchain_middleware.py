"""RaGuardMiddleware in a real ``create_agent`` agent with a tool, driven by ChatOpenAI on the loopback server."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from ra_guard import Decision, Guard, Policy, RetryWithFeedback
from ra_guard.integrations.langchain import ChatModelJudge, RaGuardMiddleware, summary_of
from tests.integrations.conftest import agent_handler, chat_openai
from tests.support.openai_server import Fault, OpenAIStubServer, RecordedRequest

pytestmark = pytest.mark.usefixtures("chat_clients")  # each ChatOpenAI gets an async client of its own

POLICY = Policy(name="helpful", principle="Answer the user's question using the tool's result.")
QUESTION = {"messages": [{"role": "user", "content": "What is the weather in Paris?"}]}


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"Sunny in {city}, 21C"


def _agent(stub: OpenAIStubServer, guard: Guard, **middleware: Any) -> Any:
    return create_agent(chat_openai(stub), tools=[get_weather], middleware=[RaGuardMiddleware(guard, **middleware)])


def _final(result: dict[str, Any]) -> AIMessage:
    message = result["messages"][-1]
    assert isinstance(message, AIMessage)
    return message


async def test_async_agent_returns_the_best_answer_and_passes_tool_turns(stub: OpenAIStubServer) -> None:
    stub.sampler_latency = 0.05  # long enough for the three calls to overlap
    stub.handler = agent_handler(["Sunny. score=2", "It is sunny and 21C in Paris. score=5", "Warm. score=3"])
    guard = Guard(policies=[POLICY], judge=ChatModelJudge(chat_openai(stub, temperature=0)))

    result = await _agent(stub, guard, n=3).ainvoke(QUESTION)

    final = _final(result)
    assert final.content == "It is sunny and 21C in Paris. score=5"
    summary = summary_of(final)
    assert summary is not None and summary.passed and summary.scores == {"helpful": 5.0}
    assert summary.candidates == 3
    # The tool ran once, on the first candidate's call; that turn was not judged.
    assert [m.content for m in result["messages"] if isinstance(m, ToolMessage)] == ["Sunny in Paris, 21C"]
    kinds = [r.kind for r in stub.requests]
    assert kinds.count("judge") == 1
    assert kinds.count("sampler") == 6  # 3 for the tool turn, 3 for the answer
    assert stub.max_in_flight["sampler"] == 3


def test_sync_agent_uses_wrap_model_call(stub: OpenAIStubServer) -> None:
    stub.handler = agent_handler(["Cloudy. score=1", "Sunny, 21C. score=4"])
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")

    decisions: list[Decision] = []
    result = _agent(stub, guard, n=2, on_decision=decisions.append).invoke(QUESTION)

    final = _final(result)
    assert final.content == "Sunny, 21C. score=4"
    # the two calls run concurrently, so which index holds which answer is not fixed
    decision = decisions[-1]
    assert decision.text == "Sunny, 21C. score=4" and final.response_metadata["ra_guard"]["scores"] == {"helpful": 4.0}
    assert {c.text for c in decision.candidates} == {"Cloudy. score=1", "Sunny, 21C. score=4"}
    assert final.response_metadata["finish_reason"] == "stop"  # the model's own metadata is kept


async def test_retries_with_the_judge_critique(stub: OpenAIStubServer) -> None:
    stub.handler = agent_handler(["Meh. score=2", "Sunny and 21C in Paris. score=5"])
    guard = Guard(
        policies=[Policy(name="helpful", principle=POLICY.principle, min_score=4)],
        judge=f"openai-compat:{stub.base_url}",
        strategy=RetryWithFeedback(max_attempts=3, n=1),
    )

    final = _final(await _agent(stub, guard).ainvoke(QUESTION))

    assert final.content == "Sunny and 21C in Paris. score=5"
    summary = summary_of(final)
    assert summary is not None and summary.attempts == 2
    retry = [r for r in stub.requests if r.kind == "sampler"][-1]
    assert retry.messages[-2] == {"role": "assistant", "content": "Meh. score=2"}
    assert "fell short" in retry.messages[-1]["content"] and "helpful" in retry.messages[-1]["content"]


async def test_judge_tool_calls_judges_tool_turns_too(stub: OpenAIStubServer) -> None:
    stub.handler = agent_handler(["Sunny. score=4"])
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")

    result = await _agent(stub, guard, n=2, judge_tool_calls=True).ainvoke(QUESTION)

    tool_turn = next(m for m in result["messages"] if isinstance(m, AIMessage) and m.tool_calls)
    assert summary_of(tool_turn) is not None
    judged = [r.judge_input for r in stub.requests if r.kind == "judge"]
    assert any("[tool call] get_weather" in text for j in judged if j for text in j["responses"].values())


@pytest.mark.parametrize("n", [1])
async def test_single_call_when_n_is_one(stub: OpenAIStubServer, n: int) -> None:
    stub.handler = agent_handler(["Sunny. score=4"])
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")

    final = _final(await _agent(stub, guard, n=n).ainvoke(QUESTION))

    assert final.content == "Sunny. score=4"
    assert [r.kind for r in stub.requests].count("sampler") == 2


def _after_tool(request: RecordedRequest) -> bool:
    return request.kind == "sampler" and any(m.get("role") == "tool" for m in request.messages)


async def test_a_failed_call_is_dropped_when_others_answer(stub: OpenAIStubServer, caplog: Any) -> None:
    stub.handler = agent_handler(["Sunny. score=4"])
    stub.script(Fault.error(500, retry_after=None), when=_after_tool)
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")
    decisions: list[Decision] = []

    with caplog.at_level("WARNING", logger="ra_guard"):
        final = _final(await _agent(stub, guard, n=3, on_decision=decisions.append).ainvoke(QUESTION))

    summary = summary_of(final)
    assert final.content == "Sunny. score=4" and summary is not None and summary.candidates == 2
    # not in silence: logged, and noted on the decision
    left_out = "1 of 3 model calls raised (OpenAIAPIError) and were left out"
    assert left_out in decisions[-1].notes
    assert any(left_out in record.getMessage() for record in caplog.records)


async def test_when_every_call_fails_the_model_error_surfaces(stub: OpenAIStubServer) -> None:
    stub.handler = agent_handler(["unused"])
    stub.script(Fault.error(500, retry_after=None), Fault.error(500, retry_after=None), when=_after_tool)
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")

    with pytest.raises(openai.InternalServerError):
        await _agent(stub, guard, n=2).ainvoke(QUESTION)


async def test_probe_first_spends_one_call_on_tool_turns(stub: OpenAIStubServer) -> None:
    stub.handler = agent_handler(["Sunny. score=2", "Sunny, 21C in Paris. score=5", "Warm. score=3"])
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")

    final = _final(await _agent(stub, guard, n=3, probe_first=True).ainvoke(QUESTION))

    assert final.content == "Sunny, 21C in Paris. score=5"
    assert [r.kind for r in stub.requests].count("sampler") == 4  # 1 for the tool turn, 3 for the answer


async def test_the_middleware_runs_on_a_bare_model_request(stub: OpenAIStubServer) -> None:
    """Outside a running agent (a request built by hand, as in a middleware unit test) there is no runtime."""
    from langchain.agents.middleware import ModelRequest, ModelResponse
    from langchain_core.messages import HumanMessage

    stub.handler = agent_handler(["Sunny. score=4", "Warm. score=2"])
    model = chat_openai(stub)

    async def handler(request: ModelRequest[Any]) -> ModelResponse[Any]:
        return ModelResponse(result=[await model.ainvoke(request.messages)])

    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")
    request: ModelRequest[Any] = ModelRequest(model=model, messages=[HumanMessage("Weather in Paris?")])
    response = await RaGuardMiddleware(guard, n=2).awrap_model_call(request, handler)

    assert isinstance(response, ModelResponse)
    (message,) = response.result
    assert message.content == "Sunny. score=4" and summary_of(message) is not None


async def test_a_retry_round_that_fails_keeps_the_best_answer_so_far(stub: OpenAIStubServer) -> None:
    stub.handler = agent_handler(["Meh, sunny. score=2"])
    stub.script(Fault.error(500, retry_after=None), when=lambda r: _after_tool(r) and len(r.messages) > 4)
    guard = Guard(
        policies=[Policy(name="helpful", principle=POLICY.principle, min_score=4)],
        judge=f"openai-compat:{stub.base_url}",
        strategy=RetryWithFeedback(max_attempts=2, n=1),
    )
    decisions: list[Decision] = []

    final = _final(await _agent(stub, guard, on_decision=decisions.append).ainvoke(QUESTION))

    assert final.content == "Meh, sunny. score=2"
    assert decisions[-1].attempts == 2 and not decisions[-1].passed
    assert any("raised (OpenAIAPIError)" in note for note in decisions[-1].notes)
