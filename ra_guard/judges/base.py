"""The :class:`Judge` interface: one async method that scores candidates.

A judge receives a :class:`JudgeRequest` (principle, prompt, named responses)
and returns a :class:`~ra_guard.verdict.Verdict` keyed by the caller's names.
Backends implement :meth:`Judge.ajudge`; the sync :meth:`Judge.judge`, the
batch helpers and a health check (:meth:`Judge.aping`, a one-candidate call by
default; HTTP judges override it with a cheap request) come for free.

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
from ra_guard._wrapping import Forwarding
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

    Subclasses implement :meth:`ajudge`. Optional capabilities have defaults:
    closing pooled resources does nothing, and the health check
    :meth:`aping` sends one minimal request through :meth:`ajudge`.

    Example:
        >>> class Constant(Judge):
        ...     async def ajudge(self, request):
        ...         return Verdict(scores={n: 3.0 for n in request.names}, ranking=request.names)
        >>> Constant().judge(JudgeRequest(principle="p", prompt="q", responses={"a": "x"})).scores
        {'a': 3.0}
    """

    #: A short description used in traces and errors (backend and model).
    name: str = "judge"
    #: The judge model's name where the backend knows it (``None`` otherwise, or before discovery).
    model: str | None = None
    #: Whether :meth:`ajudge_many` sends its requests as one batch call (the
    #: reference server's batch route). A guard then sends each judging round's
    #: requests (one per policy) through one :meth:`ajudge_many` call; otherwise
    #: it makes one :meth:`ajudge` call per request, side by side, so that each
    #: policy keeps its own trace span, retries and deadline.
    batches: bool = False

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

    async def aping(self) -> None:
        """Check that the judge answers (for start-up probes); return ``None`` when it does.

        The default sends one minimal one-candidate request through :meth:`ajudge`.
        HTTP judges override it with a cheap request (``GET /models``, ``GET /health``).

        Raises:
            JudgeError: The judge cannot answer; the message says what is wrong
                (connection refused at host:port, a wrong base path...).
            ConfigurationError: The judge is misconfigured (e.g. a model name the
                server does not serve; the served ones are listed).

        Example:
            >>> from ra_guard.testing import FunctionJudge
            >>> FunctionJudge(lambda req: {n: 3 for n in req.responses}).ping() is None
            True
        """
        await self.ajudge(PING_REQUEST)

    def ping(self) -> None:
        """Synchronous :meth:`aping`."""
        run_sync(self.aping())

    async def aclose(self) -> None:  # noqa: B027 - optional capability, nothing to close by default
        """Release pooled resources (HTTP clients, models)."""

    def close(self) -> None:
        """Synchronous :meth:`aclose`."""
        run_sync(self.aclose())


class WrapperJudge(Forwarding, Judge):
    """A judge that delegates every call to another; subclass it to add behaviour around calls.

    Everything in the :class:`Judge` contract is forwarded: :meth:`ajudge`,
    :meth:`ajudge_many` (so a batching backend still batches), :meth:`aping`,
    :meth:`aclose`, and the ``name``, ``model`` and ``batches`` attributes (read live, so a
    model discovered later by the wrapped judge shows through). A subclass that
    overrides :meth:`ajudge` gets :meth:`ajudge_many` through its own
    :meth:`ajudge`, so its behaviour applies to batches too.

    Example:
        >>> class Logged(WrapperJudge):
        ...     async def ajudge(self, request):
        ...         print("judging", request.names)
        ...         return await self.wrapped.ajudge(request)
    """

    wrapped: Judge

    def __init__(self, wrapped: Judge) -> None:
        self.wrapped = wrapped
        self._own_name: str | None = None

    @property
    def batches(self) -> bool:  # type: ignore[override]
        # Batches only where ajudge_many reaches the wrapped judge's (see ajudge_many).
        return type(self).ajudge is WrapperJudge.ajudge and self.wrapped.batches

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        return await self.wrapped.ajudge(request)

    async def ajudge_many(self, requests: Sequence[JudgeRequest]) -> list[Verdict | BaseException]:
        # A subclass that adds behaviour to ``ajudge`` must see every request: batch through it then.
        if type(self).ajudge is not WrapperJudge.ajudge:
            return await super().ajudge_many(requests)
        return await self.wrapped.ajudge_many(requests)

    async def aping(self) -> None:
        await self.wrapped.aping()

    async def aclose(self) -> None:
        await self.wrapped.aclose()


#: The request the default :meth:`Judge.aping` sends: one short candidate.
PING_REQUEST = JudgeRequest(principle="Answer the question.", prompt="Say OK.", responses={"ping": "OK"})
