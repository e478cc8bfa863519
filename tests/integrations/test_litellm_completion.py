"""guarded_completion / guarded_acompletion through real litellm calls to the loopback server."""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import Callable
from typing import Any

import litellm
import openai
import pytest
from litellm.integrations.custom_logger import CustomLogger

from ra_guard import Budget, ConfigurationError, Decision, Guard, Policy, RetryWithFeedback, SamplerError
from ra_guard.integrations.litellm import guarded_acompletion, guarded_completion
from ra_guard.judges.litellm_judge import LiteLLMJudge
from tests.integrations.conftest import answer_samplers
from tests.support.leaks import unclosed_after_collection
from tests.support.openai_server import Fault, OpenAIStubServer

POLICY = Policy(name="correct", principle="The answer is factually correct.")
MESSAGES = [{"role": "user", "content": "Capital of France?"}]


def _kwargs(stub: OpenAIStubServer, client: Any = None) -> dict[str, Any]:
    # Our own OpenAI client, closed by the test: litellm's cached clients leak sockets that the
    # garbage collector may report (ResourceWarning) in the middle of a later test.
    kwargs = {"model": "openai/ra-stub", "api_base": stub.base_url, "api_key": "sk-test", "messages": MESSAGES}
    return {**kwargs, "client": client} if client is not None else kwargs


async def test_async_returns_a_model_response_with_the_winner(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "Lyon. score=1", "Paris. score=5", "Marseille. score=2")
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")

    async with openai.AsyncOpenAI(base_url=stub.base_url, api_key="sk-test") as client:
        response = await guarded_acompletion(guard, n=3, max_tokens=50, **_kwargs(stub, client))

    assert isinstance(response, litellm.ModelResponse)
    assert [c.message.content for c in response.choices] == ["Paris. score=5"]
    assert response.choices[0].index == 0
    assert response.ra_guard["candidates"][response.ra_guard["chosen_index"]]["text"] == "Paris. score=5"
    assert response.model_dump()["ra_guard"]["passed"] is True
    assert isinstance(response._hidden_params["ra_guard_decision"], Decision)
    sampled = [r for r in stub.requests if r.kind == "sampler"]
    assert len(sampled) == 3 and all(r.body["max_tokens"] == 50 for r in sampled)
    assert all(r.body["temperature"] == 0.8 for r in sampled)  # the strategy's temperature
    await guard.aclose()


async def test_use_n_asks_for_all_candidates_in_one_call(stub: OpenAIStubServer) -> None:
    stub.handler = None
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")

    async with openai.AsyncOpenAI(base_url=stub.base_url, api_key="sk-test") as client:
        response = await guarded_acompletion(guard, n=3, use_n=True, temperature=0.2, **_kwargs(stub, client))

    (sampled,) = [r for r in stub.requests if r.kind == "sampler"]
    assert sampled.body["n"] == 3 and sampled.body["temperature"] == 0.2
    assert len(response.ra_guard["candidates"]) == 3
    await guard.aclose()


def test_sync_twice_in_a_row(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "Paris. score=4", "Nice. score=2")
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")

    with openai.OpenAI(base_url=stub.base_url, api_key="sk-test") as client:
        for _ in range(2):
            response = guarded_completion(guard, n=2, **_kwargs(stub, client))
            assert response.choices[0].message.content == "Paris. score=4"
    guard.judge.close()


def test_stream_is_refused_with_a_reason(stub: OpenAIStubServer) -> None:
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")
    with pytest.raises(ConfigurationError, match="does not stream"):
        guarded_completion(guard, stream=True, **_kwargs(stub))


async def test_failed_calls_are_dropped_and_all_failing_is_a_sampler_error(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "Paris. score=5")
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")
    is_sampler = lambda request: request.kind == "sampler"  # noqa: E731
    async with openai.AsyncOpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0) as client:
        stub.script(Fault.error(500, retry_after=None), when=is_sampler)
        response = await guarded_acompletion(guard, n=2, max_retries=0, **_kwargs(stub, client))
        assert len(response.ra_guard["candidates"]) == 1

        stub.script(*[Fault.error(500, retry_after=None)] * 2, when=is_sampler)
        with pytest.raises(SamplerError, match="every completion failed"):
            await guarded_acompletion(guard, n=2, max_retries=0, **_kwargs(stub, client))
    await guard.aclose()


