"""The :class:`Guard`: sample, judge against policies, choose, trace.

One guard holds the policies, the judge and a strategy. Three entry points,
each with a sync and an async form, return a :class:`~ra_guard.decision.Decision`:

- ``run``/``arun(messages, sampler=...)``: sample candidates and choose;
- ``check``/``acheck(messages, output, ...)``: judge an agent's own output and
  replace it only where it fails (or always compare, by option);
- ``rerank``/``arerank(prompt, candidates)``: score given candidates, no sampling.

Each entry point picks a :class:`~ra_guard.strategies.Strategy` (the guard's own
for ``run``; :class:`~ra_guard.strategies.Check` around it for ``check``;
:class:`~ra_guard.strategies.Rerank` for ``rerank``) and runs it on a
:class:`~ra_guard.engine.DecisionRun` built from the guard's
:class:`~ra_guard.engine.RunSettings`: the guard configures, the engine decides.

Example:
    >>> from ra_guard.testing import FunctionJudge, FunctionSampler
    >>> judge = FunctionJudge(lambda req: {n: 5 - min(len(t), 40) / 10 for n, t in req.responses.items()})
    >>> guard = Guard(policies=["concise"], judge=judge)
    >>> sampler = FunctionSampler(lambda m, i: ["Paris.", "The capital of France is Paris, a city..."][i % 2])
    >>> guard.run([{"role": "user", "content": "Capital of France?"}], sampler=sampler, n=2).text
    'Paris.'
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from opentelemetry.trace import Span

from ra_guard._inputs import checked_candidates, checked_n, conversation
from ra_guard._sync import close_on_background_loop, run_sync
from ra_guard.budget import Budget
from ra_guard.decision import Decision
from ra_guard.engine import DecisionRun, OnAllRejected, RunSettings
from ra_guard.exceptions import AllCandidatesRejected, ConfigurationError, InputError
from ra_guard.judges import resolve_judge
from ra_guard.judges.base import Judge
from ra_guard.policy import Policy, load_policy
from ra_guard.samplers import resolve_sampler
from ra_guard.samplers.base import Sampler
from ra_guard.strategies import Check, CheckMode, Rerank, Strategy, resolve_strategy
from ra_guard.tracing import DecisionTracer
from ra_guard.types import Messages

if TYPE_CHECKING:
    from ra_guard.audit import AuditLog

# Budget lives in ra_guard.budget, DecisionRun in ra_guard.engine, CheckMode in ra_guard.strategies.
__all__ = ["Budget", "CheckMode", "DecisionRun", "Guard"]


class Guard:
    """Sample, judge against policies, and return the best candidate, traced.

    Args:
        policies: A list of policies, shipped policy names (``"concise"``) or YAML
            paths. A bare string is refused (``InputError``): write ``["concise"]``.
        judge: A :class:`Judge` or a spec string (``"openai-compat:http://gpu:8000/v1"``).
        strategy: ``"best_of_n"`` (default), ``"retry_with_feedback"`` or a Strategy.
            It drives ``run`` and ``check``; ``rerank`` only judges what it is given.
        sampler: The default sampler (a Sampler or a spec like ``"litellm:gpt-4o-mini"``).
        budget: Deadline, candidate and judge-call limits for each decision.
        on_all_rejected: ``"raise"`` :class:`AllCandidatesRejected` (default), or
            ``"return_best"``: return the best vetoed candidate with ``passed=False``.
        name: The guard's name in traces.
        tracer: A :class:`DecisionTracer`; the default uses the global tracer provider.
        audit_log: An :class:`~ra_guard.audit.AuditLog` that records every decision
            (rejected ones too), written off the request path.

    Messages are OpenAI-style dicts; a plain string is taken as one user
    message. A role is one of ``system``, ``developer``, ``user``, ``assistant``,
    ``tool`` or ``function`` (:data:`~ra_guard.types.ROLES`). ``content`` may be
    a string, ``None`` (an assistant turn that only calls tools) or a list of
    content parts: the judge reads the text parts
    (others are replaced by a marker and listed in ``decision.notes``), tool calls
    as ``[tool call] name(arguments)`` and tool results tagged with their call id.
    Samplers receive the messages as given. A malformed argument raises
    :class:`~ra_guard.exceptions.InputError` naming it.

    Sync methods (``run``, ``check``, ``rerank``, ``ping``, ``close``) run on one
    background event loop shared by the process, with the caller's context
    variables. Close a guard when done (``close()``/``await aclose()``, or use it
    as a ``with``/``async with`` block) to release the judge's and the sampler's
    connections.

    Example:
        >>> from ra_guard.testing import FunctionJudge
        >>> guard = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {n: 3 for n in r.responses}))
        >>> guard.rerank("Say hi", ["hi", "hello"]).chosen_index
        0
    """

    def __init__(
        self,
        policies: Sequence[Policy | str | Path],
        judge: Judge | str,
        *,
        strategy: Strategy | str = "best_of_n",
        sampler: Sampler | str | None = None,
        budget: Budget | None = None,
        on_all_rejected: OnAllRejected = "raise",
        name: str = "ra-guard",
        tracer: DecisionTracer | None = None,
        audit_log: AuditLog | None = None,
    ) -> None:
        if isinstance(policies, (str, Path, Policy)):
            raise InputError(
                "policies",
                f"must be a list of policies, got {type(policies).__name__} {str(policies)!r}; "
                f"write policies=[{str(policies)!r}]",
            )
        loaded = [p if isinstance(p, Policy) else load_policy(p) for p in policies]
        if not loaded:
            raise ConfigurationError("Guard needs at least one policy, e.g. policies=['concise']")
        names = [p.name for p in loaded]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(f"policy names must be unique in a guard; repeated: {', '.join(duplicates)}")
        if on_all_rejected not in ("raise", "return_best"):
            raise ConfigurationError(f"on_all_rejected must be 'raise' or 'return_best', got {on_all_rejected!r}")
        if budget is not None and not isinstance(budget, Budget):
            raise InputError("budget", f"must be a Budget(...), got {type(budget).__name__}")
        self.policies: tuple[Policy, ...] = tuple(loaded)
        self.judge: Judge = resolve_judge(judge)
        self.strategy: Strategy = resolve_strategy(strategy)
        self.sampler: Sampler | None = resolve_sampler(sampler) if sampler is not None else None
        # A judge or sampler built here from a spec string belongs to this guard: if the guard is
        # dropped without close(), its connections on the shared sync loop are closed for it.
        # Instances passed in belong to the caller (they may serve other guards): never closed here.
        owned: list[Judge | Sampler] = [self.judge] if isinstance(judge, str) else []
        if isinstance(sampler, str) and self.sampler is not None:
            owned.append(self.sampler)
        if owned:
            weakref.finalize(self, close_on_background_loop, *owned)
        self.budget = budget or Budget()
        self.on_all_rejected: OnAllRejected = on_all_rejected
        self.name = name
        self.tracer = tracer or DecisionTracer()
        self.audit_log = audit_log
        # Built by _settings() when an attribute it reads changed; the names go on the decision span.
        self._run_settings: RunSettings | None = None
        self._policy_names: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"Guard(policies={[p.name for p in self.policies]}, judge={self.judge.name!r}, "
            f"strategy={self.strategy.name!r})"
        )

    def _sampler_for(self, sampler: Sampler | str | None) -> Sampler | None:
        return resolve_sampler(sampler) if sampler is not None else self.sampler

    def _settings(self) -> RunSettings:
        """What the engine needs of this guard, read afresh per decision (attributes may be reassigned)."""
        held = self._run_settings
        if (
            held is not None
            and held.policies is self.policies
            and held.judge is self.judge
            and held.budget is self.budget
            and held.tracer is self.tracer
            and held.guard_name is self.name
            and held.on_all_rejected is self.on_all_rejected
        ):
            return held  # the same attributes as last time: the same (frozen) settings
        self._policy_names = tuple(p.name for p in self.policies)
        held = self._run_settings = RunSettings(
            guard_name=self.name,
            policies=self.policies,
            judge=self.judge,
            budget=self.budget,
            tracer=self.tracer,
            on_all_rejected=self.on_all_rejected,
        )
        return held

    async def _decide(
        self, messages: object, strategy: Strategy, *, sampler: Sampler | None, n: int | None, shadow: bool = False
    ) -> Decision:
        """One decision: check the conversation, let ``strategy`` drive a run, freeze it, trace and audit it.

        ``shadow`` (from :class:`~ra_guard.shadow.ShadowGuard`) marks the decision, its root span
        (``ra_guard.shadow``) and its audit record as judged only, never served.
        """
        started = time.perf_counter()
        checked = conversation(messages)
        settings = self._settings()
        name = strategy.name
        with self.tracer.decision(
            guard=self.name, strategy=name, policies=self._policy_names, messages=checked.messages
        ) as span:
            if shadow:
                span.set_attribute("ra_guard.shadow", True)
            run = DecisionRun(
                settings,
                checked.messages,
                sampler=sampler,
                n_override=n,
                prompt=checked.prompt,
                notes=checked.notes,
            )
            await strategy.decide(run)
            try:
                decision = run.finish(strategy=name, started=started, trace_id=DecisionTracer.trace_id_of(span))
            except AllCandidatesRejected as exc:
                if shadow:
                    exc.decision = exc.decision.model_copy(update={"shadow": True})
                self._finish_span(span, exc.decision, checked.prompt)
                raise
            if shadow:
                decision = decision.model_copy(update={"shadow": True})
            self._finish_span(span, decision, checked.prompt)
            return decision

    def _finish_span(self, span: Span, decision: Decision, prompt: str) -> None:
        self.tracer.finish_decision(span, decision)
        if self.audit_log is not None:
            self.audit_log.record(decision, guard=self.name, policies=self.policies, prompt=prompt)

    # -- run --------------------------------------------------------------

    async def arun(
        self,
        messages: Messages | str,
        *,
        sampler: Sampler | str | None = None,
        n: int | None = None,
        strategy: Strategy | str | None = None,
    ) -> Decision:
        """Sample candidates for ``messages``, judge them, and return the decision.

        Args:
            messages: The conversation (OpenAI-style dicts), or a string: one user message.
            sampler: Overrides the guard's sampler for this call.
            n: Overrides the strategy's number of candidates per round (an integer >= 1).
            strategy: Overrides the guard's strategy for this call (an instance or a name).

        Raises:
            AllCandidatesRejected: Every candidate was vetoed (and ``on_all_rejected="raise"``).
            DeadlineExceeded: The deadline passed before any candidate existed.
            InputError: ``messages`` or ``n`` is malformed.
            SamplerError: The sampler failed.

        Example:
            >>> from ra_guard.testing import FunctionJudge, FunctionSampler
            >>> guard = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {k: 4 for k in r.responses}))
            >>> import asyncio
            >>> asyncio.run(guard.arun("Say hi", sampler=FunctionSampler(lambda m, i: "hi"), n=1)).text
            'hi'
        """
        n = checked_n(n)
        chosen_sampler = self._sampler_for(sampler)
        if chosen_sampler is None:
            raise ConfigurationError("run() needs a sampler: pass sampler=... here or to Guard(...)")
        chosen_strategy = self.strategy if strategy is None else resolve_strategy(strategy)
        return await self._decide(messages, chosen_strategy, sampler=chosen_sampler, n=n)

    def run(
        self,
        messages: Messages | str,
        *,
        sampler: Sampler | str | None = None,
        n: int | None = None,
        strategy: Strategy | str | None = None,
    ) -> Decision:
        """Synchronous :meth:`arun`."""
        return run_sync(self.arun(messages, sampler=sampler, n=n, strategy=strategy))

    # -- check ------------------------------------------------------------

    async def acheck(
        self,
        messages: Messages | str,
        output: str,
        *,
        sampler: Sampler | str | None = None,
        n: int | None = None,
        mode: CheckMode = "on_failure",
        strategy: Strategy | str | None = None,
    ) -> Decision:
        """Judge an agent's existing ``output``; where it fails, let the strategy look for better.

        The output is candidate 0 (``source="original"``). With ``mode="on_failure"``
        it is judged first; if it passes, or there is no sampler, that is the
        decision. Otherwise the guard's strategy (or this call's ``strategy``)
        takes over from it (the :class:`~ra_guard.strategies.Check` strategy
        hands it to :meth:`Strategy.improve`): ``BestOfN`` samples ``n`` alternatives and
        judges them beside the output; ``RetryWithFeedback`` retries with the
        output's critique as the first feedback, up to ``max_attempts`` rounds.
        The best candidate wins, the output included.

        Args:
            messages: The conversation that produced ``output`` (or a string: one user message).
            output: The agent's answer, a string.
            sampler: Produces alternatives; without one, the output is only judged.
            n: Candidates per round (default: the strategy's ``n``).
            mode: ``on_failure`` (default) looks for alternatives only if the
                output fails a policy; ``always`` does it every time.
            strategy: Overrides the guard's strategy for this call (an instance or a
                name), as in :meth:`arun`; the guard's own is left unchanged.

        Raises:
            AllCandidatesRejected: Every candidate was vetoed (and ``on_all_rejected="raise"``).
            InputError: ``messages``, ``output`` or ``n`` is malformed.
            ConfigurationError: ``mode`` or ``strategy`` names nothing known.

        Example:
            >>> from ra_guard.testing import FunctionJudge
            >>> guard = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {k: 5 for k in r.responses}))
            >>> d = guard.check([{"role": "user", "content": "hi"}], "hello")
            >>> d.chosen.source, d.passed
            ('original', True)
        """
        then = self.strategy if strategy is None else resolve_strategy(strategy)
        checking = Check(output, then=then, mode=mode)  # checks mode, then output
        n = checked_n(n)
        return await self._decide(messages, checking, sampler=self._sampler_for(sampler), n=n)

    def check(
        self,
        messages: Messages | str,
        output: str,
        *,
        sampler: Sampler | str | None = None,
        n: int | None = None,
        mode: CheckMode = "on_failure",
        strategy: Strategy | str | None = None,
    ) -> Decision:
        """Synchronous :meth:`acheck`."""
        return run_sync(self.acheck(messages, output, sampler=sampler, n=n, mode=mode, strategy=strategy))

    # -- rerank -----------------------------------------------------------

    async def arerank(self, prompt: str | Messages, candidates: Sequence[str]) -> Decision:
        """Score given ``candidates`` for ``prompt`` and choose the best: judging only, no sampling.

        The :class:`~ra_guard.strategies.Rerank` strategy drives it, whatever the
        guard's strategy. Identical texts are judged once and share their scores.

        Raises:
            InputError: ``candidates`` is not a non-empty list of strings (a bare
                string is refused: it would be reranked letter by letter).

        Example:
            >>> from ra_guard.testing import FunctionJudge
            >>> judge = FunctionJudge(lambda r: {k: 5 - len(t) % 5 for k, t in r.responses.items()})
            >>> guard = Guard(policies=["concise"], judge=judge)
            >>> guard.rerank("Greet me", ["hello", "hi"]).text
            'hello'
        """
        strategy = Rerank(tuple(checked_candidates(candidates)))
        return await self._decide(prompt, strategy, sampler=None, n=None)

    def rerank(self, prompt: str | Messages, candidates: Sequence[str]) -> Decision:
        """Synchronous :meth:`arerank`."""
        return run_sync(self.arerank(prompt, candidates))

    # -- health and lifetime ----------------------------------------------

    async def aping(self) -> None:
        """Check that the judge answers and its model exists, for start-up and readiness probes.

        Raises:
            JudgeError: The judge cannot be reached or does not serve its model.
            ConfigurationError: The judge is misconfigured.

        Example:
            >>> # await guard.aping()  # in a readiness probe
        """
        # Judge.aping comes with the judges branch (ra_guard/judges/base.py).
        await self.judge.aping()

    def ping(self) -> None:
        """Synchronous :meth:`aping`."""
        run_sync(self.aping())

    async def aclose(self) -> None:
        """Close the judge's and the sampler's pooled resources."""
        await self.judge.aclose()
        if self.sampler is not None:
            await self.sampler.aclose()

    def close(self) -> None:
        """Synchronous :meth:`aclose`."""
        run_sync(self.aclose())

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Guard:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()
