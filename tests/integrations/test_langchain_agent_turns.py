"""RaGuardMiddleware on the turns of a real ``create_agent`` agent: tool turns, structured output, what is stored.

ChatOpenAI talks to the loopback server; traces and metrics go to in-memory OpenTelemetry pipelines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.structured_output import ProviderStrategy, ToolStrategy
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

from ra_guard import BestOfN, Decision, Guard, Policy
from ra_guard.audit import AuditLog, read_audit_log
from ra_guard.integrations.langchain import RaGuardMiddleware, summary_of
from tests.integrations.conftest import agent_handler, chat_openai, tool_call_body
from tests.observability.conftest import Pipeline
from tests.support.openai_server import Fault, OpenAIStubServer, RecordedRequest

pytestmark = pytest.mark.usefixtures("chat_clients")  # each ChatOpenAI gets an async client of its own

POLICY = Policy(name="helpful", principle="Answer the user's question using the tool's result.")
QUESTION = {"messages": [{"role": "user", "content": "What is the weather in Paris?"}]}


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"Sunny in {city}, 21C"


class Weather(BaseModel):
    """The weather report."""

    city: str
    summary: str


@pytest.fixture
def otel() -> Iterator[Pipeline]:
    pipeline = Pipeline()
    yield pipeline
    pipeline.shutdown()


def _roots(otel: Pipeline) -> list[Any]:
    return [s for s in otel.spans if s.name.startswith("invoke_workflow")]


async def test_a_tool_turn_is_no_error_and_its_tokens_are_counted(stub: OpenAIStubServer, otel: Pipeline) -> None:
    stub.handler = agent_handler(["Sunny, 21C. score=4"])
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}", tracer=otel.tracer())
    decisions: list[Decision] = []
    agent = create_agent(
        chat_openai(stub), tools=[get_weather], middleware=[RaGuardMiddleware(guard, n=3, on_decision=decisions.append)]
    )

    result = await agent.ainvoke(QUESTION)

    assert result["messages"][-1].content == "Sunny, 21C. score=4"
    tool_turn, answer = _roots(otel)
    assert tool_turn.status.status_code != StatusCode.ERROR and answer.status.status_code != StatusCode.ERROR
    assert "error.type" not in (tool_turn.attributes or {})
    assert tool_turn.attributes is not None and tool_turn.attributes["ra_guard.decision.judge_calls"] == 0
    # The tool turn's three calls: 5 prompt and 3 completion tokens each (the stub's tool-call body).
    sampling = [s for s in otel.spans if s.name.startswith("chat ") and s.parent == tool_turn.context]
    assert [(s.attributes or {}).get("gen_ai.usage.input_tokens") for s in sampling] == [15]
    assert [(s.attributes or {}).get("gen_ai.usage.output_tokens") for s in sampling] == [9]
    outcomes = [attrs["ra_guard.outcome"] for attrs, _ in otel.metrics()["ra_guard.decisions"]]
    # The tool turn went out without a verdict: counted apart, never as passed (nor as an error).
    assert sorted(outcomes) == ["passed", "unjudged"]
    assert tool_turn.attributes["ra_guard.decision.outcome"] == "unjudged"
    sampled = sum(
        point.sum  # type: ignore[attr-defined]
        for attrs, point in otel.metrics()["gen_ai.client.token.usage"]
        if attrs["ra_guard.call"] == "sampling"
    )
    assert sampled == 24 + decisions[1].sampling_usage.total_tokens
    assert [d.judge_calls for d in decisions] == [0, 1]
    assert any("tool-calling turn" in note for note in decisions[0].notes)
    # The tool-calling candidate went back to the agent as it was: no summary, no error.
    tool_message = next(m for m in result["messages"] if isinstance(m, AIMessage) and m.tool_calls)
    assert summary_of(tool_message) is None


def test_a_tool_turn_through_the_sync_api_is_no_error_either(stub: OpenAIStubServer, otel: Pipeline) -> None:
    stub.handler = agent_handler(["Sunny, 21C. score=4"])
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}", tracer=otel.tracer())
    agent = create_agent(chat_openai(stub), tools=[get_weather], middleware=[RaGuardMiddleware(guard, n=2)])

    assert agent.invoke(QUESTION)["messages"][-1].content == "Sunny, 21C. score=4"

    roots = _roots(otel)
    assert len(roots) == 2 and all(r.status.status_code != StatusCode.ERROR for r in roots)
    assert [(r.attributes or {}).get("ra_guard.decision.judge_calls") for r in roots] == [0, 1]


def _structured_handler(answers: list[dict[str, str]]) -> Any:
    """The schema's tool call (ToolStrategy), or the schema as JSON text (ProviderStrategy), in turn."""
    turn = iter(range(10_000))

    def handle(request: RecordedRequest) -> Any:
        if request.kind != "sampler":
            return None
        answer = answers[next(turn) % len(answers)]
        if request.body.get("tools"):
            return tool_call_body("Weather", answer, call_id=f"call_{answer['summary'][:5]}")
        return json.dumps(answer)

    return handle


ANSWERS = [
    {"city": "Paris", "summary": "Nice. score=2"},
    {"city": "Paris", "summary": "Sunny and 21C all afternoon. score=5"},
    {"city": "Paris", "summary": "Fine. score=3"},
]


