"""The :class:`Sampler` interface: produce N candidate responses for a conversation.

Example:
    >>> from ra_guard.testing import FunctionSampler
    >>> sampler = FunctionSampler(lambda messages, i: f"answer {i}")
    >>> [s.text for s in sampler.sample([{"role": "user", "content": "hi"}], n=2)]
    ['answer 0', 'answer 1']
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from ra_guard._sync import run_sync
from ra_guard._wrapping import Forwarding
from ra_guard.types import Messages, Sample

__all__ = ["Sampler", "WrapperSampler"]


class Sampler(ABC):
    """Produces candidate responses for a list of chat messages.

    Subclasses implement :meth:`asample`, returning exactly ``n`` samples or
    raising :class:`~ra_guard.exceptions.SamplerError`. Samplers whose calls
    finish one by one also override :meth:`astream_samples`, so that a guard
    under a deadline keeps the samples that finished when one call hangs.

    Example:
        >>> class Echo(Sampler):
        ...     async def asample(self, messages, *, n, temperature=None):
        ...         return [Sample(text=messages[-1]["content"]) for _ in range(n)]
        >>> [s.text for s in Echo().sample([{"role": "user", "content": "hi"}], n=2)]
        ['hi', 'hi']
    """

    #: A short description used in traces and errors (backend and model).
    name: str = "sampler"
    #: The generating model's name where the backend knows it (``None`` otherwise).
    model: str | None = None

    @abstractmethod
    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        """Return ``n`` candidate responses to ``messages``."""

    async def astream_samples(
        self, messages: Messages, *, n: int, temperature: float | None = None
    ) -> AsyncIterator[Sample]:
        """Yield ``n`` candidate responses as each one is ready.

        The default yields what :meth:`asample` returns, once it returns.
        Override it where samples finish separately (parallel calls): the guard
        consumes this under its deadline and keeps what was yielded in time.

        Example:
            >>> import asyncio
            >>> from ra_guard.testing import FunctionSampler
            >>> async def first(sampler):
            ...     return [s.text async for s in sampler.astream_samples([], n=2)]
            >>> asyncio.run(first(FunctionSampler(lambda m, i: str(i))))
            ['0', '1']
        """
        for sample in await self.asample(messages, n=n, temperature=temperature):
            yield sample

    def sample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        """Synchronous :meth:`asample`."""
        return run_sync(self.asample(messages, n=n, temperature=temperature))

    async def aclose(self) -> None:  # noqa: B027 - optional capability, nothing to close by default
        """Release pooled resources."""

    def close(self) -> None:
        """Synchronous :meth:`aclose`."""
        run_sync(self.aclose())


class WrapperSampler(Forwarding, Sampler):
    """A sampler that delegates to another; subclass it to add behaviour around calls.

    Everything in the :class:`Sampler` contract is forwarded: :meth:`asample`,
    :meth:`astream_samples` (so a guard under a deadline still keeps the samples
    that finished), :meth:`aclose`, and the ``name`` and ``model`` attributes
    (read live from the wrapped sampler). Naming the wrapper renames only it.
    A subclass that overrides :meth:`asample` alone gets :meth:`astream_samples`
    through its own :meth:`asample`, so its behaviour applies to streams too.

    Example:
        >>> from ra_guard.samplers.function import FunctionSampler
        >>> class Shouting(WrapperSampler):
        ...     async def asample(self, messages, *, n, temperature=None):
        ...         samples = await self.wrapped.asample(messages, n=n, temperature=temperature)
        ...         return [s.model_copy(update={"text": s.text.upper()}) for s in samples]
        >>> [s.text for s in Shouting(FunctionSampler(lambda m, i: "hi")).sample([], n=1)]
        ['HI']
    """

    wrapped: Sampler

    def __init__(self, wrapped: Sampler) -> None:
        self.wrapped = wrapped
        self._own_name: str | None = None

    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        return await self.wrapped.asample(messages, n=n, temperature=temperature)

    async def astream_samples(
        self, messages: Messages, *, n: int, temperature: float | None = None
    ) -> AsyncIterator[Sample]:
        # A subclass that adds behaviour to ``asample`` must see every call: stream through it then.
        if type(self).asample is not WrapperSampler.asample:
            async for sample in super().astream_samples(messages, n=n, temperature=temperature):
                yield sample
            return
        async for sample in self.wrapped.astream_samples(messages, n=n, temperature=temperature):
            yield sample

    async def aclose(self) -> None:
        await self.wrapped.aclose()
