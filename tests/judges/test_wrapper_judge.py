"""``WrapperJudge`` forwards the whole ``Judge`` contract: one test per forwarded thing, each failing if dropped."""

from __future__ import annotations

from collections.abc import Sequence

from ra_guard.judges.base import Judge, JudgeRequest, WrapperJudge
from ra_guard.testing import FunctionJudge
from ra_guard.verdict import Verdict

REQUEST = JudgeRequest(principle="p", prompt="q", responses={"a": "x", "b": "y"})


class Recording(Judge):
    """A judge whose every capability leaves a trace a default implementation would not."""

    name = "recording"
    model = "recording-model"
    batches = True

    def __init__(self) -> None:
        self.singles = 0
        self.batch_sizes: list[int] = []
        self.pings = 0
        self.closed = False

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        self.singles += 1
        return Verdict(scores={"a": 5.0, "b": 1.0}, ranking=["a", "b"], model="inner-verdict")

    async def ajudge_many(self, requests: Sequence[JudgeRequest]) -> list[Verdict | BaseException]:
        self.batch_sizes.append(len(requests))  # one batch, not single calls side by side
        return [Verdict(scores={"a": 1.0, "b": 5.0}, ranking=["b", "a"]) for _ in requests]

    async def aping(self) -> None:
        self.pings += 1  # a cheap health check, not a judge call

    async def aclose(self) -> None:
        self.closed = True


async def test_ajudge_is_forwarded() -> None:
    inner = Recording()
    verdict = await WrapperJudge(inner).ajudge(REQUEST)
    assert (verdict.model, inner.singles) == ("inner-verdict", 1)


async def test_ajudge_many_is_forwarded_as_one_batch() -> None:
    inner = Recording()
    verdicts = await WrapperJudge(inner).ajudge_many([REQUEST, REQUEST, REQUEST])
    assert inner.batch_sizes == [3] and inner.singles == 0  # the default would have made three single calls
    assert all(isinstance(v, Verdict) and v.best == "b" for v in verdicts)


async def test_aping_is_forwarded() -> None:
    inner = Recording()
    await WrapperJudge(inner).aping()
    assert (inner.pings, inner.singles) == (1, 0)  # the default would have sent a judge call


def test_ping_goes_through_the_forwarded_aping() -> None:
    inner = Recording()
    WrapperJudge(inner).ping()
    assert inner.pings == 1


async def test_aclose_is_forwarded() -> None:
    inner = Recording()
    await WrapperJudge(inner).aclose()
    assert inner.closed


def test_close_goes_through_the_forwarded_aclose() -> None:
    inner = Recording()
    WrapperJudge(inner).close()
    assert inner.closed


def test_name_is_forwarded_live_and_naming_the_wrapper_renames_only_it() -> None:
    inner = Recording()
    wrapper = WrapperJudge(inner)
    assert wrapper.name == "recording"
    inner.name = "renamed"
    assert wrapper.name == "renamed"
    wrapper.name = "traced:renamed"
    assert (wrapper.name, inner.name) == ("traced:renamed", "renamed")


def test_model_is_forwarded_live() -> None:
    inner = Recording()
    wrapper = WrapperJudge(inner)
    assert wrapper.model == "recording-model"
    inner.model = "discovered-later"
    assert wrapper.model == "discovered-later"
    wrapper.model = "set-through-the-wrapper"
    assert inner.model == "set-through-the-wrapper"


async def test_a_subclass_that_adds_behaviour_sees_batched_requests() -> None:
    seen: list[JudgeRequest] = []

    class Logged(WrapperJudge):
        async def ajudge(self, request: JudgeRequest) -> Verdict:
            seen.append(request)
            return await self.wrapped.ajudge(request)

    await Logged(Recording()).ajudge_many([REQUEST, REQUEST])
    assert len(seen) == 2


def test_model_is_declared_on_the_base() -> None:
    assert "model" in Judge.__dict__ and Judge.model is None
    assert FunctionJudge(lambda r: {}).model is None


def test_batches_is_forwarded_where_batches_reach_the_wrapped_judge() -> None:
    class Logged(WrapperJudge):
        async def ajudge(self, request: JudgeRequest) -> Verdict:
            return await self.wrapped.ajudge(request)

    assert WrapperJudge(Recording()).batches is True
    assert WrapperJudge(FunctionJudge(lambda r: {})).batches is False
    # A subclass that wraps ajudge batches through it, one call per request: no batch call.
    assert Logged(Recording()).batches is False
