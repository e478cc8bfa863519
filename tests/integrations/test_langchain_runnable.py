"""GuardedRunnable around real LCEL chains (prompt template | ChatOpenAI | output parser) on the loopback server."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from ra_guard import Decision, Guard, Policy, RetryWithFeedback
from ra_guard.integrations.langchain import GuardedRunnable, summary_of
from tests.integrations.conftest import Answers, chat_openai
from tests.support.openai_server import OpenAIStubServer, RecordedRequest

pytestmark = pytest.mark.usefixtures("chat_clients")  # each ChatOpenAI gets an async client of its own

POLICY = Policy(name="concise", principle="Answer in as few words as the question allows.", min_score=4)
PROMPT = ChatPromptTemplate.from_messages([("system", "You are terse."), ("user", "Capital of {country}?")])


def _answers(stub: OpenAIStubServer, *texts: str) -> None:
    # One cycle per conversation (keyed by its first user turn), so that decisions made side by
    # side each get the texts in order, whichever of their requests reaches the server first.
    cycles: dict[str, Answers] = {}

    def handle(request: RecordedRequest) -> Any:
        if request.kind != "sampler":
            return None
        first = next((str(m.get("content")) for m in request.messages if m.get("role") == "user"), "")
        return cycles.setdefault(first, Answers(texts)).next()

    stub.handler = handle


def _guard(stub: OpenAIStubServer, **kwargs: Any) -> Guard:
    return Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}", **kwargs)


class Recorder(BaseCallbackHandler):
    """Records chain runs, LLM runs (with their tags) and custom events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.llm_tags: list[list[str]] = []
        self.chains: list[str] = []

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append((name, data))

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.llm_tags.append(list(kwargs.get("tags") or []))

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.chains.append(str(kwargs.get("name")))


def test_invoke_chain_with_prompt_and_parser_judges_the_formatted_prompt(stub: OpenAIStubServer) -> None:
    _answers(stub, "Paris is the capital of France. score=2", "Paris. score=5", "It's Paris. score=3")
    recorder = Recorder()
    chain = GuardedRunnable(PROMPT | chat_openai(stub) | StrOutputParser(), _guard(stub), n=3)

    out = chain.invoke({"country": "France"}, {"callbacks": [recorder], "tags": ["checkout"]})

    assert out == "Paris. score=5"
    (judge_input,) = [r.judge_input for r in stub.requests if r.kind == "judge"]
    assert judge_input is not None
    assert judge_input["prompt"] == "[system]\nYou are terse.\n\n[user]\nCapital of France?"
    assert len(recorder.llm_tags) == 3 and all(
        "checkout" in tags for tags in recorder.llm_tags
    )  # config passes through
    # candidates stay out of a LangGraph ``messages`` stream (GuardedRunnable inside a graph node)
    assert all({"nostream", "ra_guard:candidate"} <= set(tags) for tags in recorder.llm_tags)
    assert recorder.chains[0] == "GuardedRunnableSequence"
    ((name, data),) = recorder.events
    assert name == "ra_guard_decision" and Decision.model_validate(data).text == "Paris. score=5"


async def test_ainvoke_chat_model_returns_message_with_decision(stub: OpenAIStubServer) -> None:
    _answers(stub, "Rome. score=5", "The capital of Italy is Rome. score=3")
    guard = _guard(stub)

    reply = await GuardedRunnable(chat_openai(stub), guard, n=2).ainvoke("Capital of Italy?")

    assert isinstance(reply, AIMessage) and reply.content == "Rome. score=5"
    summary = summary_of(reply)
    assert summary is not None and summary.passed and summary.scores == {"concise": 5.0}
    await guard.aclose()


async def test_json_output_parser_and_with_decision(stub: OpenAIStubServer) -> None:
    _answers(stub, '{"city": "Paris", "note": "score=2"}', '{"city": "Paris", "note": "score=4"}')
    guard = _guard(stub)
    chain = GuardedRunnable(PROMPT | chat_openai(stub) | JsonOutputParser(), guard, n=2, with_decision=True)

    result = await chain.ainvoke({"country": "France"})

    assert result["output"] == {"city": "Paris", "note": "score=4"}
    decision = result["decision"]
    assert isinstance(decision, Decision) and len(decision.candidates) == 2
    # The two chain runs are concurrent, so either may be candidate 0: the winner is the score=4 answer.
    assert json.loads(decision.chosen.text) == {"city": "Paris", "note": "score=4"}
    await guard.aclose()


async def test_abatch_and_batch(stub: OpenAIStubServer) -> None:
    _answers(stub, "A. score=5", "B. score=1")
    guard = _guard(stub)
    chain = GuardedRunnable(PROMPT | chat_openai(stub) | StrOutputParser(), guard, n=2)

    outs = await chain.abatch([{"country": "France"}, {"country": "Spain"}])
    assert outs == ["A. score=5", "A. score=5"]
    assert chain.batch([{"country": "Peru"}]) == ["A. score=5"]
    await guard.aclose()


async def test_astream_buffers_then_streams_the_chosen_answer(stub: OpenAIStubServer) -> None:
    _answers(stub, "Lima is the capital. score=2", "Lima, in Peru. score=5")
    guard = _guard(stub)

    chunks = [c async for c in GuardedRunnable(chat_openai(stub), guard, n=2).astream("Capital of Peru?")]

    assert all(isinstance(c, AIMessageChunk) for c in chunks) and len(chunks) > 1
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    assert whole.content == "Lima, in Peru. score=5"
    assert summary_of(whole) is not None
    await guard.aclose()


def test_stream_strings(stub: OpenAIStubServer) -> None:
    _answers(stub, "Bern. score=5", "Zurich is not it; Bern. score=2")
    chain = GuardedRunnable(PROMPT | chat_openai(stub) | StrOutputParser(), _guard(stub), n=2)

    assert "".join(chain.stream({"country": "Switzerland"})) == "Bern. score=5"


async def test_retry_with_feedback_appends_the_critique_to_the_formatted_prompt(stub: OpenAIStubServer) -> None:
    _answers(stub, "Paris, a city of art and light. score=2", "Paris. score=5")
    guard = _guard(stub, strategy=RetryWithFeedback(max_attempts=2, n=1))

    out = await GuardedRunnable(PROMPT | chat_openai(stub) | StrOutputParser(), guard).ainvoke({"country": "France"})

    assert out == "Paris. score=5"
    retry = [r for r in stub.requests if r.kind == "sampler"][-1]
    assert [m["role"] for m in retry.messages] == ["system", "user", "assistant", "user"]
    assert "concise" in retry.messages[-1]["content"]
    await guard.aclose()


class AsyncRecorder(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.names: list[str] = []

    async def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.names.append(name)


async def test_async_callbacks_receive_the_decision(stub: OpenAIStubServer) -> None:
    _answers(stub, "Ok. score=4")
    guard = _guard(stub)
    recorder = AsyncRecorder()

    await GuardedRunnable(chat_openai(stub), guard, n=1).ainvoke("Hi", {"callbacks": [recorder]})

    assert recorder.names == ["ra_guard_decision"]
    await guard.aclose()
