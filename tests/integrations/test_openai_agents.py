"""The OpenAI Agents SDK adapter with the SDK's real Agent, Runner and chat-completions model on the loopback server.

The stub plays both the agent's model and the RewardAnything judge (it scores
``score=N`` markers). The SDK's trace export is disabled, and every run is
made under :func:`loopback_only`, which records any attempt to leave 127.0.0.1.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OutputGuardrailTripwireTriggered,
    Runner,
    TracingProcessor,
    function_tool,
    set_trace_processors,
    set_tracing_disabled,
)
from openai import AsyncOpenAI
from openai.types.responses import ResponseTextDeltaEvent
from pydantic import BaseModel

from ra_guard import (
    AllCandidatesRejected,
    Budget,
    ConfigurationError,
    Decision,
    Guard,
    Policy,
    PolicyKind,
    RetryWithFeedback,
)
from ra_guard.integrations.openai_agents import GuardedModel, ra_guard_output_guardrail
from ra_guard.testing import FunctionJudge, FunctionSampler
from tests.integrations.conftest import agent_handler, answer_samplers
from tests.support.loopback_only import loopback_only
from tests.support.openai_server import Fault, OpenAIStubServer, RecordedRequest

HELPFUL = Policy(name="helpful", principle="Answer the user's question directly and correctly.")
QUESTION = "What is the capital of France?"


@pytest.fixture(autouse=True)
def no_trace_export() -> Iterator[list[str]]:
    """The SDK would export its traces to api.openai.com: off, and nothing may leave loopback."""
    set_tracing_disabled(True)
    with loopback_only() as refused:
        yield refused
    assert refused == []


@pytest.fixture
async def model(stub: OpenAIStubServer) -> AsyncIterator[OpenAIChatCompletionsModel]:
    client = AsyncOpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)
    yield OpenAIChatCompletionsModel(model="ra-stub", openai_client=client)
    await client.close()


@pytest.fixture
async def guard(stub: OpenAIStubServer) -> AsyncIterator[Guard]:
    async with Guard(policies=[HELPFUL], judge=f"openai-compat:{stub.base_url}") as guard:
        yield guard


def _dead_judge(request: RecordedRequest) -> Any:
    return Fault.error(503, retry_after=0.001) if request.kind == "judge" else None


# -- the output guardrail ------------------------------------------------------------------------


async def test_guardrail_passes_a_good_answer(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    answer_samplers(stub, "Paris. score=5")
    agent = Agent(
        name="geo", instructions="Answer briefly.", model=model, output_guardrails=[ra_guard_output_guardrail(guard)]
    )

    result = await Runner.run(agent, QUESTION)

    assert result.final_output == "Paris. score=5"
    (checked,) = result.output_guardrail_results
    info = checked.output.output_info
    assert checked.output.tripwire_triggered is False
    assert info["passed"] is True and info["scores"] == {"helpful": 5} and info["degraded"] is False
    assert set(info) >= {"decision_id", "trace_id", "degraded_reasons", "fallbacks"}
    judged = next(r.judge_input for r in stub.requests if r.kind == "judge")
    assert judged is not None
    assert list(judged["responses"].values()) == ["Paris. score=5"]
    assert "Answer briefly." in judged["prompt"] and QUESTION in judged["prompt"]  # instructions and input


async def test_guardrail_trips_on_a_failing_answer_with_the_summary(stub: OpenAIStubServer, model: Any) -> None:
    answer_samplers(stub, "Lyon, probably. score=1")
    hard = Policy(name="correct", principle="Be factually correct.", kind=PolicyKind.HARD, min_score=3)
    async with Guard(policies=[hard, HELPFUL], judge=f"openai-compat:{stub.base_url}") as guard:
        agent = Agent(name="geo", model=model, output_guardrails=[ra_guard_output_guardrail(guard)])

        with pytest.raises(OutputGuardrailTripwireTriggered) as tripped:
            await Runner.run(agent, QUESTION)

    info = tripped.value.guardrail_result.output.output_info
    assert info["passed"] is False
    assert info["vetoed_by"] == ["correct"] and set(info["failed_policies"]) == {"correct", "helpful"}
    assert info["scores"] == {"correct": 1, "helpful": 1}
    assert "Lyon" not in json.dumps(info)  # a vetoed answer never rides along in the summary
    assert tripped.value.guardrail_result.guardrail.get_name() == "ra_guard"


async def test_trip_on_veto_lets_a_soft_failure_through(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    answer_samplers(stub, "Paris, I think. score=2")
    agent = Agent(name="geo", model=model, output_guardrails=[ra_guard_output_guardrail(guard, trip_on="veto")])

    result = await Runner.run(agent, QUESTION)

    info = result.output_guardrail_results[0].output.output_info
    assert result.final_output == "Paris, I think. score=2" and info["passed"] is False and info["vetoed_by"] == []


@pytest.mark.parametrize(("mode", "trips"), [("fail_open", False), ("fail_closed", True)])
async def test_a_dead_judge_follows_the_policy_and_says_degraded(
    stub: OpenAIStubServer, model: Any, mode: str, trips: bool
) -> None:
    answer_samplers(stub, "Paris. score=5")
    answer_handler = stub.handler
    stub.handler = lambda r: _dead_judge(r) or (answer_handler(r) if answer_handler else None)
    policy = Policy(name="helpful", principle=HELPFUL.principle, on_judge_error=mode)
    async with Guard(policies=[policy], judge=f"openai-compat:{stub.base_url}") as guard:
        agent = Agent(name="geo", model=model, output_guardrails=[ra_guard_output_guardrail(guard)])
        if trips:
            with pytest.raises(OutputGuardrailTripwireTriggered) as tripped:
                await Runner.run(agent, QUESTION)
            info = tripped.value.guardrail_result.output.output_info
        else:
            result = await Runner.run(agent, QUESTION)
            assert result.final_output == "Paris. score=5"
            info = result.output_guardrail_results[0].output.output_info

    assert [r.kind for r in stub.requests].count("judge") >= 1  # the judge was asked, and failed
    assert info["degraded"] is True and info["fallbacks"] == ["judge_error"]
    assert info["scores"] == {"helpful": None}
    assert info["degraded_reasons"] and info["degraded_reasons"][0].startswith("judge_error: helpful:")
    assert info["passed"] is (not trips)


class Weather(BaseModel):
    city: str
    summary: str


async def test_structured_output_is_judged_as_json(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    answer_samplers(stub, json.dumps({"city": "Paris", "summary": "Sunny, 21C. score=4"}))
    agent = Agent(
        name="weather", model=model, output_type=Weather, output_guardrails=[ra_guard_output_guardrail(guard)]
    )

    result = await Runner.run(agent, "Weather in Paris?")

    assert result.final_output == Weather(city="Paris", summary="Sunny, 21C. score=4")
    judged = next(r.judge_input for r in stub.requests if r.kind == "judge")
    assert judged is not None
    (text,) = judged["responses"].values()
    assert json.loads(text) == {"city": "Paris", "summary": "Sunny, 21C. score=4"}
    assert result.output_guardrail_results[0].output.output_info["scores"] == {"helpful": 4}


def test_a_guard_with_a_sampler_is_refused() -> None:
    judge = FunctionJudge(lambda r: {k: 3 for k in r.responses})
    guard = Guard(policies=[HELPFUL], judge=judge, sampler=FunctionSampler(lambda m, i: "x"))
    with pytest.raises(ConfigurationError, match="without a sampler"):
        ra_guard_output_guardrail(guard)
    with pytest.raises(ConfigurationError, match="trip_on"):
        ra_guard_output_guardrail(Guard(policies=[HELPFUL], judge=judge), trip_on="sometimes")  # type: ignore[arg-type]


async def test_guardrail_with_a_function_judge_sees_the_conversation(stub: OpenAIStubServer, model: Any) -> None:
    answer_samplers(stub, "Paris.")
    seen: list[str] = []

    def score(request: Any) -> dict[str, float]:
        seen.append(request.prompt)
        return {k: 4.0 for k in request.responses}

    guard = Guard(policies=[HELPFUL], judge=FunctionJudge(score))
    agent = Agent(
        name="geo", instructions="Be brief.", model=model, output_guardrails=[ra_guard_output_guardrail(guard)]
    )

    result = await Runner.run(agent, [{"role": "user", "content": QUESTION}])

    assert result.output_guardrail_results[0].output.tripwire_triggered is False
    assert seen and "[system]\nBe brief." in seen[0] and f"[user]\n{QUESTION}" in seen[0]


# -- GuardedModel: best-of-N and retry -----------------------------------------------------------


async def test_guarded_model_returns_the_judged_best_of_n_calls(
    stub: OpenAIStubServer, model: Any, guard: Guard
) -> None:
    stub.sampler_latency = 0.05  # long enough for the calls to overlap
    answer_samplers(stub, "Marseille. score=2", "Paris. score=5", "Paris or Lyon. score=3")
    decisions: list[Decision] = []
    agent = Agent(name="geo", model=GuardedModel(model, guard, n=3, on_decision=decisions.append))

    result = await Runner.run(agent, QUESTION)

    assert result.final_output == "Paris. score=5"
    kinds = [r.kind for r in stub.requests]
    assert kinds.count("sampler") == 3 and kinds.count("judge") == 1
    assert stub.max_in_flight["sampler"] == 3
    (decision,) = decisions
    assert sorted(c.text for c in decision.candidates) == [
        "Marseille. score=2",
        "Paris or Lyon. score=3",
        "Paris. score=5",
    ]
    # the run's usage counts the three calls, not only the winner's
    sampled = sum(c.usage.completion_tokens for c in decision.candidates)
    assert result.context_wrapper.usage.output_tokens == sampled
    sampler_bodies = [r.body for r in stub.requests if r.kind == "sampler"]
    assert all(b.get("temperature") == 0.8 for b in sampler_bodies)  # BestOfN's temperature, so answers differ


async def test_guarded_model_retries_with_the_judge_critique(stub: OpenAIStubServer, model: Any) -> None:
    answer_samplers(stub, "Meh. score=2", "Paris is the capital of France. score=5")
    strict = Policy(name="helpful", principle=HELPFUL.principle, min_score=4)
    async with Guard(
        policies=[strict], judge=f"openai-compat:{stub.base_url}", strategy=RetryWithFeedback(max_attempts=3, n=1)
    ) as guard:
        result = await Runner.run(Agent(name="geo", model=GuardedModel(model, guard)), QUESTION)

    assert result.final_output == "Paris is the capital of France. score=5"
    retry = [r for r in stub.requests if r.kind == "sampler"][1]
    assert retry.messages[-2] == {"role": "assistant", "content": "Meh. score=2"}
    assert "fell short" in retry.messages[-1]["content"] and "helpful" in retry.messages[-1]["content"]


async def test_guarded_model_structured_output_is_judged_as_json(
    stub: OpenAIStubServer, model: Any, guard: Guard
) -> None:
    answer_samplers(
        stub,
        json.dumps({"city": "Paris", "summary": "Rain. score=2"}),
        json.dumps({"city": "Paris", "summary": "Sunny, 21C. score=5"}),
    )
    agent = Agent(name="weather", model=GuardedModel(model, guard, n=2), output_type=Weather)

    result = await Runner.run(agent, "Weather in Paris?")

    assert result.final_output == Weather(city="Paris", summary="Sunny, 21C. score=5")
    judged = next(r.judge_input for r in stub.requests if r.kind == "judge")
    assert judged is not None
    assert sorted(json.loads(t)["summary"] for t in judged["responses"].values()) == [
        "Rain. score=2",
        "Sunny, 21C. score=5",
    ]
    assert all(r.body.get("response_format") for r in stub.requests if r.kind == "sampler")  # the schema was sent


@function_tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"Sunny in {city}, 21C"


async def test_tool_turns_pass_through_unjudged(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    stub.handler = agent_handler(["Sunny. score=2", "Sunny and 21C in Paris. score=5"])
    agent = Agent(name="weather", model=GuardedModel(model, guard, n=2), tools=[get_weather])

    result = await Runner.run(agent, "Weather in Paris?")

    assert result.final_output == "Sunny and 21C in Paris. score=5"
    kinds = [r.kind for r in stub.requests]
    assert kinds.count("sampler") == 4 and kinds.count("judge") == 1  # 2 calls for the tool turn, 2 for the answer
    tool_outputs = [i for i in result.new_items if i.type == "tool_call_output_item"]
    assert [i.output for i in tool_outputs] == ["Sunny in Paris, 21C"]  # the tool ran once
    judged = next(r.judge_input for r in stub.requests if r.kind == "judge")
    assert judged is not None and "[tool call] get_weather" in judged["prompt"]


async def test_every_answer_vetoed_raises_all_candidates_rejected(stub: OpenAIStubServer, model: Any) -> None:
    answer_samplers(stub, "Lyon. score=1")
    hard = Policy(name="correct", principle="Be factually correct.", kind=PolicyKind.HARD, min_score=3)
    async with Guard(policies=[hard], judge=f"openai-compat:{stub.base_url}") as guard:
        with pytest.raises(AllCandidatesRejected) as rejected:
            await Runner.run(Agent(name="geo", model=GuardedModel(model, guard, n=2)), QUESTION)
    assert len(rejected.value.candidates) == 2


async def test_streamed_run_replays_only_the_chosen_answer(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    answer_samplers(stub, "Marseille, a port in the south. score=1", "Paris, on the Seine. score=5")
    agent = Agent(name="geo", model=GuardedModel(model, guard, n=2))

    result = Runner.run_streamed(agent, QUESTION)
    deltas = [
        event.data.delta
        async for event in result.stream_events()
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent)
    ]

    assert result.final_output == "Paris, on the Seine. score=5"
    assert "".join(deltas) == "Paris, on the Seine. score=5"  # no token of the other candidate
    assert all(r.body.get("stream") for r in stub.requests if r.kind == "sampler")
    assert [r.kind for r in stub.requests].count("sampler") == 2


async def test_a_failed_call_is_dropped_when_others_answer(
    stub: OpenAIStubServer, model: Any, guard: Guard, caplog: pytest.LogCaptureFixture
) -> None:
    stub.script(Fault.error(500, retry_after=None), when=lambda r: r.kind == "sampler")
    answer_samplers(stub, "Paris. score=4")

    result = await Runner.run(Agent(name="geo", model=GuardedModel(model, guard, n=2)), QUESTION)

    assert result.final_output == "Paris. score=4"
    assert "1 of 2 model calls failed" in caplog.text


async def test_every_call_failing_raises_the_models_error(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    stub.handler = lambda r: Fault.error(400, message="bad request") if r.kind == "sampler" else None
    import openai

    with pytest.raises(openai.BadRequestError):
        await Runner.run(Agent(name="geo", model=GuardedModel(model, guard, n=2)), QUESTION)


async def test_guardrail_trips_in_a_streamed_run(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    answer_samplers(stub, "Marseille. score=1")
    agent = Agent(name="geo", model=model, output_guardrails=[ra_guard_output_guardrail(guard)])

    result = Runner.run_streamed(agent, QUESTION)
    with pytest.raises(OutputGuardrailTripwireTriggered) as tripped:
        async for _ in result.stream_events():
            pass

    assert tripped.value.guardrail_result.output.output_info["scores"] == {"helpful": 1}


class _Recorder(TracingProcessor):
    """Keeps the SDK's spans in memory: tracing on, nothing exported."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    def on_trace_start(self, trace: Any) -> None: ...
    def on_trace_end(self, trace: Any) -> None: ...
    def on_span_start(self, span: Any) -> None: ...
    def on_span_end(self, span: Any) -> None:
        self.spans.append(span)

    def shutdown(self) -> None: ...
    def force_flush(self) -> None: ...


