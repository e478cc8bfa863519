"""LiteLLMSampler against servers that reject ``n`` or hang on one call (llama.cpp-like faults)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from ra_guard import BestOfN, Guard, Policy
from ra_guard._warn import reset_fallback_warnings
from ra_guard.samplers.litellm import LiteLLMSampler
from ra_guard.testing import FunctionJudge
from ra_guard.types import Sample
from tests.support.openai_server import Fault, OpenAIStubServer, RecordedRequest

pytestmark = pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning")

MESSAGES = [{"role": "user", "content": "Name a colour"}]
LLAMA_CPP_N = "Value must be between 1 <= value <= 2, but got 4"


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    reset_fallback_warnings()  # warnings are rate-limited per sampler name; each test starts clean


def _sampler(server: OpenAIStubServer, **kwargs: Any) -> LiteLLMSampler:
    kwargs.setdefault("max_retries", 0)
    return LiteLLMSampler("openai/gen", api_base=server.base_url, api_key="x", **kwargs)


def _asks_n(request: RecordedRequest) -> bool:
    return request.kind == "sampler" and (request.body or {}).get("n", 1) > 1


async def test_a_server_rejecting_n_gets_parallel_single_calls_remembered(
    openai_server: OpenAIStubServer, caplog: pytest.LogCaptureFixture
) -> None:
    openai_server.script(*[Fault.error(400, retry_after=None, message=LLAMA_CPP_N)] * 5, when=_asks_n)
    sampler = _sampler(openai_server)
    with caplog.at_level(logging.WARNING, logger="ra_guard"):
        first = await sampler.asample(MESSAGES, n=4, temperature=0.7)

    assert len(first) == 4 and sampler.n_supported is False
    assert [r.body.get("n") for r in openai_server.requests] == [4, None, None, None, None]
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("ra_guard")]
    assert any("n_unsupported" in w and LLAMA_CPP_N in w for w in warnings)

    openai_server.reset()
    assert len(await sampler.asample(MESSAGES, n=4)) == 4
    assert [r.body.get("n") for r in openai_server.requests] == [None] * 4  # remembered: n is not sent again


async def test_best_of_4_decision_survives_a_server_rejecting_n(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.error(400, retry_after=None, message=LLAMA_CPP_N), when=_asks_n)
    guard = Guard(
        policies=[Policy(name="any", principle="Answer.")],
        judge=FunctionJudge(lambda request: {name: 3 for name in request.responses}),
        sampler=_sampler(openai_server),
        strategy=BestOfN(n=4),
    )
    try:
        decision = await guard.arun(MESSAGES)
    finally:
        await guard.aclose()
    assert len(decision.candidates) == 4


async def test_stream_keeps_finished_samples_when_one_call_hangs(openai_server: OpenAIStubServer) -> None:
    openai_server.script(Fault.error(400, retry_after=None, message=LLAMA_CPP_N), when=_asks_n)
    # The hung call outlasts every wait below (120 s): only cancelling it can end it in time.
    openai_server.script("red", "blue", Fault.hang(120), "green", when=lambda r: r.kind == "sampler")
    sampler = _sampler(openai_server, timeout=120)
    got: list[Sample] = []
    three_in = asyncio.Event()

    async def consume() -> None:
        async for sample in sampler.astream_samples(MESSAGES, n=4):
            got.append(sample)
            if len(got) == 3:
                three_in.set()

    stream, arrived = asyncio.ensure_future(consume()), asyncio.ensure_future(three_in.wait())
    try:
        # Three samples in by 10 s were yielded without waiting for the hung call. The wait ends as soon as they
        # are in (a fixed 1.5 s had the 400, its fallback and three calls race a loaded machine).
        await asyncio.wait({stream, arrived}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert sorted(s.text for s in got) == ["blue", "green", "red"]
        # ...and the stream stays open on the hung call: it neither ends nor fails.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(stream), 0.5)
        assert len(got) == 3
    finally:
        cancelled_at = time.monotonic()
        stream.cancel()
        arrived.cancel()
        await asyncio.gather(stream, arrived, return_exceptions=True)
    # Leaving the stream cancelled the hung call: its connection closes and the server sees it go, within 30 s of
    # leaving and not after the call's 120 s.
    while openai_server.in_flight.get("sampler", 0) and time.monotonic() < cancelled_at + 30:
        await asyncio.sleep(0.02)
    assert openai_server.in_flight.get("sampler", 0) == 0
    assert time.monotonic() - cancelled_at < 30


async def test_stream_with_n_honoured_yields_every_choice(openai_server: OpenAIStubServer) -> None:
    sampler = _sampler(openai_server)
    texts = [s.text async for s in sampler.astream_samples(MESSAGES, n=3)]
    assert texts == [f"answer {i} to: Name a colour" for i in range(3)]
    assert len(openai_server.requests) == 1 and sampler.n_supported is True
