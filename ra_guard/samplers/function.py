"""Samplers built from users' own functions.

Example:
    >>> sampler = FunctionSampler(lambda messages, i: ["short", "a longer answer"][i % 2])
    >>> [s.text for s in sampler.sample([{"role": "user", "content": "q"}], n=3)]
    ['short', 'a longer answer', 'short']
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from ra_guard.exceptions import SamplerError
from ra_guard.samplers.base import Sampler
from ra_guard.types import Messages, Sample

__all__ = ["FunctionSampler"]

SampleFn = Callable[[Messages, int], "str | Sample | Awaitable[str | Sample]"]


class FunctionSampler(Sampler):
    """A sampler that calls ``fn(messages, i)`` for i in ``0..n-1``, concurrently.

    ``fn`` may be sync or async and may return a string or a :class:`Sample`.
    Exceptions it raises become :class:`SamplerError`. Useful for your own
    model code and for tests.
    """

    def __init__(self, fn: SampleFn, *, name: str = "function") -> None:
        self.fn = fn
        self.name = name

    async def _one(self, messages: Messages, i: int) -> Sample:
        try:
            result = self.fn(messages, i)
            if inspect.isawaitable(result):
                result = await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise SamplerError(f"{self.name}: sampling function raised {exc!r}") from exc
        return result if isinstance(result, Sample) else Sample(text=str(result), finish_reason="stop")

    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        return list(await asyncio.gather(*(self._one(messages, i) for i in range(n))))
