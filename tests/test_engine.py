"""The decision engine: a judging round, failures in place per policy, settings not the guard.

A judge that batches (``Judge.batches``) gets a round's requests in one
``ajudge_many`` call; any other gets one ``ajudge`` call per request, side by
side, so that each policy keeps its own span, retries and deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from ra_guard import BestOfN, Budget, ConfigurationError, Guard, InputError, JudgeError, Policy, Sample, Verdict
from ra_guard.engine import DecisionRun, RunSettings
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.judges.rewardanything_server import RewardAnythingServerJudge
from ra_guard.strategies import Check, Strategy
from ra_guard.tracing import DecisionTracer
from tests.support.openai_server import OpenAIStubServer

SHORT = "Paris."
LONG = "The capital of France is Paris, on the Seine, home to the Louvre."
BRIEF = Policy(name="brief", principle="Be brief.")
THOROUGH = Policy(name="thorough", principle="Be thorough.")


def by_principle(principle: str, prompt: str, responses: Mapping[str, str]) -> dict[str, int]:
    """The stub server's judge: brevity wins under "Be brief.", length under "Be thorough."."""
    brief = principle == BRIEF.principle
    return {name: (5 if (text == SHORT) == brief else 2) for name, text in responses.items()}


class Batching(Judge):
    """Answers ``ajudge_many`` itself (as a batching backend does), failing the requests for some principles."""

    name = "batching"
    batches = True

    def __init__(self, *, failing: Sequence[str] = ()) -> None:
        self.failing = set(failing)
        self.calls: list[list[str]] = []

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        (answer,) = await self.ajudge_many([request])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def ajudge_many(self, requests: Sequence[JudgeRequest]) -> list[Verdict | BaseException]:
        self.calls.append([r.principle for r in requests])
        return [self._answer(r) for r in requests]

    def _answer(self, request: JudgeRequest) -> Verdict | BaseException:
        if request.principle in self.failing:
            return JudgeError("the batch lost this request", judge=self.name)
        scores = {name: 5.0 if text == SHORT else 2.0 for name, text in request.responses.items()}
        return Verdict(scores=scores, ranking=sorted(scores, key=lambda n: -scores[n]))


# -- one batch per round ------------------------------------------------------------------------------


async def test_a_guard_sends_every_policy_through_one_reference_server_batch() -> None:
    with OpenAIStubServer(scorer=by_principle, batch_reversed=True) as server:
        judge = RewardAnythingServerJudge(server.root_url, batch=True, max_retries=0)
        try:
            decision = await Guard(policies=[BRIEF, THOROUGH], judge=judge).arerank("Capital of France?", [LONG, SHORT])
        finally:
            await judge.aclose()
        (sent,) = server.requests
    assert sent.route == "/api/rewardanything_batch"
    assert [item["principle"] for item in sent.body] == ["Be brief.", "Be thorough."]
    # Both policies' verdicts came back from the one call, each matched to its own policy.
    long, short = decision.candidates
    assert (short.scores["brief"].score, short.scores["thorough"].score) == (5.0, 2.0)
    assert (long.scores["brief"].score, long.scores["thorough"].score) == (2.0, 5.0)
    assert decision.judge_calls == 2 and not decision.degraded


async def test_a_round_is_one_ajudge_many_call_and_the_budget_bounds_its_requests() -> None:
    judge = Batching()
    third = Policy(name="third", principle="Be third.", on_judge_error="fail_open")
    guard = Guard(policies=[BRIEF, THOROUGH, third], judge=judge, budget=Budget(max_judge_calls=2))
    decision = await guard.arerank("q", [LONG, SHORT, SHORT])
    assert judge.calls == [["Be brief.", "Be thorough."]]  # the copy of SHORT is not sent again
    assert decision.judge_calls == 2
    assert [(f.kind, f.policy) for f in decision.fallbacks] == [("budget", "third")]
    assert decision.candidates[2].duplicate_of == 1 and decision.candidates[2].scores["brief"].score == 5.0


# -- failures come back in place ----------------------------------------------------------------------


async def test_a_request_failed_in_the_batch_fails_its_own_policy_only() -> None:
    judge = Batching(failing=["Be thorough."])
    closed = THOROUGH.model_copy(update={"on_judge_error": "fail_closed"})
    guard = Guard(policies=[BRIEF, closed], judge=judge, on_all_rejected="return_best")
    decision = await guard.arerank("q", [LONG, SHORT])

    assert judge.calls == [["Be brief.", "Be thorough."]]
    long, short = decision.candidates
    # The failed policy's fail_closed applies: every candidate vetoed, its error kept.
    assert all(
        c.scores["thorough"].vetoed and "lost this request" in (c.scores["thorough"].error or "") for c in [long, short]
    )
    # The other policy's verdict is kept and still picks the winner among the vetoed.
    assert (short.scores["brief"].score, long.scores["brief"].score) == (5.0, 2.0)
    assert decision.text == SHORT and not decision.passed
    assert [(f.kind, f.policy) for f in decision.fallbacks] == [("judge_error", "thorough"), ("all_rejected", None)]


