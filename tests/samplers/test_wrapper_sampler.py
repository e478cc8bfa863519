"""``WrapperSampler`` forwards the whole ``Sampler`` contract: one test per forwarded thing, each failing if dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ra_guard.samplers import FunctionSampler, Sampler, WrapperSampler
from ra_guard.types import Messages, Sample

MESSAGES: Messages = [{"role": "user", "content": "hi"}]


class Recording(Sampler):
    """A sampler whose streaming differs from its batch call, so a dropped forward shows."""

    name = "recording"
    model = "recording-model"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.closed = False

    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        self.calls.append(f"asample t={temperature}")
        return [Sample(text=f"batch {i}") for i in range(n)]

    async def astream_samples(
        self, messages: Messages, *, n: int, temperature: float | None = None
    ) -> AsyncIterator[Sample]:
        self.calls.append(f"stream t={temperature}")
        for i in range(n):
            yield Sample(text=f"streamed {i}")

    async def aclose(self) -> None:
        self.closed = True


async def test_asample_is_forwarded() -> None:
    inner = Recording()
    samples = await WrapperSampler(inner).asample(MESSAGES, n=2, temperature=0.3)
    assert [s.text for s in samples] == ["batch 0", "batch 1"]
    assert inner.calls == ["asample t=0.3"]


def test_sample_goes_through_the_forwarded_asample() -> None:
    inner = Recording()
    assert [s.text for s in WrapperSampler(inner).sample(MESSAGES, n=1)] == ["batch 0"]


async def test_astream_samples_is_forwarded() -> None:
    inner = Recording()
    texts = [s.text async for s in WrapperSampler(inner).astream_samples(MESSAGES, n=2, temperature=0.5)]
    assert texts == ["streamed 0", "streamed 1"]  # the default would have streamed the batch call
    assert inner.calls == ["stream t=0.5"]


async def test_aclose_is_forwarded() -> None:
    inner = Recording()
    await WrapperSampler(inner).aclose()
    assert inner.closed


def test_close_goes_through_the_forwarded_aclose() -> None:
    inner = Recording()
    WrapperSampler(inner).close()
    assert inner.closed


def test_name_is_forwarded_live_and_naming_the_wrapper_renames_only_it() -> None:
    inner = Recording()
    wrapper = WrapperSampler(inner)
    assert wrapper.name == "recording"
    inner.name = "renamed"
    assert wrapper.name == "renamed"
    wrapper.name = "cached:renamed"
    assert (wrapper.name, inner.name) == ("cached:renamed", "renamed")


def test_model_is_forwarded_live() -> None:
    inner = Recording()
    wrapper = WrapperSampler(inner)
    assert wrapper.model == "recording-model"
    inner.model = "gpt-next"
    assert wrapper.model == "gpt-next"
    wrapper.model = "set-through-the-wrapper"
    assert inner.model == "set-through-the-wrapper"


async def test_a_subclass_that_adds_behaviour_sees_streamed_calls() -> None:
    class Shouting(WrapperSampler):
        async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
            samples = await self.wrapped.asample(messages, n=n, temperature=temperature)
            return [s.model_copy(update={"text": s.text.upper()}) for s in samples]

    texts = [s.text async for s in Shouting(Recording()).astream_samples(MESSAGES, n=2)]
    assert texts == ["BATCH 0", "BATCH 1"]  # the guard streams: the subclass's behaviour must apply


def test_model_is_declared_on_the_base() -> None:
    assert "model" in Sampler.__dict__ and Sampler.model is None
    assert FunctionSampler(lambda m, i: "x").model is None