async def test_each_decision_is_a_custom_span_in_the_sdk_trace(
    stub: OpenAIStubServer, model: Any, guard: Guard
) -> None:
    answer_samplers(stub, "Lyon. score=2", "Paris. score=5")
    recorder = _Recorder()
    set_trace_processors([recorder])  # replaces the exporter to OpenAI's platform
    set_tracing_disabled(False)
    try:
        await Runner.run(Agent(name="geo", model=GuardedModel(model, guard, n=2)), QUESTION)
    finally:
        set_tracing_disabled(True)
        set_trace_processors([])

    (span,) = [s for s in recorder.spans if getattr(s.span_data, "name", None) == "ra-guard decision"]
    data = span.span_data.data
    assert data["passed"] is True and data["candidates"] == 2 and data["scores"] == {"helpful": 5}
    assert "Paris" not in json.dumps(data)


def test_a_model_name_resolves_like_the_sdks_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    guard = Guard(policies=[HELPFUL], judge=FunctionJudge(lambda r: {k: 3 for k in r.responses}))

    assert GuardedModel("gpt-4o-mini", guard).model.model == "gpt-4o-mini"  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match=r"wraps an agents\.Model"):
        GuardedModel(object(), guard)  # type: ignore[arg-type]


async def test_under_a_deadline_a_hung_call_is_dropped_and_the_finished_answers_judged(
    stub: OpenAIStubServer, model: Any
) -> None:
    stub.script(Fault.hang(30), when=lambda r: r.kind == "sampler")
    answer_samplers(stub, "Paris. score=5", "Lyon. score=2")
    decisions: list[Decision] = []
    async with Guard(
        # Sampling is cut at 4.0 * 0.5 = 2 s and the judge keeps 2 s (a new connection and a /v1/models probe);
        # the default 25% of a 2 s deadline left it 0.5 s, one garbage-collector pause away from missing it.
        policies=[HELPFUL],
        judge=f"openai-compat:{stub.base_url}",
        budget=Budget(deadline_s=4.0, judge_reserve=0.5),
    ) as guard:
        agent = Agent(name="geo", model=GuardedModel(model, guard, n=3, on_decision=decisions.append))
        started = time.perf_counter()
        result = await Runner.run(agent, QUESTION)

    assert time.perf_counter() - started < 10  # not the 30 s of the hung call
    assert result.final_output == "Paris. score=5"
    (decision,) = decisions
    assert len(decision.candidates) == 2 and decision.degraded
    assert [f.kind for f in decision.fallbacks] == ["deadline"]


def test_public_names() -> None:
    import ra_guard.integrations.openai_agents as adapter

    assert sorted(adapter.__all__) == ["GuardedModel", "TripOn", "decision_summary", "ra_guard_output_guardrail"]
    assert all(getattr(adapter, name) is not None for name in adapter.__all__)