@pytest.mark.parametrize("strategy", [ToolStrategy, ProviderStrategy])
async def test_structured_answers_are_judged_as_json(stub: OpenAIStubServer, strategy: Any) -> None:
    stub.handler = _structured_handler(ANSWERS)
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")
    agent = create_agent(chat_openai(stub), response_format=strategy(Weather), middleware=[RaGuardMiddleware(guard)])

    result = await agent.ainvoke(QUESTION, {"configurable": {}})

    assert result["structured_response"] == Weather(city="Paris", summary="Sunny and 21C all afternoon. score=5")
    (judged,) = [r.judge_input for r in stub.requests if r.kind == "judge"]
    assert judged is not None
    assert sorted(json.loads(text)["summary"] for text in judged["responses"].values()) == sorted(
        a["summary"] for a in ANSWERS
    )
    chosen = next(m for m in result["messages"] if isinstance(m, AIMessage) and summary_of(m) is not None)
    summary = summary_of(chosen)
    assert summary is not None and summary.scores == {"helpful": 5.0}


async def test_structured_answer_after_a_tool_turn(stub: OpenAIStubServer) -> None:
    """Ordinary tool turns pass through unjudged; the schema's tool call is the answer and is judged."""
    answers = iter(ANSWERS * 2)

    def handle(request: RecordedRequest) -> Any:
        if request.kind != "sampler":
            return None
        if not any(m.get("role") == "tool" for m in request.messages):
            return tool_call_body("get_weather", {"city": "Paris"})
        return tool_call_body("Weather", next(answers), call_id="call_w")

    stub.handler = handle
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")
    agent = create_agent(
        chat_openai(stub),
        tools=[get_weather],
        response_format=ToolStrategy(Weather),
        middleware=[RaGuardMiddleware(guard, n=3)],
    )

    result = await agent.ainvoke(QUESTION)

    assert result["structured_response"].summary == "Sunny and 21C all afternoon. score=5"
    assert [r.kind for r in stub.requests].count("judge") == 1  # the final answer only
    judged = next(r.judge_input for r in stub.requests if r.kind == "judge")
    assert judged is not None and all("get_weather" not in t for t in judged["responses"].values())


async def test_messages_carry_a_compact_summary_and_the_whole_decision_goes_to_the_audit_log(
    stub: OpenAIStubServer, tmp_path: Any, otel: Pipeline
) -> None:
    """5 turns at N=4 with a checkpointer: what the conversation stores stays small."""
    stub.handler = agent_handler(
        ["Sunny and warm today in Paris, 21C. score=4", "It is sunny. score=3", "Sunny, 21C. score=5", "Warm. score=2"]
    )
    audit = AuditLog(tmp_path / "audit.jsonl")
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}", audit_log=audit, tracer=otel.tracer())
    agent = create_agent(chat_openai(stub), middleware=[RaGuardMiddleware(guard, n=4)], checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t1"}}

    for turn in range(5):
        result = await agent.ainvoke({"messages": [{"role": "user", "content": f"Weather, take {turn}?"}]}, config)
    audit.close()

    answers = [m for m in result["messages"] if isinstance(m, AIMessage)]
    assert len(answers) == 5
    ours = sum(len(json.dumps(m.response_metadata["ra_guard"])) for m in answers)
    metadata = sum(len(json.dumps(m.response_metadata)) for m in answers)
    content = sum(len(str(m.content)) for m in answers)
    # the figures for the report: the summary's size, the whole metadata's (ChatOpenAI's own included)
    print(f"ra_guard: {ours}, response_metadata: {metadata} characters for {content} of content")
    assert ours < 300 * len(answers)
    for message in answers:
        summary = summary_of(message)
        assert summary is not None and summary.candidates == 4 and set(summary.scores) == {"helpful"}
        assert summary.trace_id is not None and len(summary.trace_id) == 32
        assert "candidates" not in json.dumps(message.response_metadata["ra_guard"]).replace('"candidates": 4', "")
    ids = {summary.decision_id for summary in map(summary_of, answers) if summary is not None}
    assert len(ids) == 5 and ids <= {r["decision_id"] for r in read_audit_log(tmp_path / "audit.jsonl")}
    traced = {(s.attributes or {}).get("ra_guard.decision.id") for s in _roots(otel)}
    assert ids <= traced


def _reject_temperature(request: RecordedRequest) -> Any:
    """Answer like OpenAI's reasoning models: HTTP 400 to a temperature other than the default."""
    if request.kind == "sampler" and request.body.get("temperature") not in (None, 1):
        return Fault.error(400, retry_after=None, message="Unsupported value: 'temperature' does not support 0.8")
    return "Sunny. score=4" if request.kind == "sampler" else None


@pytest.mark.parametrize("model", ["o3-mini", "gpt-5", "o4-mini"])
async def test_no_temperature_is_sent_to_reasoning_models(stub: OpenAIStubServer, model: str) -> None:
    stub.handler = _reject_temperature
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}", strategy=BestOfN(n=2, temperature=0.8))
    decisions: list[Decision] = []
    agent = create_agent(
        chat_openai(stub, model=model), middleware=[RaGuardMiddleware(guard, on_decision=decisions.append)]
    )

    result = await agent.ainvoke(QUESTION)

    assert result["messages"][-1].content == "Sunny. score=4"
    assert all("temperature" not in r.body for r in stub.requests if r.kind == "sampler")
    assert any(f"not sent: {model} takes only its default" in note for note in decisions[0].notes)


async def test_other_models_get_the_strategy_temperature(stub: OpenAIStubServer) -> None:
    stub.handler = agent_handler(["Sunny. score=4"])
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}", strategy=BestOfN(n=2, temperature=0.8))
    agent = create_agent(chat_openai(stub, model="gpt-4o-mini"), middleware=[RaGuardMiddleware(guard)])

    await agent.ainvoke(QUESTION)

    assert [r.body.get("temperature") for r in stub.requests if r.kind == "sampler"] == [0.8, 0.8]