async def test_a_fail_open_policy_failed_in_the_batch_is_ignored_and_the_rest_decides() -> None:
    judge = Batching(failing=["Be brief."])
    decision = await Guard(policies=[BRIEF, THOROUGH], judge=judge).arerank("q", [LONG, SHORT])
    long, short = decision.candidates
    assert long.scores["brief"].score is None and long.scores["brief"].passed and not long.vetoed
    assert (long.scores["thorough"].score, short.scores["thorough"].score) == (2.0, 5.0)
    assert decision.text == SHORT
    assert decision.degraded and [(f.kind, f.policy) for f in decision.fallbacks] == [("judge_error", "brief")]


async def test_an_ajudge_many_that_breaks_its_contract_fails_every_request_of_the_round() -> None:
    class Short(Batching):
        async def ajudge_many(self, requests: Sequence[JudgeRequest]) -> list[Verdict | BaseException]:
            return (await super().ajudge_many(requests))[:1]

    class Raising(Batching):
        async def ajudge_many(self, requests: Sequence[JudgeRequest]) -> list[Verdict | BaseException]:
            raise RuntimeError("batch endpoint crashed")

    short = await Guard(policies=[BRIEF, THOROUGH], judge=Short()).arerank("q", [LONG, SHORT])
    assert [f.policy for f in short.fallbacks] == ["brief", "thorough"]
    assert "Short.ajudge_many returned 1 answers for 2 requests" in short.fallbacks[0].reason
    raised = await Guard(policies=[BRIEF, THOROUGH], judge=Raising()).arerank("q", [LONG, SHORT])
    assert [f.reason for f in raised.fallbacks] == ["judge raised RuntimeError('batch endpoint crashed')"] * 2


async def test_the_deadline_fails_every_request_still_in_the_round() -> None:
    class Slow(Batching):
        async def ajudge_many(self, requests: Sequence[JudgeRequest]) -> list[Verdict | BaseException]:
            await asyncio.sleep(5)
            return await super().ajudge_many(requests)

    guard = Guard(policies=[BRIEF, THOROUGH], judge=Slow(), budget=Budget(deadline_s=0.2))
    started = time.perf_counter()
    decision = await guard.arerank("q", [LONG, SHORT])
    assert time.perf_counter() - started < 2
    assert [(f.kind, f.policy) for f in decision.fallbacks] == [("deadline", "brief"), ("deadline", "thorough")]
    assert decision.chosen_index == 0 and decision.candidates[0].combined is None


class PerPolicy(Judge):
    """A judge that does not batch: one ``ajudge`` per request, the "Be thorough." one slow."""

    name = "per-policy"

    def __init__(self, *, slow_s: float = 0.0) -> None:
        self.slow_s = slow_s
        self.many_calls = 0

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        if request.principle == THOROUGH.principle:
            await asyncio.sleep(self.slow_s)
        scores = {name: 5.0 if text == SHORT else 2.0 for name, text in request.responses.items()}
        return Verdict(scores=scores, ranking=sorted(scores, key=lambda n: -scores[n]))

    async def ajudge_many(self, requests: Sequence[JudgeRequest]) -> list[Verdict | BaseException]:
        self.many_calls += 1
        return await super().ajudge_many(requests)


async def test_a_judge_that_does_not_batch_keeps_each_policys_verdict_under_the_deadline() -> None:
    judge = PerPolicy(slow_s=5)
    guard = Guard(policies=[BRIEF, THOROUGH], judge=judge, budget=Budget(deadline_s=0.3))
    started = time.perf_counter()
    decision = await guard.arerank("q", [LONG, SHORT])
    assert time.perf_counter() - started < 2
    # The fast policy's verdict stands; only the slow one missed the deadline.
    assert [(f.kind, f.policy) for f in decision.fallbacks] == [("deadline", "thorough")]
    assert decision.chosen_index == 1 and decision.candidates[1].scores["brief"].score == 5.0
    assert judge.many_calls == 0  # one ajudge per request, not one batch call


def test_a_judge_that_does_not_batch_has_each_call_inside_its_own_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: dict[str, int] = {}

    class SpanAware(PerPolicy):
        async def ajudge(self, request: JudgeRequest) -> Verdict:
            from opentelemetry import trace

            seen[request.principle] = trace.get_current_span().get_span_context().span_id
            return await super().ajudge(request)

    guard = Guard(policies=[BRIEF, THOROUGH], judge=SpanAware(), tracer=DecisionTracer(provider))
    guard.rerank("q", [LONG, SHORT])
    provider.shutdown()
    spans = {
        s.attributes["ra_guard.policy"]: s.context.span_id  # type: ignore[index]
        for s in exporter.get_finished_spans()
        if s.name == "chat per-policy"
    }
    # A backend's retries and HTTP spans land on the current span: it must be that policy's judge span.
    assert seen == {BRIEF.principle: spans["brief"], THOROUGH.principle: spans["thorough"]}


