"""ChatModelSampler and ChatModelJudge with a real ChatOpenAI on the loopback server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ra_guard.integrations.langchain as lc
from ra_guard import ChatMessage, Guard, Policy, SamplerError
from ra_guard.integrations.langchain import ChatModelJudge, ChatModelSampler
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.format import render_messages
from tests.integrations.conftest import chat_openai, closing_chat_clients
from tests.support.openai_server import Completion, OpenAIStubServer

pytestmark = pytest.mark.usefixtures("chat_clients")  # each ChatOpenAI gets an async client of its own

MESSAGES: list[ChatMessage] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Capital of France?"},
]


def test_public_names() -> None:
    assert sorted(lc.__all__) == sorted(
        [
            "CANDIDATE_TAG",
            "DECISION_EVENT",
            "DECISION_KEY",
            "ChatModelJudge",
            "ChatModelSampler",
            "DecisionSummary",
            "GuardedRunnable",
            "RaGuardMiddleware",
            "accepts_temperature",
            "summary_of",
        ]
    )


async def test_sampler_calls_the_model_n_times_concurrently(stub: OpenAIStubServer) -> None:
    stub.sampler_latency = 0.05
    samples = await ChatModelSampler(chat_openai(stub)).asample(MESSAGES, n=3, temperature=0.7)

    assert [s.text for s in samples] == ["answer 0 to: Capital of France?"] * 3
    assert all(s.finish_reason == "stop" and s.usage.total_tokens > 0 for s in samples)
    assert stub.max_in_flight["sampler"] == 3
    assert stub.requests[0].messages == MESSAGES and stub.requests[0].body["temperature"] == 0.7


async def test_sampler_use_n_asks_once(stub: OpenAIStubServer) -> None:
    samples = await ChatModelSampler(chat_openai(stub), use_n=True).asample(MESSAGES, n=3)

    assert [s.text for s in samples] == [f"answer {i} to: Capital of France?" for i in range(3)]
    (request,) = stub.requests
    assert request.body["n"] == 3


async def test_sampler_use_n_reports_a_model_that_ignores_n() -> None:
    with OpenAIStubServer(models=["ra-stub"], max_choices=1) as stub, pytest.raises(SamplerError, match="ignores `n`"):
        await ChatModelSampler(chat_openai(stub), use_n=True).asample(MESSAGES, n=2)


async def test_judge_sends_the_rewardanything_prompt_and_maps_names_back(stub: OpenAIStubServer) -> None:
    request = JudgeRequest(
        principle="Be brief.", prompt="Hi", responses={"long": "Hello there! score=2", "short": "Hi. score=5"}
    )
    judge = ChatModelJudge(chat_openai(stub, temperature=0))

    verdict = await judge.ajudge(request)

    assert verdict.scores == {"long": 2.0, "short": 5.0} and verdict.best == "short"
    assert verdict.model == "ra-stub" and verdict.usage.total_tokens > 0
    sent = stub.requests[0].messages
    assert sent == render_messages(request).messages


async def test_judge_output_errors_surface_as_judge_errors(stub: OpenAIStubServer) -> None:
    from ra_guard import JudgeOutputError

    stub.script(Completion.truncated_judge())
    request = JudgeRequest(principle="p", prompt="q", responses={"a": "x", "b": "y"})
    with pytest.raises(JudgeOutputError):
        await ChatModelJudge(chat_openai(stub)).ajudge(request)


async def test_sampler_and_judge_together_in_a_guard(stub: OpenAIStubServer) -> None:
    texts = iter(["Paris. score=5", "Lyon. score=1"])
    stub.handler = lambda r: next(texts) if r.kind == "sampler" else None
    guard = Guard(policies=[Policy(name="correct", principle="Correct.")], judge=ChatModelJudge(chat_openai(stub)))

    decision = await guard.arun(MESSAGES, sampler=ChatModelSampler(chat_openai(stub)), n=2)

    assert decision.text == "Paris. score=5"


@pytest.mark.parametrize(("model", "sent"), [("o3-mini", None), ("gpt-5-mini", None), ("gpt-4o-mini", 0.7)])
async def test_sampler_sends_no_temperature_to_reasoning_models(
    stub: OpenAIStubServer, model: str, sent: object
) -> None:
    chat = chat_openai(stub, model=model)

    await ChatModelSampler(chat).asample(MESSAGES, n=2, temperature=0.7)

    assert [r.body.get("temperature") for r in stub.requests] == [sent, sent]


#: A request timeout no other test's model has. langchain-openai keys its process-wide async client by
#: base URL and timeout: the entry the test below leaves behind, holding a connection of a closed loop,
#: stays its own, where a later test whose stub got the same port would inherit it otherwise.
_TIMEOUT_OF_ONE_TEST = 41.0


def test_sync_callers_work_after_the_users_own_event_loop_closed(stub: OpenAIStubServer) -> None:
    """ChatOpenAI shares one async HTTP client per process: its pooled connections die with the user's loop."""
    from langchain_openai import ChatOpenAI

    texts = iter(["Hello.", "Paris. score=5", "Lyon. score=1", "Paris? score=3", "Nice. score=2"])
    stub.handler = lambda r: next(texts) if r.kind == "sampler" else None
    # As users make it: langchain-openai's own shared async client, not one of chat_openai's.
    chat = ChatOpenAI(
        model="ra-stub", base_url=stub.base_url, api_key="sk-test", max_retries=0, timeout=_TIMEOUT_OF_ONE_TEST
    )
    assert chat.http_async_client is None
    asyncio.run(chat.ainvoke("warm-up on the user's own loop"))  # then that loop is closed

    guard = Guard(policies=[Policy(name="correct", principle="Correct.")], judge=ChatModelJudge(chat_openai(stub)))
    decision = guard.run(MESSAGES, sampler=ChatModelSampler(chat), n=2)
    again = guard.run(MESSAGES, sampler=ChatModelSampler(chat, use_n=False), n=2)

    assert decision.text == "Paris. score=5" and again.text == "Paris? score=3"
    assert decision.judge_calls == 1 and not decision.degraded


