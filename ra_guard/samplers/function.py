"""Samplers built from users' own functions.

Example:
    >>> sampler = FunctionSampler(lambda messages, i: ["short", "a longer answer"][i % 2])
    >>> [s.text for s in sampler.sample([{"role": "user", "content": "q"}], n=3)]
    ['short', 'a longer answer', 'short']
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable

from pydantic import TypeAdapter

from ra_guard._threads import call_in_thread, is_async_callable
from ra_guard.exceptions import SamplerError
from ra_guard.samplers.base import Sampler
from ra_guard.types import Messages, Sample

__all__ = ["FunctionSampler"]

# Plain-string answers as Samples, validated in one call per asample (cheaper than one Sample() each).
_STOPPED_SAMPLES = TypeAdapter(list[Sample])

SampleFn = Callable[[Messages, int], "str | Sample | Awaitable[str | Sample]"]


class FunctionSampler(Sampler):
    """A sampler that calls ``fn(messages, i)`` for i in ``0..n-1``, concurrently.

    ``fn`` may be sync or async and returns a string or a :class:`Sample`. An
    ``async`` function runs on the event loop; a sync one runs in a worker
    thread (with the caller's context variables), so that N calls overlap and a
    deadline can give up on a call that blocks. Exceptions it raises, and a
    result that is neither a string nor a Sample, become :class:`SamplerError`.
    Useful for your own model code and for tests.

    Example:
        >>> [s.text for s in FunctionSampler(lambda m, i: f"#{i}").sample([], n=2)]
        ['#0', '#1']
    """

    def __init__(self, fn: SampleFn, *, name: str = "function") -> None:
        self.fn = fn
        self.name = name
        self._async = is_async_callable(fn)

    async def _one(self, messages: Messages, i: int) -> Sample:
        try:
            result = self.fn(messages, i) if self._async else await call_in_thread(self.fn, messages, i)
            if inspect.isawaitable(result):
                result = await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise SamplerError(f"{self.name}: sampling function raised {exc!r}") from exc
        if type(result) is str:  # the usual answer first; Sample() validates it once (~0.7 us)
            return Sample(text=result, finish_reason="stop")
        return self._checked(result, i)

    def _checked(self, result: object, i: int) -> Sample:
        """``result`` as a Sample: one already, or a str (subclass); anything else is a SamplerError."""
        if isinstance(result, Sample):
            return result
        if not isinstance(result, str):
            raise SamplerError(
                f"{self.name}: sampling function returned {'None' if result is None else type(result).__name__} "
                f"for sample {i}; return the answer as a str or a Sample"
            )
        return Sample(text=result, finish_reason="stop")

    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        if not self._async:
            return await asyncio.gather(*[self._one(messages, i) for i in range(n)])
        # An async function's coroutines are gathered as they are: no wrapper coroutine per
        # candidate, one check and one validation for all the answers (the usual, plain strings).
        fn = self.fn
        if n == 1:  # one call: awaited here, without a task around it
            return [await self._one(messages, 0)]
        calls: list[Awaitable[str | Sample]] = []
        try:
            for i in range(n):
                calls.append(fn(messages, i))  # type: ignore[arg-type]
            results = await asyncio.gather(*calls)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            for call in calls:  # those made before a call raised at once: never awaited otherwise
                if inspect.iscoroutine(call):
                    call.close()
            raise SamplerError(f"{self.name}: sampling function raised {exc!r}") from exc
        for result in results:
            if type(result) is not str:
                return [self._checked(result, i) for i, result in enumerate(results)]
        return _STOPPED_SAMPLES.validate_python([{"text": text, "finish_reason": "stop"} for text in results])

    async def astream_samples(
        self, messages: Messages, *, n: int, temperature: float | None = None
    ) -> AsyncIterator[Sample]:
        """Yield samples in the order they finish; the calls left are cancelled when the consumer stops."""
        tasks = [asyncio.ensure_future(self._one(messages, i)) for i in range(n)]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for task in tasks:
                task.cancel()
            # Collect the outcomes of cancelled or failed calls so none is reported as never retrieved.
            await asyncio.gather(*tasks, return_exceptions=True)
