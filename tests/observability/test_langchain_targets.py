"""LangChain agent sampling spans name the agent's chat model and its provider (GenAI conventions)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from langchain.agents import create_agent

from ra_guard import Guard, Policy
from ra_guard.integrations.langchain import RaGuardMiddleware
from tests.integrations.conftest import agent_handler, chat_openai, closing_chat_clients
from tests.observability.conftest import Pipeline
from tests.support.openai_server import OpenAIStubServer

POLICY = Policy(name="helpful", principle="Answer the question.")


@pytest.fixture
def stub() -> Iterator[OpenAIStubServer]:
    with OpenAIStubServer(models=["ra-stub"]) as server:
        yield server


@pytest.fixture(autouse=True)
async def chat_clients() -> AsyncIterator[None]:
    """The ChatOpenAI models of a test get async clients of their own, closed on its loop (see chat_openai)."""
    async with closing_chat_clients():
        yield


async def test_agent_sampling_spans_name_the_chat_model(stub: OpenAIStubServer, otel: Pipeline) -> None:
    stub.handler = agent_handler(["Paris. score=4"])
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}", tracer=otel.tracer())
    agent = create_agent(chat_openai(stub), tools=[], middleware=[RaGuardMiddleware(guard, n=2)])

    await agent.ainvoke({"messages": [{"role": "user", "content": "Capital of France?"}]})
    await guard.aclose()

    (sampling,) = [s for s in otel.spans if (s.attributes or {}).get("openinference.span.kind") == "LLM"]
    attributes = dict(sampling.attributes or {})
    assert sampling.name == "chat ra-stub"
    assert attributes["gen_ai.request.model"] == "ra-stub"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1", stub.port)