async def test_async_callers_work_after_sync_calls_on_the_same_model(stub: OpenAIStubServer) -> None:
    """A sync call (``guard.run``, on ra-guard's own loop) leaves the model's async client free of that loop."""
    texts = iter(["Paris. score=5", "Lyon. score=1", "Paris? score=3", "Nice. score=2"])
    stub.handler = lambda r: next(texts) if r.kind == "sampler" else None
    chat = chat_openai(stub)
    guard = Guard(policies=[Policy(name="correct", principle="Correct.")], judge=ChatModelJudge(chat))

    first = await asyncio.to_thread(guard.run, MESSAGES, sampler=ChatModelSampler(chat), n=2)
    second = await guard.arun(MESSAGES, sampler=ChatModelSampler(chat), n=2)

    assert first.text == "Paris. score=5" and second.text == "Paris? score=3"
    assert first.judge_calls == second.judge_calls == 1 and not second.degraded


def test_the_suites_chat_models_leave_no_connection_for_a_later_loop(stub: OpenAIStubServer) -> None:
    """Each of ``chat_openai``'s models has an async client of its own, closed on the loop that used it.

    With langchain-openai's default client, shared per base URL, the second loop would be handed the
    first loop's pooled connection ("Event loop is closed"), as would a later test whose stub reuses a port.
    """

    async def ask() -> object:
        async with closing_chat_clients():
            return (await chat_openai(stub).ainvoke("hi")).content

    assert asyncio.run(ask()) == asyncio.run(ask()) == "answer 0 to: hi"


async def test_candidate_and_judge_calls_are_tagged_out_of_message_streams(stub: OpenAIStubServer) -> None:
    from langchain_core.callbacks import AsyncCallbackHandler

    class Tags(AsyncCallbackHandler):
        def __init__(self) -> None:
            self.seen: list[list[str]] = []

        async def on_chat_model_start(self, serialized: Any, messages: Any, *, tags: Any = None, **kw: Any) -> None:
            self.seen.append(sorted(tags or []))

    recorder = Tags()
    config: Any = {"callbacks": [recorder], "tags": ["mine"]}
    texts = iter(["Paris. score=5", "Lyon. score=1"])
    stub.handler = lambda r: next(texts) if r.kind == "sampler" else None
    guard = Guard(
        policies=[Policy(name="correct", principle="Correct.")], judge=ChatModelJudge(chat_openai(stub), config=config)
    )

    await guard.arun(MESSAGES, sampler=ChatModelSampler(chat_openai(stub), config=config), n=2)

    assert sorted(recorder.seen) == [
        ["mine", "nostream", "ra_guard", "ra_guard:candidate"],
        ["mine", "nostream", "ra_guard", "ra_guard:candidate"],
        ["mine", "nostream", "ra_guard", "ra_guard:judge"],
    ]
