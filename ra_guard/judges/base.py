"""The :class:`Judge` interface: one async method that scores candidates.

A judge receives a :class:`JudgeRequest` (principle, prompt, named responses)
and returns a :class:`~ra_guard.verdict.Verdict` keyed by the caller's names.
Backends implement :meth:`Judge.ajudge`; the sync :meth:`Judge.judge` and the
batch helpers come for free.

Example:
    >>> from ra_guard.testing import FunctionJudge
    >>> judge = FunctionJudge(lambda req: {name: len(text) % 5 + 1 for name, text in req.responses.items()})
    >>> judge.judge(JudgeRequest(principle="Be brief", prompt="Hi", responses={"a": "Hello", "b": "Hi"})).best
    'b'
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ra_guard._sync import run_sync
from ra_guard.verdict import Verdict

__all__ = ["Judge", "JudgeRequest", "WrapperJudge"]


@dataclass(frozen=True)
class JudgeRequest:
    """One listwise judge call: a principle, a prompt and named candidate responses.

    Attributes:
        principle: The natural-language principle to judge by.
        prompt: The prompt the responses answer (see ``messages_to_prompt``).
        responses: Caller name -> response text, in the caller's order.
        mask: Hide the caller's names from the judge (``model-1``...), as the
            reference does. On by default.
        permutation: ``None`` for the reference order (seeded shuffle, as the
            reference package renders it); otherwise the order of the caller's
            names to present, e.g. to cancel position bias.

    Example:
        >>> JudgeRequest(principle="p", prompt="q", responses={"a": "x"}).names
        ['a']
    """

    principle: str
    prompt: str
    responses: Mapping[str, str]
    mask: bool = True
    permutation: Sequence[str] | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.responses:
            raise ValueError("JudgeRequest.responses is empty: give at least one response")
        if self.permutation is not None and sorted(self.permutation) != sorted(self.responses):
            raise ValueError("JudgeRequest.permutation must list every response name exactly once")

    @property
    def names(self) -> list[str]:
        """The caller's names, in the caller's order."""
        return list(self.responses)


class Judge(ABC):
    """Scores candidate responses against a principle.

    Subclasses implement :meth:`ajudge`. Optional capabilities (closing pooled
    resources) have defaults that do nothing.

    Example:
        >>> class Constant(Judge):
        ...     async def ajudge(self, request):
        ...         return Verdict(scores={n: 3.0 for n in request.names}, ranking=request.names)
        >>> Constant().judge(JudgeRequest(principle="p", prompt="q", responses={"a": "x"})).scores
        {'a': 3.0}
    """

    #: A short description used in traces and errors (backend and model).
    name: str = "judge"

    @abstractmethod
    async def ajudge(self, request: JudgeRequest) -> Verdict:
        """Judge one request; raise a :class:`~ra_guard.exceptions.JudgeError` on failure."""

    def judge(self, request: JudgeRequest) -> Verdict:
        """Synchronous :meth:`ajudge`."""
        return run_sync(self.ajudge(request))

    async def ajudge_many(self, requests: Sequence[JudgeRequest]) -> list[Verdict | BaseException]:
        """Judge several requests concurrently; failures are returned in place, not raised.

        Backends that batch (the local judge) gather concurrent calls on their own,
        so this default simply runs the calls side by side.
        """
        return list(await asyncio.gather(*(self.ajudge(r) for r in requests), return_exceptions=True))

    async def aclose(self) -> None:  # noqa: B027 - optional capability, nothing to close by default
        """Release pooled resources (HTTP clients, models)."""

    def close(self) -> None:
        """Synchronous :meth:`aclose`."""
        run_sync(self.aclose())


class WrapperJudge(Judge):
    """A judge that delegates to another; subclass it to add behaviour around calls.

    Example:
        >>> class Logged(WrapperJudge):
        ...     async def ajudge(self, request):
        ...         print("judging", request.names)
        ...         return await self.wrapped.ajudge(request)
    """

    def __init__(self, wrapped: Judge) -> None:
        self.wrapped = wrapped
        self.name = wrapped.name

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        return await self.wrapped.ajudge(request)

    async def aclose(self) -> None:
        await self.wrapped.aclose()