async def test_usage_reports_the_whole_decision_and_the_winner_apart(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "Lyon. score=1", "Paris. score=5", "Nice. score=2")
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")
    async with openai.AsyncOpenAI(base_url=stub.base_url, api_key="sk-test") as client:
        response = await guarded_acompletion(guard, n=3, **_kwargs(stub, client))
    await guard.aclose()

    decision: Decision = response._hidden_params["ra_guard_decision"]
    winner = decision.chosen.usage
    assert decision.total_usage == decision.sampling_usage + decision.judge_usage
    assert decision.sampling_usage.total_tokens == 3 * winner.total_tokens  # three sampled calls
    assert decision.judge_usage.total_tokens > 0
    # what cost tools read: the whole spend, every candidate and every judge call
    assert response.usage.prompt_tokens == decision.total_usage.prompt_tokens
    assert response.usage.completion_tokens == decision.total_usage.completion_tokens
    assert response.usage.total_tokens == decision.total_usage.total_tokens
    # the winner's own usage, apart
    assert response.ra_guard["winner_usage"]["total_tokens"] == winner.total_tokens
    assert response._hidden_params["ra_guard_winner_usage"].total_tokens == winner.total_tokens
    assert response.ra_guard["total_usage"]["total_tokens"] == decision.total_usage.total_tokens


async def test_a_hung_completion_does_not_lose_the_others(stub: OpenAIStubServer) -> None:
    is_sampler = lambda request: request.kind == "sampler"  # noqa: E731
    stub.script("Paris. score=5", Fault.hang(30), "Nice. score=2", when=is_sampler)
    # Sampling is cut at 4.0 * 0.5 = 2 s and the judge keeps 2 s (a new connection and a /v1/models probe);
    # the default 25% of a 1.5 s deadline left it 375 ms, about one garbage-collector pause on a loaded machine.
    budget = Budget(deadline_s=4.0, judge_reserve=0.5)
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}", budget=budget)
    started = time.perf_counter()
    async with openai.AsyncOpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0) as client:
        response = await guarded_acompletion(guard, n=3, max_retries=0, **_kwargs(stub, client))
    await guard.aclose()
    assert time.perf_counter() - started < 10  # not the 30 s of the hung call
    decision: Decision = response._hidden_params["ra_guard_decision"]
    assert sorted(c.text for c in decision.candidates) == ["Nice. score=2", "Paris. score=5"]
    assert response.choices[0].message.content == "Paris. score=5"
    assert decision.degraded and decision.fallbacks[0].kind == "deadline"
    assert [f.kind for f in decision.fallbacks] == ["deadline"]  # only sampling was cut: the judge had its time


def _listen(monkeypatch: pytest.MonkeyPatch, callback: CustomLogger) -> None:
    """Make ``callback`` litellm's only callback for this test.

    litellm copies ``litellm.callbacks`` into its own lists on the next call and
    skips a logger whose class it already holds there, so every list starts empty
    here and gets its old contents back after the test.
    """
    for name in ("input_callback", "success_callback", "failure_callback", "_async_success_callback"):
        monkeypatch.setattr(litellm, name, [])
    monkeypatch.setattr(litellm, "_async_failure_callback", [])
    monkeypatch.setattr(litellm, "callbacks", [callback])


async def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds (litellm runs success callbacks in the background), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


