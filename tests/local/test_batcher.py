"""The dynamic batcher behind the local judge: batching, isolation of results, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ra_guard.local._batcher import MicroBatcher


async def test_concurrent_submissions_form_batches_up_to_the_limit() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda xs: [x * 10 for x in xs], max_batch_size=4, max_wait_s=0.2)
    results = await asyncio.gather(*(batcher.asubmit(i) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    assert sum(batcher.batch_sizes) == 10 and max(batcher.batch_sizes) == 4
    batcher.close()


async def test_a_failed_item_fails_only_its_caller() -> None:
    def process(items: list[int]) -> list[int | BaseException]:
        return [ValueError(f"bad {x}") if x == 2 else x for x in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(process, max_wait_s=0.1)
    results = await asyncio.gather(*(batcher.asubmit(i) for i in range(4)), return_exceptions=True)
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], ValueError)
    batcher.close()


async def test_a_failed_batch_fails_every_caller() -> None:
    def process(items: list[int]) -> list[int]:
        raise RuntimeError("model crashed")

    batcher: MicroBatcher[int, int] = MicroBatcher(process, max_wait_s=0.05)
    results = await asyncio.gather(*(batcher.asubmit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    batcher.close()


async def test_cancelled_callers_are_left_out_of_later_batches() -> None:
    release = threading.Event()
    seen: list[list[int]] = []

    def process(items: list[int]) -> list[int]:
        seen.append(list(items))
        release.wait(5)
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(process, max_batch_size=1, max_wait_s=0)
    first = asyncio.ensure_future(batcher.asubmit(1))
    await asyncio.sleep(0.05)  # the first batch is running
    second = asyncio.ensure_future(batcher.asubmit(2))
    await asyncio.sleep(0.01)
    second.cancel()
    await asyncio.sleep(0.05)  # the cancellation reaches the queued future on a later loop iteration
    release.set()
    assert await first == 1
    with pytest.raises(asyncio.CancelledError):
        await second
    time.sleep(0.05)
    assert seen == [[1]]
    batcher.close()


def test_close_then_submit_starts_a_new_worker() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda xs: xs, max_wait_s=0)
    assert batcher.submit(1).result(5) == 1
    batcher.close(5)
    assert batcher.submit(2).result(5) == 2
    batcher.close(5)


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(lambda xs: xs, max_batch_size=0)
    with pytest.raises(ValueError):
        MicroBatcher(lambda xs: xs, max_wait_s=-1)
