"""The pydantic-ai adapter with a real Agent and OpenAIChatModel/OpenAIProvider on the loopback server.

The stub plays both the agent's model and the RewardAnything judge (it scores
``score=N`` markers); every run is made under :func:`loopback_only`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError, UnexpectedModelBehavior
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

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
from ra_guard.integrations.pydantic_ai import GuardedModel, RaGuardOutputValidator
from ra_guard.testing import FunctionJudge, FunctionSampler
from tests.integrations.conftest import agent_handler, answer_samplers, tool_call_body
from tests.support.loopback_only import loopback_only
from tests.support.openai_server import Fault, OpenAIStubServer, RecordedRequest

HELPFUL = Policy(name="helpful", principle="Answer the user's question directly and correctly.", min_score=4)
QUESTION = "What is the capital of France?"


@pytest.fixture(autouse=True)
def only_loopback() -> Iterator[None]:
    with loopback_only() as refused:
        yield
    assert refused == []


@pytest.fixture
async def model(stub: OpenAIStubServer) -> AsyncIterator[OpenAIChatModel]:
    client = AsyncOpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)
    yield OpenAIChatModel("ra-stub", provider=OpenAIProvider(openai_client=client))
    await client.close()


@pytest.fixture
async def guard(stub: OpenAIStubServer) -> AsyncIterator[Guard]:
    async with Guard(policies=[HELPFUL], judge=f"openai-compat:{stub.base_url}") as guard:
        yield guard


def _sampled(stub: OpenAIStubServer) -> list[RecordedRequest]:
    return [r for r in stub.requests if r.kind == "sampler"]


# -- the output validator ------------------------------------------------------------------------


async def test_validator_passes_a_good_answer(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    answer_samplers(stub, "Paris. score=5")
    agent = Agent(model, instructions="Answer briefly.")
    agent.output_validator(RaGuardOutputValidator(guard))

    result = await agent.run(QUESTION)

    assert result.output == "Paris. score=5"
    summary = result.response.metadata["ra_guard"]  # type: ignore[index]
    assert summary["passed"] is True and summary["scores"] == {"helpful": 5} and summary["degraded"] is False
    judged = next(r.judge_input for r in stub.requests if r.kind == "judge")
    assert judged is not None and list(judged["responses"].values()) == ["Paris. score=5"]
    assert "Answer briefly." in judged["prompt"] and QUESTION in judged["prompt"]
    assert len(_sampled(stub)) == 1


async def test_a_failing_answer_is_retried_with_the_critique(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    answer_samplers(stub, "Hmm, somewhere in Europe. score=2", "Paris. score=5")
    decisions: list[Decision] = []
    agent = Agent(model, retries=2)
    agent.output_validator(RaGuardOutputValidator(guard, on_decision=decisions.append))

    result = await agent.run(QUESTION)

    assert result.output == "Paris. score=5"
    _, retry = _sampled(stub)
    assert {"role": "assistant", "content": "Hmm, somewhere in Europe. score=2"} in retry.messages
    feedback = retry.messages[-1]["content"]  # pydantic-ai's retry prompt, carrying the critique
    assert "fell short" in feedback and "- helpful: Answer the user's question" in feedback
    assert "(scored 2/5; needs 4)" in feedback
    assert [d.passed for d in decisions] == [False, True]
    # The second judging saw the first answer and the critique as part of the conversation.
    second_judge = [r.judge_input for r in stub.requests if r.kind == "judge"][1]
    assert second_judge is not None and "fell short" in second_judge["prompt"]


async def test_retries_run_out_like_any_pydantic_ai_validator(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    answer_samplers(stub, "Europe. score=2")
    agent = Agent(model, retries=1)
    agent.output_validator(RaGuardOutputValidator(guard))

    with pytest.raises(UnexpectedModelBehavior, match="retries"):
        await agent.run(QUESTION)
    assert len(_sampled(stub)) == 2


async def test_structured_output_is_judged_as_json(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    class Capital(BaseModel):
        country: str
        capital: str

    answer_samplers(stub, tool_call_body("final_result", {"country": "France", "capital": "Paris score=5"}))
    agent = Agent(model, output_type=Capital)
    agent.output_validator(RaGuardOutputValidator(guard))

    result = await agent.run(QUESTION)

    assert result.output == Capital(country="France", capital="Paris score=5")
    judged = next(r.judge_input for r in stub.requests if r.kind == "judge")
    assert judged is not None
    (text,) = judged["responses"].values()
    assert json.loads(text) == {"country": "France", "capital": "Paris score=5"}


def _dead_judge_then(answer: str) -> Any:
    def handle(request: RecordedRequest) -> Any:
        return Fault.error(503, retry_after=0.001) if request.kind == "judge" else answer

    return handle


async def test_a_dead_judge_under_fail_open_lets_the_answer_through_degraded(
    stub: OpenAIStubServer, model: Any
) -> None:
    stub.handler = _dead_judge_then("Paris. score=5")
    policy = Policy(name="helpful", principle=HELPFUL.principle, on_judge_error="fail_open")
    async with Guard(policies=[policy], judge=f"openai-compat:{stub.base_url}") as guard:
        agent = Agent(model)
        agent.output_validator(RaGuardOutputValidator(guard))
        result = await agent.run(QUESTION)

    assert result.output == "Paris. score=5"
    summary = result.response.metadata["ra_guard"]  # type: ignore[index]
    assert summary["degraded"] is True and summary["fallbacks"] == ["judge_error"]
    assert summary["scores"] == {"helpful": None}


async def test_a_dead_judge_under_fail_closed_blocks_without_retrying(stub: OpenAIStubServer, model: Any) -> None:
    stub.handler = _dead_judge_then("Paris. score=5")
    policy = Policy(name="helpful", principle=HELPFUL.principle, on_judge_error="fail_closed")
    async with Guard(policies=[policy], judge=f"openai-compat:{stub.base_url}") as guard:
        agent = Agent(model, retries=3)
        agent.output_validator(RaGuardOutputValidator(guard))
        with pytest.raises(AllCandidatesRejected) as blocked:
            await agent.run(QUESTION)

    assert blocked.value.decision.degraded is True
    assert len(_sampled(stub)) == 1  # a retry cannot bring a judge back


async def test_retry_on_veto_lets_a_soft_failure_through(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    answer_samplers(stub, "Europe. score=2")
    agent = Agent(model)
    agent.output_validator(RaGuardOutputValidator(guard, retry_on="veto"))

    result = await agent.run(QUESTION)

    assert result.output == "Europe. score=2" and result.response.metadata["ra_guard"]["passed"] is False  # type: ignore[index]


def test_misconfiguration_is_refused() -> None:
    judge = FunctionJudge(lambda r: {k: 3 for k in r.responses})
    with pytest.raises(ConfigurationError, match="without a sampler"):
        RaGuardOutputValidator(Guard(policies=[HELPFUL], judge=judge, sampler=FunctionSampler(lambda m, i: "x")))
    with pytest.raises(ConfigurationError, match="retry_on"):
        RaGuardOutputValidator(Guard(policies=[HELPFUL], judge=judge), retry_on="often")  # type: ignore[arg-type]


# -- GuardedModel: best-of-N and retry -----------------------------------------------------------


async def test_guarded_model_returns_the_judged_best_of_n_requests(
    stub: OpenAIStubServer, model: Any, guard: Guard
) -> None:
    stub.sampler_latency = 0.05  # long enough for the requests to overlap
    answer_samplers(stub, "Marseille. score=2", "Paris. score=5", "Paris or Lyon. score=3")
    decisions: list[Decision] = []
    agent = Agent(GuardedModel(model, guard, n=3, on_decision=decisions.append))

    result = await agent.run(QUESTION)

    assert result.output == "Paris. score=5"
    assert len(_sampled(stub)) == 3 and [r.kind for r in stub.requests].count("judge") == 1
    assert stub.max_in_flight["sampler"] == 3
    (decision,) = decisions
    assert sorted(c.text for c in decision.candidates) == [
        "Marseille. score=2",
        "Paris or Lyon. score=3",
        "Paris. score=5",
    ]
    summary = result.response.metadata["ra_guard"]  # type: ignore[index]
    assert summary["decision_id"] == decision.decision_id and summary["scores"] == {"helpful": 5}
    assert result.usage.output_tokens == sum(c.usage.completion_tokens for c in decision.candidates)
    assert all(r.body.get("temperature") == 0.8 for r in _sampled(stub))  # BestOfN's temperature


async def test_guarded_model_retries_with_the_judge_critique(stub: OpenAIStubServer, model: Any) -> None:
    answer_samplers(stub, "Meh. score=2", "Paris is the capital of France. score=5")
    async with Guard(
        policies=[HELPFUL], judge=f"openai-compat:{stub.base_url}", strategy=RetryWithFeedback(max_attempts=3, n=1)
    ) as guard:
        result = await Agent(GuardedModel(model, guard)).run(QUESTION)

    assert result.output == "Paris is the capital of France. score=5"
    retry = _sampled(stub)[1]
    assert retry.messages[-2] == {"role": "assistant", "content": "Meh. score=2"}
    assert "fell short" in retry.messages[-1]["content"]
    # the critique turns were for the retry only: the agent's history holds the question and the winner
    assert [m.kind for m in result.all_messages()] == ["request", "response"]


async def test_guarded_model_judges_structured_answers_as_json(
    stub: OpenAIStubServer, model: Any, guard: Guard
) -> None:
    class Capital(BaseModel):
        country: str
        capital: str

    answer_samplers(
        stub,
        tool_call_body("final_result", {"country": "France", "capital": "Lyon score=1"}),
        tool_call_body("final_result", {"country": "France", "capital": "Paris score=5"}),
    )
    agent = Agent(GuardedModel(model, guard, n=2), output_type=Capital)

    result = await agent.run(QUESTION)

    assert result.output == Capital(country="France", capital="Paris score=5")
    judged = next(r.judge_input for r in stub.requests if r.kind == "judge")
    assert judged is not None
    assert sorted(json.loads(t)["capital"] for t in judged["responses"].values()) == ["Lyon score=1", "Paris score=5"]


async def test_tool_turns_pass_through_unjudged(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    stub.handler = agent_handler(["Sunny. score=2", "Sunny and 21C in Paris. score=5"])
    calls: list[str] = []
    agent = Agent(GuardedModel(model, guard, n=2))

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        calls.append(city)
        return f"Sunny in {city}, 21C"

    result = await agent.run("Weather in Paris?")

    assert result.output == "Sunny and 21C in Paris. score=5"
    assert calls == ["Paris"]  # the tool ran once
    assert len(_sampled(stub)) == 4 and [r.kind for r in stub.requests].count("judge") == 1
    judged = next(r.judge_input for r in stub.requests if r.kind == "judge")
    assert judged is not None and "[tool call] get_weather" in judged["prompt"]


async def test_streamed_run_streams_only_the_chosen_answer(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    answer_samplers(stub, "Marseille, a port in the south. score=1", "Paris, on the Seine. score=5")
    agent = Agent(GuardedModel(model, guard, n=2))

    async with agent.run_stream(QUESTION) as streamed:
        chunks = [chunk async for chunk in streamed.stream_text(delta=True)]

    assert "".join(chunks) == "Paris, on the Seine. score=5"
    assert len(_sampled(stub)) == 2


async def test_every_answer_vetoed_raises_all_candidates_rejected(stub: OpenAIStubServer, model: Any) -> None:
    answer_samplers(stub, "Lyon. score=1")
    hard = Policy(name="correct", principle="Be factually correct.", kind=PolicyKind.HARD, min_score=3)
    async with Guard(policies=[hard], judge=f"openai-compat:{stub.base_url}") as guard:
        with pytest.raises(AllCandidatesRejected) as rejected:
            await Agent(GuardedModel(model, guard, n=2)).run(QUESTION)
    assert len(rejected.value.candidates) == 2


async def test_every_request_failing_raises_the_models_error(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    stub.handler = lambda r: Fault.error(400, message="bad request") if r.kind == "sampler" else None

    with pytest.raises(ModelHTTPError) as failed:
        await Agent(GuardedModel(model, guard, n=2)).run(QUESTION)
    assert failed.value.status_code == 400
    assert [r.kind for r in stub.requests] == ["sampler", "sampler"]  # nothing to judge


async def test_a_failed_request_is_dropped_when_others_answer(
    stub: OpenAIStubServer, model: Any, guard: Guard, caplog: pytest.LogCaptureFixture
) -> None:
    stub.script(Fault.error(500, retry_after=None), when=lambda r: r.kind == "sampler")
    answer_samplers(stub, "Paris. score=4")

    result = await Agent(GuardedModel(model, guard, n=2)).run(QUESTION)

    assert result.output == "Paris. score=4"
    assert "1 of 2 model calls failed" in caplog.text


async def test_best_of_n_then_the_validator_checks_the_winner(stub: OpenAIStubServer, model: Any, guard: Guard) -> None:
    answer_samplers(stub, "Marseille. score=1", "Paris. score=5")
    agent = Agent(GuardedModel(model, guard, n=2))
    agent.output_validator(RaGuardOutputValidator(guard))

    result = await agent.run(QUESTION)

    assert result.output == "Paris. score=5"
    judged = [r.judge_input for r in stub.requests if r.kind == "judge"]
    assert [len(j["responses"]) for j in judged if j] == [2, 1]  # the N candidates, then the winner alone
    assert result.response.metadata["ra_guard"]["strategy"] == "check"  # type: ignore[index]


async def test_batch_requests_are_refused_not_sent_unguarded(model: Any, guard: Guard) -> None:
    from pydantic_ai.models.batch import BatchRequest

    with pytest.raises(NotImplementedError, match="GuardedModel"):
        await GuardedModel(model, guard).batch_encode(BatchRequest.__new__(BatchRequest))


async def test_under_a_deadline_a_hung_request_is_dropped_and_the_finished_answers_judged(
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
        agent = Agent(GuardedModel(model, guard, n=3, on_decision=decisions.append))
        started = time.perf_counter()
        result = await agent.run(QUESTION)

    assert time.perf_counter() - started < 10  # not the 30 s of the hung request
    assert result.output == "Paris. score=5"
    (decision,) = decisions
    assert len(decision.candidates) == 2 and [f.kind for f in decision.fallbacks] == ["deadline"]


def test_public_names() -> None:
    import ra_guard.integrations.pydantic_ai as adapter

    assert sorted(adapter.__all__) == sorted(
        [
            "DEFAULT_CRITIQUE",
            "METADATA_KEY",
            "GuardedModel",
            "RaGuardOutputValidator",
            "RetryOn",
            "critique",
            "decision_summary",
        ]
    )
    assert all(getattr(adapter, name) is not None for name in adapter.__all__)