class _OwnCallsLogger(CustomLogger):
    """A litellm callback keeping a record of each successful call started after it was made: this test's own.

    litellm's logging worker carries success callbacks still pending when a test's
    event loop ended onto the next loop, where they reach whatever callback is
    listening then; a previous test's late call would break this test's exact counts.
    Subclasses say what to keep of a call in :meth:`record`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.since = datetime.datetime.now()  # litellm stamps each call's start with datetime.now()
        self.calls: list[dict[str, Any]] = []

    def record(self, kwargs: Any, response_obj: Any) -> dict[str, Any]:
        raise NotImplementedError

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        if start_time >= self.since:  # a previous test's calls started before this logger was made
            self.calls.append(self.record(kwargs, response_obj))


class _Recorder(_OwnCallsLogger):
    """A litellm callback keeping the metadata of every successful call of this test."""

    def record(self, kwargs: Any, response_obj: Any) -> dict[str, Any]:
        slo = kwargs.get("standard_logging_object") or {}
        return {
            "metadata": dict((kwargs.get("litellm_params") or {}).get("metadata") or {}),
            "spend_logs_metadata": (slo.get("metadata") or {}).get("spend_logs_metadata"),
        }


async def test_callbacks_can_group_the_candidates_of_one_decision(
    stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer_samplers(stub, "Lyon. score=1", "Paris. score=5", "Nice. score=2")
    recorder = _Recorder()
    _listen(monkeypatch, recorder)
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")

    async with openai.AsyncOpenAI(base_url=stub.base_url, api_key="sk-test") as client:
        first = await guarded_acompletion(guard, n=3, metadata={"app": "faq"}, **_kwargs(stub, client))
        second = await guarded_acompletion(guard, n=2, **_kwargs(stub, client))
    await guard.aclose()
    await _until(lambda: len(recorder.calls) >= 5)

    decisions: list[Decision] = [r._hidden_params["ra_guard_decision"] for r in (first, second)]
    groups = {c.response_id.split("-")[0] for d in decisions for c in d.candidates if c.response_id}
    assert len(groups) == 2  # each decision's candidates share one group id, distinct per decision
    by_group: dict[str, list[int]] = {}
    for call in recorder.calls:
        metadata = call["metadata"]
        by_group.setdefault(metadata["ra_guard_group_id"], []).append(metadata["ra_guard_candidate"])
        assert call["spend_logs_metadata"]["ra_guard_group_id"] == metadata["ra_guard_group_id"]
    assert sorted(sorted(v) for v in by_group.values()) == [[1, 2], [1, 2, 3]]
    assert set(by_group) == groups
    assert all(
        c["metadata"]["app"] == "faq" for c in recorder.calls if len(by_group[c["metadata"]["ra_guard_group_id"]]) == 3
    )


def test_sync_first_call_leaves_no_connection_unclosed(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "Lyon. score=1", "Paris. score=5")
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")
    # A key of its own: litellm's client cache is cold for it, as on a program's first call.
    kwargs = {"model": "openai/ra-stub", "api_base": stub.base_url, "api_key": f"sk-{uuid.uuid4().hex}"}
    unclosed_after_collection()

    for _ in range(2):
        response = guarded_completion(guard, n=4, messages=MESSAGES, **kwargs)
        assert response.choices[0].message.content == "Paris. score=5"
    guard.close()

    assert unclosed_after_collection() == []
    assert len([r for r in stub.requests if r.kind == "sampler"]) == 8


# Per-call prices (litellm's custom pricing): sampler and judge priced apart, no global price table touched.
SAMPLER_PRICE = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
JUDGE_PRICE = {"input_cost_per_token": 3e-6, "output_cost_per_token": 7e-6}


class _CostRecorder(_OwnCallsLogger):
    """A litellm callback keeping, per successful call of this test, its logged cost, the answer's id and tokens."""

    def record(self, kwargs: Any, response_obj: Any) -> dict[str, Any]:
        metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        return {
            "group": metadata.get("ra_guard_group_id"),
            "cost": kwargs["response_cost"],
            "id": response_obj.id,
            "tokens": response_obj.usage.total_tokens,
        }

    async def settled(self, count: int) -> None:
        """Wait for ``count`` calls (litellm runs success callbacks in the background), then a little longer."""
        await _until(lambda: len(self.calls) >= count)
        await asyncio.sleep(0.2)  # an extra event (the guarded response logged again) would land here


