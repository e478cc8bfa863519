"""The :class:`Sampler` interface: produce N candidate responses for a conversation.

Example:
    >>> from ra_guard.testing import FunctionSampler
    >>> sampler = FunctionSampler(lambda messages, i: f"answer {i}")
    >>> [s.text for s in sampler.sample([{"role": "user", "content": "hi"}], n=2)]
    ['answer 0', 'answer 1']
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ra_guard._sync import run_sync
from ra_guard.types import Messages, Sample

__all__ = ["Sampler", "WrapperSampler"]


class Sampler(ABC):
    """Produces candidate responses for a list of chat messages.

    Subclasses implement :meth:`asample`, returning exactly ``n`` samples or
    raising :class:`~ra_guard.exceptions.SamplerError`.
    """

    #: A short description used in traces and errors (backend and model).
    name: str = "sampler"

    @abstractmethod
    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        """Return ``n`` candidate responses to ``messages``."""

    def sample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        """Synchronous :meth:`asample`."""
        return run_sync(self.asample(messages, n=n, temperature=temperature))

    async def aclose(self) -> None:  # noqa: B027 - optional capability, nothing to close by default
        """Release pooled resources."""


class WrapperSampler(Sampler):
    """A sampler that delegates to another; subclass it to add behaviour around calls."""

    def __init__(self, wrapped: Sampler) -> None:
        self.wrapped = wrapped
        self.name = wrapped.name

    async def asample(self, messages: Messages, *, n: int, temperature: float | None = None) -> list[Sample]:
        return await self.wrapped.asample(messages, n=n, temperature=temperature)

    async def aclose(self) -> None:
        await self.wrapped.aclose()
