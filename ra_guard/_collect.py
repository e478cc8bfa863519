"""Collecting a sampler's samples for the decision engine, under a deadline where there is one.

Without a deadline the engine takes :meth:`~ra_guard.samplers.base.Sampler.asample`
as it is. Under a deadline it consumes
:meth:`~ra_guard.samplers.base.Sampler.astream_samples` as samples finish, so
that what finished before the deadline is kept: once the share of the time
left for judging (``Budget.judge_reserve``) is reached and some samples have
finished, the rest are dropped; with none finished, it waits up to the deadline
for a first one. Every sample is checked to be a :class:`~ra_guard.types.Sample`.

Example:
    >>> import asyncio
    >>> from ra_guard.testing import FunctionSampler
    >>> out = []
    >>> asyncio.run(collect_samples(FunctionSampler(lambda m, i: f"s{i}"), [], n=2, temperature=None,
    ...                             out=out, remaining=lambda: None, judge_reserve=0.25))
    >>> [s.text for s in out]
    ['s0', 's1']
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from ra_guard.exceptions import SamplerError
from ra_guard.samplers.base import Sampler
from ra_guard.types import Messages, Sample

__all__ = ["checked_sample", "checked_samples", "collect_samples"]


def checked_sample(sampler: Sampler, sample: object) -> Sample:
    """``sample`` where it is a :class:`Sample`; otherwise a :class:`SamplerError` naming the sampler.

    Example:
        >>> from ra_guard.testing import FunctionSampler
        >>> checked_sample(FunctionSampler(lambda m, i: "x"), None)
        Traceback (most recent call last):
        ...
        ra_guard.exceptions.SamplerError: function: sampler returned None where a Sample was expected
    """
    if isinstance(sample, Sample):
        return sample
    got = "None" if sample is None else type(sample).__name__
    raise SamplerError(f"{sampler.name}: sampler returned {got} where a Sample was expected")


def checked_samples(sampler: Sampler, samples: Iterable[object]) -> list[Sample]:
    """Every one of ``samples`` checked by :func:`checked_sample`, as a new list (a bad one raises).

    Example:
        >>> from ra_guard.testing import FunctionSampler
        >>> [s.text for s in checked_samples(FunctionSampler(lambda m, i: "x"), [Sample(text="a")])]
        ['a']
    """
    checked: list[Sample] = []
    for sample in samples:
        # A plain loop (no generator per call): this runs per sampling call.
        checked.append(sample if isinstance(sample, Sample) else checked_sample(sampler, sample))
    return checked


async def collect_samples(
    sampler: Sampler,
    messages: Messages,
    *,
    n: int,
    temperature: float | None,
    out: list[Sample],
    remaining: Callable[[], float | None],
    judge_reserve: float,
) -> None:
    """Fill ``out`` with samples; ``TimeoutError`` when time ran out (``out`` keeps what finished).

    Args:
        sampler: The sampler asked for ``n`` samples at ``temperature``.
        messages: The conversation to sample for.
        n: Samples asked for.
        temperature: Sampling temperature (``None``: the sampler's default).
        out: Receives the samples as they finish.
        remaining: Seconds left before the decision's deadline (``None``: no deadline).
        judge_reserve: Share of the time left that late sampling leaves to judging.

    Raises:
        TimeoutError: The deadline (or the judge's reserve, with some samples in) was reached.
        SamplerError: The sampler failed or returned something that is not a Sample.
    """
    left = remaining()
    if left is None:
        # No deadline: nothing to rescue from a hung call, and asample keeps the sampler's order.
        out.extend(checked_samples(sampler, await sampler.asample(messages, n=n, temperature=temperature)))
        return
    arrived = asyncio.Event()

    async def drain() -> None:
        async for sample in sampler.astream_samples(messages, n=n, temperature=temperature):
            out.append(checked_sample(sampler, sample))
            arrived.set()

    task = asyncio.ensure_future(drain())
    try:
        # Late samples must leave the judge its share of the time: stop early if some finished.
        done, _ = await asyncio.wait({task}, timeout=left * (1.0 - judge_reserve))
        if not done and not out:  # nothing yet: wait for a first sample up to the deadline itself
            first = asyncio.ensure_future(arrived.wait())
            try:
                await asyncio.wait({task, first}, timeout=remaining(), return_when=asyncio.FIRST_COMPLETED)
            finally:
                first.cancel()
        if task.done():
            task.result()  # the sampler's own error, if it failed
            return
        raise asyncio.TimeoutError
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