async def test_response_cost_is_every_call_and_the_winner_apart(
    stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer_samplers(stub, "Lyon. score=1", "Paris, the capital. score=5", "Nice. score=2")
    recorder = _CostRecorder()
    _listen(monkeypatch, recorder)
    judge = LiteLLMJudge("openai/ra-stub", api_base=stub.base_url, api_key="sk-test", **JUDGE_PRICE)
    guard = Guard(policies=[POLICY], judge=judge)
    async with openai.AsyncOpenAI(base_url=stub.base_url, api_key="sk-test") as client:
        response = await guarded_acompletion(guard, n=3, **SAMPLER_PRICE, **_kwargs(stub, client))
    decision: Decision = response._hidden_params["ra_guard_decision"]
    await recorder.settled(3 + decision.judge_calls)
    await guard.aclose()

    # litellm logged each call once, with its own cost, and never the guarded response: no double count
    candidates = [c for c in recorder.calls if c["group"] is not None]
    judged = [c for c in recorder.calls if c["group"] is None]
    assert len(candidates) == 3 and len(judged) == decision.judge_calls >= 1
    assert all(c["cost"] > 0 for c in recorder.calls)
    spent = sum(c["cost"] for c in recorder.calls)
    (winner_call,) = [c for c in candidates if c["id"] == response.id]
    assert winner_call["cost"] < spent / 3  # the winner alone is far from the whole spend

    hidden = response._hidden_params
    assert hidden["response_cost"] == pytest.approx(spent)
    assert hidden["ra_guard_winner_cost"] == pytest.approx(winner_call["cost"])
    assert hidden["ra_guard_judge_cost"] == pytest.approx(sum(c["cost"] for c in judged))
    assert hidden["ra_guard_cost_unpriced"] == []
    assert response.ra_guard["total_cost"] == pytest.approx(spent)
    assert response.ra_guard["winner_cost"] == pytest.approx(winner_call["cost"])
    assert response.ra_guard["candidates_cost"] == pytest.approx(sum(c["cost"] for c in candidates))
    assert response.model_dump()["ra_guard"]["judge_cost"] == pytest.approx(sum(c["cost"] for c in judged))


async def test_a_judge_litellm_cannot_price_is_named_not_guessed(
    stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer_samplers(stub, "Lyon. score=1", "Paris. score=5")
    recorder = _CostRecorder()
    _listen(monkeypatch, recorder)
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")  # a RewardAnything server, not litellm
    async with openai.AsyncOpenAI(base_url=stub.base_url, api_key="sk-test") as client:
        response = await guarded_acompletion(guard, n=2, **SAMPLER_PRICE, **_kwargs(stub, client))
    await recorder.settled(2)
    await guard.aclose()

    assert len(recorder.calls) == 2  # the judge's calls are not litellm's: no callback sees them
    assert response._hidden_params["response_cost"] == pytest.approx(sum(c["cost"] for c in recorder.calls))
    assert response.ra_guard["judge_cost"] is None
    decision: Decision = response._hidden_params["ra_guard_decision"]
    (unpriced,) = response.ra_guard["cost_unpriced"]
    assert "openai-compat" in unpriced and f"{decision.judge_usage.total_tokens} tokens" in unpriced


async def test_the_proxy_guardrail_reports_the_original_the_resampled_and_the_judge(
    stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the proxy, the client's answer cost the original call too: a re-sampled winner's totals include it."""
    from litellm.router import Router

    from ra_guard.integrations.litellm import guardrail

    is_sampler = lambda request: request.kind == "sampler"  # noqa: E731
    stub.script("No. score=1", "Lyon. score=2", "Paris, the capital. score=5", when=is_sampler)
    recorder = _CostRecorder()
    _listen(monkeypatch, recorder)
    # A model name of this test's own: a Router registers its deployments' models in litellm's global price
    # table (this one with no list price), which would change the cost of later calls to the same name.
    model = "openai/ra-stub-proxy-cost"
    deployment = {"model": model, "api_base": stub.base_url, "api_key": "sk-test", **SAMPLER_PRICE}
    router = Router(model_list=[{"model_name": "assistant", "litellm_params": deployment}])
    monkeypatch.setattr(guardrail, "_proxy_router", lambda: router)  # the proxy's own router, found at call time
    judge = LiteLLMJudge("openai/ra-stub", api_base=stub.base_url, api_key="sk-test", **JUDGE_PRICE)
    hook = guardrail.RaGuardGuardrail(
        policies=[Policy(name="correct", principle="Correct.", min_score=4)],
        judge=judge,
        guardrail_name="ra-guard-cost",
        event_hook="post_call",
        candidates=2,
    )
    data = {"model": "assistant", "messages": MESSAGES}

    original = await router.acompletion(**data)  # the answer the proxy got first
    out = await hook.async_post_call_success_hook(data, None, original)
    await recorder.settled(1 + 2 + out.ra_guard["judge_calls"])
    await judge.aclose()

    assert out.choices[0].message.content == "Paris, the capital. score=5" and out.ra_guard["action"] == "replaced"
    assert len(recorder.calls) == 1 + 2 + out.ra_guard["judge_calls"]  # each call logged once, by litellm
    (winner_call,) = [c for c in recorder.calls if c["id"] == out.id]
    # the whole spend includes the original call, which the client's request paid for too
    assert out._hidden_params["response_cost"] == pytest.approx(sum(c["cost"] for c in recorder.calls))
    assert out.ra_guard["total_cost"] == out._hidden_params["response_cost"]
    assert out.usage.total_tokens == sum(c["tokens"] for c in recorder.calls)
    assert out.ra_guard["total_usage"]["total_tokens"] == out.usage.total_tokens
    assert out._hidden_params["ra_guard_winner_cost"] == pytest.approx(winner_call["cost"])
    assert out.ra_guard["winner_usage"]["total_tokens"] == winner_call["tokens"]


async def test_every_retry_is_in_the_cost(stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    is_sampler = lambda request: request.kind == "sampler"  # noqa: E731
    stub.script("Lyon. score=1", "Paris, the capital. score=5", when=is_sampler)
    recorder = _CostRecorder()
    _listen(monkeypatch, recorder)
    policy = Policy(name="correct", principle="The answer is factually correct.", min_score=4)
    guard = Guard(policies=[policy], judge=f"openai-compat:{stub.base_url}", strategy=RetryWithFeedback(n=1))
    async with openai.AsyncOpenAI(base_url=stub.base_url, api_key="sk-test") as client:
        response = await guarded_acompletion(guard, **SAMPLER_PRICE, **_kwargs(stub, client))
    await recorder.settled(2)
    await guard.aclose()

    assert response.ra_guard["attempts"] == 2 and len(recorder.calls) == 2
    (winner_call,) = [c for c in recorder.calls if c["id"] == response.id]
    assert response._hidden_params["response_cost"] == pytest.approx(sum(c["cost"] for c in recorder.calls))
    assert response._hidden_params["ra_guard_winner_cost"] == pytest.approx(winner_call["cost"])


async def test_a_model_without_a_price_has_no_cost_and_says_why(stub: OpenAIStubServer) -> None:
    answer_samplers(stub, "Lyon. score=1", "Paris. score=5")
    guard = Guard(policies=[POLICY], judge=f"openai-compat:{stub.base_url}")
    async with openai.AsyncOpenAI(base_url=stub.base_url, api_key="sk-test") as client:
        kwargs = {**_kwargs(stub, client), "model": "openai/ra-stub-unpriced"}  # a name in no price table
        response = await guarded_acompletion(guard, n=2, **kwargs)
    await guard.aclose()

    assert response._hidden_params["response_cost"] is None  # unknown, not 0 and not a guess
    assert response.ra_guard["total_cost"] is None and response.ra_guard["winner_cost"] is None
    candidates, judge = response.ra_guard["cost_unpriced"]
    assert candidates.startswith("2 of 2 candidate calls") and judge.startswith("judge openai-compat")