async def test_a_timeout_the_judge_raises_itself_is_a_judge_error_not_the_deadline() -> None:
    class TimesOut(PerPolicy):
        async def ajudge(self, request: JudgeRequest) -> Verdict:
            raise TimeoutError("the judge's own read timeout")

    guard = Guard(policies=[BRIEF], judge=TimesOut(), budget=Budget(deadline_s=30))
    decision = await guard.arerank("q", [LONG, SHORT])
    assert [(f.kind, f.policy) for f in decision.fallbacks] == [("judge_error", "brief")]


# -- the engine's interface -----------------------------------------------------------------------------


async def test_a_strategy_drives_a_run_built_from_settings_alone() -> None:
    class ShortestGiven(Strategy):
        """Adds two texts, judges them, and notes which passes: only the engine's interface."""

        name = "shortest_given"

        async def decide(self, run: DecisionRun) -> None:
            indexes = run.add([Sample(text=LONG), Sample(text=SHORT)], source="given", attempt=1)
            await run.judge(indexes)
            best = run.best()
            assert best is not None and run.judged(best) and not run.can_sample
            run.note(f"best passes: {run.passes(best)}")

    settings = RunSettings(
        guard_name="engine-only", policies=(BRIEF,), judge=Batching(), budget=Budget(), tracer=DecisionTracer()
    )
    run = DecisionRun(settings, [{"role": "user", "content": "q"}], sampler=None, n_override=None, prompt="q")
    await ShortestGiven().decide(run)
    decision = run.finish(strategy="shortest_given", started=time.perf_counter(), trace_id=None)
    assert decision.text == SHORT and decision.notes == ["best passes: True"]
    with pytest.raises(AttributeError):
        settings.judge = Batching()  # type: ignore[misc]


# -- tracing a round, cancelling it ------------------------------------------------------------------


def test_each_request_of_a_round_has_its_own_sibling_span_with_its_own_outcome() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    guard = Guard(policies=[BRIEF, THOROUGH], judge=Batching(failing=["Be thorough."]), tracer=DecisionTracer(provider))
    guard.rerank("q", [LONG, SHORT])
    provider.shutdown()

    ended = exporter.get_finished_spans()
    (root,) = [s for s in ended if s.parent is None]
    judges = {s.attributes["ra_guard.policy"]: s for s in ended if s.name == "chat batching"}  # type: ignore[index]
    assert set(judges) == {"brief", "thorough"}
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in judges.values())
    assert judges["brief"].status.status_code is StatusCode.UNSET
    brief = judges["brief"].attributes or {}
    scores = zip(brief["ra_guard.judge.score_names"], brief["ra_guard.judge.scores"], strict=True)  # type: ignore[call-overload]
    assert dict(scores)["candidate-1"] == 5.0
    assert judges["thorough"].status.status_code is StatusCode.ERROR
    assert judges["thorough"].attributes["error.type"] == "JudgeError"  # type: ignore[index]


async def test_a_cancelled_round_ends_its_spans_and_cancels_the_call() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    started = asyncio.Event()

    class Hung(Batching):
        async def ajudge_many(self, requests: Sequence[JudgeRequest]) -> list[Verdict | BaseException]:
            started.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    guard = Guard(policies=[BRIEF, THOROUGH], judge=Hung(), tracer=DecisionTracer(provider))
    task = asyncio.ensure_future(guard.arerank("q", [LONG, SHORT]))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    provider.shutdown()
    ended = exporter.get_finished_spans()
    judges = [s for s in ended if s.name == "chat batching"]
    assert len(judges) == 2 and all(s.attributes["error.type"] == "CancelledError" for s in judges)  # type: ignore[index]
    assert len(ended) == 3  # the decision's root span ended too


# -- public names --------------------------------------------------------------------------------------


def test_budget_is_one_class_under_every_name_it_had() -> None:
    import ra_guard
    import ra_guard.budget
    import ra_guard.guard

    assert ra_guard.Budget is ra_guard.guard.Budget is ra_guard.budget.Budget


def test_check_refuses_a_bad_mode_output_or_follow_up_strategy() -> None:
    with pytest.raises(ConfigurationError, match="mode must be"):
        Check("x", then=BestOfN(), mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="output"):
        Check(None, then=BestOfN())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"Check\.then must be a Strategy"):
        Check("x", then="best_of_n")  # type: ignore[arg-type]
