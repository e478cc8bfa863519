"""N calls of a framework's model as a ra-guard sampler: shared by the OpenAI Agents SDK and pydantic-ai adapters.

Each adapter says how to make one call (:meth:`ModelCallSampler._request`),
how an answer becomes a :class:`~ra_guard.types.Sample` (:meth:`_keep`) and
whether it calls tools (:meth:`_tool_turn`). The rules live here, once:

- the ``n`` calls run side by side; calls that fail are dropped and logged, and
  the round fails only when every call failed (with the first error);
- cancellation and the like are never a failed call: they propagate;
- a first-round answer that calls tools ends the round (:class:`ToolTurn`), so
  that the agent runs the tool instead of the judge scoring a tool call;
- under a deadline (:meth:`astream_samples`) each answer is handed over as its
  call finishes, and calls still out when the guard stops listening are cancelled.

Example:
    >>> ToolTurn("answer").answer
    'answer'
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from ra_guard.samplers.base import Sampler
from ra_guard.types import ChatMessage, Sample

__all__ = ["ModelCallSampler", "ToolTurn"]

A = TypeVar("A")

logger = logging.getLogger("ra_guard")


class ToolTurn(Exception):
    """Raised by the sampler to hand a tool-calling turn back to the agent unjudged."""

    def __init__(self, answer: Any) -> None:
        super().__init__("tool turn")
        self.answer = answer


class ModelCallSampler(Sampler, Generic[A]):
    """Samples by calling a framework's model ``n`` times side by side (see the module docstring)."""

    @abstractmethod
    def _request(
        self, messages: Sequence[ChatMessage], temperature: float | None
    ) -> tuple[bool, Callable[[], Awaitable[A]]]:
        """Whether this is a retry (critique turns appended), and the call that makes one answer."""

    @abstractmethod
    def _keep(self, answer: A) -> Sample:
        """Keep ``answer`` (by the sample's ``response_id``) and turn it into a sample."""

    @abstractmethod
    def _tool_turn(self, answer: A, retry: bool) -> bool:
        """Whether ``answer`` ends the round as a tool-calling turn."""

    @staticmethod
    def _report(failures: list[Exception], n: int) -> None:
        if failures and len(failures) < n:
            logger.warning(
                "ra-guard: %d of %d model calls failed (%r); judging the %d that answered",
                len(failures),
                n,
                failures[0],
                n - len(failures),
            )

    async def asample(
        self, messages: Sequence[ChatMessage], *, n: int, temperature: float | None = None
    ) -> list[Sample]:
        retry, call = self._request(messages, temperature)
        outcomes = await asyncio.gather(*(call() for _ in range(n)), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome  # cancellation and the like are not a failed call
        answers: list[A] = [o for o in outcomes if not isinstance(o, BaseException)]
        failures = [o for o in outcomes if isinstance(o, Exception)]
        if not answers:
            raise failures[0]
        self._report(failures, n)
        samples = [self._keep(answer) for answer in answers]  # kept first: a tool turn's usage counts every call
        for answer in answers:
            if self._tool_turn(answer, retry):
                raise ToolTurn(answer)
        return samples

    async def astream_samples(
        self, messages: Sequence[ChatMessage], *, n: int, temperature: float | None = None
    ) -> AsyncIterator[Sample]:
        """Yield each answer as its call finishes: under a deadline, the guard keeps those that finished in time."""
        retry, call = self._request(messages, temperature)
        tasks = [asyncio.ensure_future(call()) for _ in range(n)]
        failures: list[Exception] = []
        try:
            for finished in asyncio.as_completed(tasks):
                try:
                    answer = await finished
                except Exception as exc:
                    failures.append(exc)
                    continue
                sample = self._keep(answer)
                if self._tool_turn(answer, retry):
                    raise ToolTurn(answer)
                yield sample
            if len(failures) == n:
                raise failures[0]
            self._report(failures, n)
        finally:
            # The guard stopped listening (deadline), or a tool turn ends the round: calls still out are dropped.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
