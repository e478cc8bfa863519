"""Sync entry points share one long-lived loop: bounded connections and loops, context kept, closable."""

from __future__ import annotations

import asyncio
import contextvars
import gc

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ra_guard import Guard, Policy
from ra_guard._sync import run_sync
from ra_guard.testing import FunctionJudge, FunctionSampler
from ra_guard.tracing import DecisionTracer
from tests.support.openai_server import OpenAIStubServer

POLICY = Policy(name="brief", principle="Be brief.")
USER = [{"role": "user", "content": "Capital of France?"}]


def _live_loops() -> int:
    gc.collect()
    # type(o), not isinstance: some lazily loaded modules' objects warn when their __class__ is read.
    loops = [o for o in gc.get_objects() if issubclass(type(o), asyncio.AbstractEventLoop)]
    return sum(1 for loop in loops if not loop.is_closed())


@pytest.mark.slow
def test_300_sync_decisions_keep_connections_and_loops_bounded(openai_server: OpenAIStubServer) -> None:
    sampler = FunctionSampler(lambda m, i: f"Paris. score={i % 5 + 1}")
    loops_before = _live_loops()
    most_connections = 0
    with Guard(policies=[POLICY], judge=f"openai-compat:{openai_server.base_url}", sampler=sampler) as guard:
        for _ in range(300):
            decision = guard.run(USER, n=2)
            assert decision.text == "Paris. score=2" and not decision.degraded
            most_connections = max(most_connections, openai_server.open_connections)
        assert _live_loops() <= loops_before + 1  # the one background loop for sync callers
    assert most_connections <= 4
    assert len([r for r in openai_server.requests if r.kind == "judge"]) == 300
    assert openai_server.wait_connections_closed()  # close() released the pool


def test_sync_call_keeps_the_callers_context_variables() -> None:
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")
    seen: list[str] = []

    async def read() -> None:
        seen.append(marker.get())

    marker.set("caller")
    run_sync(read())
    assert seen == ["caller"]


async def test_sync_inside_a_running_loop_keeps_the_trace_parent() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = DecisionTracer(provider)
    guard = Guard(policies=[POLICY], judge=FunctionJudge(lambda r: dict.fromkeys(r.responses, 4.0)), tracer=tracer)
    with provider.get_tracer("app").start_as_current_span("handler") as parent:
        guard.rerank("hi", ["hello"])  # sync call from a coroutine (a notebook, an async framework)
    decision_span = next(s for s in exporter.get_finished_spans() if s.name.startswith("invoke_workflow"))
    assert decision_span.parent is not None
    assert decision_span.parent.span_id == parent.get_span_context().span_id
    provider.shutdown()


def test_guard_closes_with_with_and_async_with() -> None:
    closed: list[str] = []

    class Closing(FunctionJudge):
        async def aclose(self) -> None:
            closed.append("judge")

    with Guard(policies=[POLICY], judge=Closing(lambda r: dict.fromkeys(r.responses, 3.0))) as guard:
        guard.rerank("q", ["a"])
    assert closed == ["judge"]

    async def use() -> None:
        async with Guard(policies=[POLICY], judge=Closing(lambda r: dict.fromkeys(r.responses, 3.0))) as g:
            await g.arerank("q", ["a"])

    asyncio.run(use())
    assert closed == ["judge", "judge"]


def test_a_dropped_guard_closes_the_judge_it_built_on_the_shared_loop(openai_server: OpenAIStubServer) -> None:
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{openai_server.base_url}")
    assert not guard.rerank("q", ["Paris. score=4"]).degraded
    assert openai_server.open_connections >= 1
    del guard
    gc.collect()
    assert openai_server.wait_connections_closed()


def test_a_judge_passed_in_is_left_to_its_owner() -> None:
    closed: list[str] = []

    class Closing(FunctionJudge):
        async def aclose(self) -> None:
            closed.append("judge")

    judge = Closing(lambda r: dict.fromkeys(r.responses, 3.0))
    guard = Guard(policies=[POLICY], judge=judge)
    guard.rerank("q", ["a"])
    del guard
    gc.collect()
    run_sync(asyncio.sleep(0))  # let anything scheduled on the shared loop run
    assert closed == []
