"""Streaming a guarded ``create_agent`` agent: the user's token stream shows the winner, never the candidates.

ChatOpenAI streams from the loopback server (it streams whenever a streaming
callback handler is attached, as LangGraph's ``messages`` mode and
``astream_events`` attach one).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk

from ra_guard import Decision, Guard, Policy
from ra_guard.integrations.langchain import (
    CANDIDATE_TAG,
    DECISION_EVENT,
    ChatModelJudge,
    RaGuardMiddleware,
    summary_of,
)
from tests.integrations.conftest import Answers, chat_openai
from tests.support.openai_server import OpenAIStubServer, RecordedRequest

pytestmark = pytest.mark.usefixtures("chat_clients")  # each ChatOpenAI gets an async client of its own

POLICY = Policy(name="helpful", principle="Answer the question.")
QUESTION = {"messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
TEXTS = ["Cloudy, maybe. score=2", "Sunny and 21C in Paris today. score=5", "Warm-ish. score=3"]


def _texts(stub: OpenAIStubServer) -> None:
    answers = Answers(TEXTS)

    def handle(request: RecordedRequest) -> Any:
        return answers.next() if request.kind == "sampler" else None

    stub.handler = handle


def _agent(stub: OpenAIStubServer, **middleware: Any) -> Any:
    # The judge is a LangChain model too: its tokens must stay out of the user's stream as well.
    guard = Guard(policies=[POLICY], judge=ChatModelJudge(chat_openai(stub, temperature=0)))
    return create_agent(chat_openai(stub), middleware=[RaGuardMiddleware(guard, n=3, **middleware)])


async def test_messages_mode_streams_the_winner_only_and_custom_mode_gets_the_summary(stub: OpenAIStubServer) -> None:
    _texts(stub)
    messages: list[Any] = []
    custom: list[Any] = []

    async for mode, item in _agent(stub).astream(QUESTION, stream_mode=["messages", "custom"]):
        (messages if mode == "messages" else custom).append(item)

    assert sum(1 for r in stub.requests if r.kind == "sampler" and r.body.get("stream")) == 3  # candidates did stream
    streamed = [message for message, _ in messages if isinstance(message, (AIMessage, AIMessageChunk))]
    text = "".join(str(m.content) for m in streamed)
    assert text == "Sunny and 21C in Paris today. score=5"
    assert not any(t in text for t in ("Cloudy", "Warm-ish", "<think>"))
    (event,) = custom
    summary = event[DECISION_EVENT]
    assert summary["scores"] == {"helpful": 5.0} and summary["candidates"] == 3
    assert summary_of(streamed[-1]) is not None


def test_sync_stream_keeps_candidates_out_too(stub: OpenAIStubServer) -> None:
    _texts(stub)

    chunks = list(_agent(stub).stream(QUESTION, stream_mode=["messages", "custom"]))

    text = "".join(str(item[0].content) for mode, item in chunks if mode == "messages")
    assert text == "Sunny and 21C in Paris today. score=5"
    assert [mode for mode, _ in chunks].count("custom") == 1


async def test_astream_events_marks_candidate_tokens_and_carries_the_decision(stub: OpenAIStubServer) -> None:
    _texts(stub)
    agent = _agent(stub)

    events = [e async for e in agent.astream_events(QUESTION, version="v2")]

    tokens = [e for e in events if e["event"] == "on_chat_model_stream"]
    assert tokens and all("ra_guard" in e["tags"] for e in tokens)
    assert sum(1 for e in tokens if CANDIDATE_TAG in e["tags"]) > 3  # three candidates, some chunks each
    (decided,) = [e for e in events if e["event"] == "on_custom_event" and e["name"] == DECISION_EVENT]
    decision = Decision.model_validate(decided["data"])
    assert decision.text == "Sunny and 21C in Paris today. score=5" and len(decision.candidates) == 3

    _texts(stub)
    filtered = [e async for e in agent.astream_events(QUESTION, version="v2", exclude_tags=["ra_guard"])]
    assert not [e for e in filtered if e["event"] == "on_chat_model_stream"]
    final = [e for e in filtered if e["event"] == "on_chain_end" and e["name"] == "LangGraph"]
    assert final[-1]["data"]["output"]["messages"][-1].content == "Sunny and 21C in Paris today. score=5"
