"""The :class:`Guard`: sample, judge against policies, choose, trace.

One guard holds the policies, the judge and a strategy. Three entry points,
each with a sync and an async form, return a :class:`~ra_guard.decision.Decision`:

- ``run``/``arun(messages, sampler=...)``: sample candidates and choose;
- ``check``/``acheck(messages, output, ...)``: judge an agent's own output and
  replace it only where it fails (or always compare, by option);
- ``rerank``/``arerank(prompt, candidates)``: score given candidates, no sampling.

Example:
    >>> from ra_guard.testing import FunctionJudge, FunctionSampler
    >>> judge = FunctionJudge(lambda req: {n: 5 - min(len(t), 40) / 10 for n, t in req.responses.items()})
    >>> guard = Guard(policies=["concise"], judge=judge)
    >>> sampler = FunctionSampler(lambda m, i: ["Paris.", "The capital of France is Paris, a city..."][i % 2])
    >>> guard.run([{"role": "user", "content": "Capital of France?"}], sampler=sampler, n=2).text
    'Paris.'
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from opentelemetry.trace import Span

from ra_guard._sync import run_sync
from ra_guard.decision import Candidate, CandidateSource, Decision, Fallback, PolicyScore
from ra_guard.exceptions import (
    AllCandidatesRejected,
    ConfigurationError,
    DeadlineExceeded,
    JudgeError,
    JudgeOutputError,
    JudgeTimeoutError,
    SamplerError,
)
from ra_guard.judges import resolve_judge
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.policy import Policy, load_policy
from ra_guard.samplers import resolve_sampler
from ra_guard.samplers.base import Sampler
from ra_guard.strategies import Strategy, resolve_strategy
from ra_guard.tracing import DecisionTracer
from ra_guard.types import ChatMessage, Messages, Sample, Usage, messages_to_prompt
from ra_guard.verdict import Verdict

if TYPE_CHECKING:
    from ra_guard.audit import AuditLog

__all__ = ["Budget", "DecisionRun", "Guard"]

OnAllRejected = Literal["raise", "return_best"]
CheckMode = Literal["on_failure", "always"]
_Body = Callable[["DecisionRun"], Awaitable[None]]


@dataclass(frozen=True)
class Budget:
    """Limits on one decision.

    Attributes:
        deadline_s: Wall time for the whole decision. Work still in flight when
            it passes is cancelled: a judge call that is cut off counts as a
            judge error (the policy's ``on_judge_error`` applies); sampling that
            is cut off before any candidate exists raises ``DeadlineExceeded``.
        max_candidates: Candidates sampled at most, across attempts.
        max_judge_calls: Judge calls at most; policies left unjudged follow
            their ``on_judge_error``.

    Example:
        >>> Budget(deadline_s=5.0, max_judge_calls=6).max_candidates is None
        True
    """

    deadline_s: float | None = None
    max_candidates: int | None = None
    max_judge_calls: int | None = None


def _candidate_name(index: int) -> str:
    return f"candidate-{index}"


@dataclass
class _Entry:
    """A candidate while the decision is being made (mutable; frozen at the end)."""

    index: int
    sample: Sample
    source: CandidateSource
    attempt: int
    scores: dict[str, PolicyScore] = field(default_factory=dict)
    rank_fraction: dict[str, float] = field(default_factory=dict)


class DecisionRun:
    """The state of one decision, driven by a :class:`~ra_guard.strategies.Strategy`.

    Strategies call :meth:`sample`, :meth:`judge`, :meth:`best` and
    :meth:`passes`; the run applies budgets, failure modes and tracing.
    """

    def __init__(
        self,
        guard: Guard,
        messages: Messages,
        *,
        sampler: Sampler | None,
        n_override: int | None,
        prompt: str,
    ) -> None:
        self.guard = guard
        self.messages: list[ChatMessage] = list(messages)
        self.prompt = prompt
        self.n_override = n_override
        self._sampler = sampler
        self._entries: list[_Entry] = []
        self._fallbacks: list[Fallback] = []
        self._judge_calls = 0
        self._judge_usage = Usage()
        self._attempts = 0
        budget = guard.budget
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + budget.deadline_s if budget.deadline_s is not None else None
        self._deadline_hit = False

    # -- time and budgets -------------------------------------------------

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    def can_continue(self) -> bool:
        """Whether budgets and the deadline leave room for another round."""
        budget = self.guard.budget
        if self._deadline_hit or (self._remaining() == 0.0):
            return False
        if budget.max_candidates is not None and len(self._entries) >= budget.max_candidates:
            return False
        return budget.max_judge_calls is None or self._judge_calls < budget.max_judge_calls

    def _fallback(self, kind: str, reason: str, action: str, policy: str | None = None) -> None:
        self._fallbacks.append(Fallback(kind=kind, policy=policy, reason=reason, action=action))

    # -- candidates -------------------------------------------------------

    def add(self, samples: Sequence[Sample], *, source: CandidateSource, attempt: int) -> list[int]:
        """Add candidates that did not come from the sampler (an agent's output, given texts)."""
        start = len(self._entries)
        for offset, sample in enumerate(samples):
            self._entries.append(_Entry(index=start + offset, sample=sample, source=source, attempt=attempt))
        return list(range(start, len(self._entries)))

    async def sample(self, messages: Messages, *, n: int, temperature: float | None) -> list[int]:
        """Sample ``n`` candidates (fewer if the candidate budget says so); return their indexes."""
        sampler = self._sampler
        if sampler is None:
            raise ConfigurationError("this guard needs a sampler: pass sampler=... to Guard(...) or to run/check")
        limit = self.guard.budget.max_candidates
        if limit is not None:
            n = min(n, limit - len(self._entries))
            if n <= 0:
                self._fallback("budget", "max_candidates reached", "stopped sampling")
                return []
        self._attempts += 1
        attempt = self._attempts
        tracer = self.guard.tracer
        with tracer.sampling(
            sampler=sampler.name,
            n=n,
            attempt=attempt,
            temperature=temperature,
            messages=messages,
            model=getattr(sampler, "model", None),
        ) as span:
            try:
                samples = await asyncio.wait_for(
                    sampler.asample(messages, n=n, temperature=temperature), self._remaining()
                )
            except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
                self._deadline_hit = True
                tracer.record_error(span, DeadlineExceeded("deadline passed during sampling"))
                if not self._entries:
                    raise DeadlineExceeded(
                        f"the decision's deadline ({self.guard.budget.deadline_s}s) passed while sampling, "
                        "before any candidate existed; raise Budget.deadline_s or speed up the sampler"
                    ) from None
                self._fallback("deadline", "deadline passed during sampling", "kept best so far")
                self._attempts -= 1
                return []
            except SamplerError as exc:
                tracer.record_error(span, exc)
                raise
            tracer.record_samples(span, samples)
        return self.add(samples, source="sampled", attempt=attempt)

    # -- judging ----------------------------------------------------------

    async def judge(self, indexes: Sequence[int]) -> None:
        """Judge the candidates at ``indexes`` under every policy, policies in parallel."""
        if not indexes:
            return
        policies = list(self.guard.policies)
        max_calls = self.guard.budget.max_judge_calls
        allowed = len(policies) if max_calls is None else max(0, min(len(policies), max_calls - self._judge_calls))
        await asyncio.gather(*(self._judge_policy(p, indexes) for p in policies[:allowed]))
        for policy in policies[allowed:]:
            self._judge_failed(policy, indexes, "max_judge_calls reached", kind="budget")

    async def _judge_policy(self, policy: Policy, indexes: Sequence[int]) -> None:
        self._judge_calls += 1
        entries = [self._entries[i] for i in indexes]
        request = JudgeRequest(
            principle=policy.principle,
            prompt=self.prompt,
            responses={_candidate_name(e.index): e.sample.text for e in entries},
        )
        tracer = self.guard.tracer
        judge = self.guard.judge
        with tracer.judge_call(
            judge=judge.name,
            policy=policy.name,
            candidates=len(entries),
            request=request,
            model=getattr(judge, "model", None),
        ) as span:
            try:
                verdict = await asyncio.wait_for(judge.ajudge(request), self._remaining())
            except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
                self._deadline_hit = True
                error: JudgeError = JudgeTimeoutError("the decision's deadline passed", judge=judge.name)
                tracer.record_error(span, error)
                self._judge_failed(policy, indexes, str(error), kind="deadline")
                return
            except JudgeError as exc:
                tracer.record_error(span, exc)
                self._judge_failed(policy, indexes, str(exc), kind="judge_error")
                return
            except Exception as exc:  # a judge bug must not lose the request either
                tracer.record_error(span, exc)
                self._judge_failed(policy, indexes, f"judge raised {exc!r}", kind="judge_error")
                return
            unscored = sorted(set(request.responses) - set(verdict.scores))
            if unscored:  # the parser never allows this; a third-party judge might
                error = JudgeOutputError(
                    "missing_candidate",
                    f"verdict has no score for {', '.join(unscored)}",
                    raw_text=verdict.raw_text,
                    judge=judge.name,
                )
                tracer.record_error(span, error)
                self._judge_failed(policy, indexes, str(error), kind="judge_error")
                return
            tracer.record_verdict(span, verdict)
        self._judge_usage = self._judge_usage + verdict.usage
        self._record_verdict(policy, entries, verdict)

    def _record_verdict(self, policy: Policy, entries: Sequence[_Entry], verdict: Verdict) -> None:
        size = max(1, len(entries) - 1)
        for entry in entries:
            name = _candidate_name(entry.index)
            score = verdict.scores[name]
            passed = score >= policy.min_score
            rank = verdict.rank_of(name) if name in verdict.ranking else len(verdict.ranking)
            entry.scores[policy.name] = PolicyScore(
                score=score,
                rank=rank,
                passed=passed,
                vetoed=policy.is_hard and not passed,
                reasoning=verdict.reasoning,
                distribution=(verdict.distributions or {}).get(name),
            )
            entry.rank_fraction[policy.name] = rank / size

    def _judge_failed(self, policy: Policy, indexes: Sequence[int], reason: str, *, kind: str) -> None:
        closed = policy.on_judge_error == "fail_closed"
        for i in indexes:
            self._entries[i].scores[policy.name] = PolicyScore(passed=not closed, vetoed=closed, error=reason)
        action = "treated every candidate as failing (fail_closed)" if closed else "ignored this policy (fail_open)"
        self._fallback(kind, reason, action, policy=policy.name)

    # -- choosing ---------------------------------------------------------

    def _combined(self, entry: _Entry) -> float | None:
        """Weighted mean of soft scores (hard scores where no soft policy scored)."""
        policies = self.guard.policies
        for pool in ([p for p in policies if not p.is_hard], [p for p in policies if p.is_hard]):
            pairs = [(p.weight, entry.scores[p.name].score) for p in pool if p.name in entry.scores]
            scored = [(w, s) for w, s in pairs if s is not None]
            if scored:
                return sum(w * s for w, s in scored) / sum(w for w, _ in scored)
        return None

    def _sort_key(self, entry: _Entry) -> tuple[float, float, int]:
        combined = self._combined(entry)
        ranks = list(entry.rank_fraction.values())
        mean_rank = sum(ranks) / len(ranks) if ranks else 1.0
        return (-(combined if combined is not None else 0.0), mean_rank, entry.index)

    def _vetoed(self, entry: _Entry) -> bool:
        return any(s.vetoed for s in entry.scores.values())

    def best(self) -> int | None:
        """Index of the best candidate not vetoed so far, or ``None``."""
        ok = [e for e in self._entries if not self._vetoed(e)]
        return min(ok, key=self._sort_key).index if ok else None

    def passes(self, index: int) -> bool:
        """Whether a candidate meets every policy's ``min_score`` (and nothing vetoes it)."""
        return all(s.passed and not s.vetoed for s in self._entries[index].scores.values())

    def text_of(self, index: int) -> str:
        """A candidate's text."""
        return self._entries[index].sample.text

    def critique(self, index: int) -> tuple[str, str]:
        """Failed requirements and the judge's notes for a candidate, as text."""
        failures: list[str] = []
        notes: list[str] = []
        by_name = {p.name: p for p in self.guard.policies}
        for name, score in self._entries[index].scores.items():
            if score.passed and not score.vetoed:
                continue
            policy = by_name[name]
            got = "not judged" if score.score is None else f"scored {score.score:.3g}/5"
            failures.append(f"- {policy.name}: {policy.principle.strip()} ({got}; needs {policy.min_score:g})")
            if score.reasoning:
                notes.append(f"[{policy.name}] {score.reasoning.strip()}")
        return "\n".join(failures), "\n\n".join(notes)

    def finish(self, *, strategy: str, started: float, trace_id: str | None) -> Decision:
        """Freeze the run into a :class:`Decision` (raises if every candidate is vetoed)."""
        candidates = [
            Candidate(
                index=e.index,
                text=e.sample.text,
                source=e.source,
                attempt=e.attempt,
                finish_reason=e.sample.finish_reason,
                usage=e.sample.usage,
                response_id=e.sample.response_id,
                scores=dict(e.scores),
                combined=self._combined(e),
            )
            for e in self._entries
        ]
        allowed = self.best()
        rejected = allowed is None
        best = min(self._entries, key=self._sort_key).index if allowed is None else allowed
        if rejected and self.guard.on_all_rejected == "return_best":
            self._fallback(
                "all_rejected", "every candidate was vetoed", "returned the best vetoed candidate (return_best)"
            )
        decision = Decision(
            chosen_index=best,
            candidates=candidates,
            policies=[p.name for p in self.guard.policies],
            strategy=strategy,
            attempts=max(1, self._attempts),
            passed=not rejected and self.passes(best),
            fallbacks=list(self._fallbacks),
            why=self._why(best, candidates),
            sampling_usage=sum((e.sample.usage for e in self._entries if e.source == "sampled"), Usage()),
            judge_usage=self._judge_usage,
            judge_calls=self._judge_calls,
            latency_s=time.perf_counter() - started,
            trace_id=trace_id,
        )
        if rejected and self.guard.on_all_rejected == "raise":
            vetoes = "; ".join(f"{name} vetoed {idx}" for name, idx in decision.vetoes.items())
            raise AllCandidatesRejected(
                f"all {len(candidates)} candidates were vetoed ({vetoes}); inspect err.decision, "
                "or pass on_all_rejected='return_best' to get the best of them anyway",
                decision=decision,
            )
        return decision

    def _why(self, best: int, candidates: Sequence[Candidate]) -> str:
        chosen = candidates[best]
        if len(candidates) == 1:
            head = f"candidate {best} was the only candidate"
        elif chosen.combined is None:
            head = f"candidate {best} was chosen without scores (every judge call failed or was skipped)"
        else:
            head = f"candidate {best} had the best combined score {chosen.combined:.2f}"
        parts = ", ".join(f"{name} {s.score:.3g}" for name, s in chosen.scores.items() if s.score is not None)
        vetoed = [c.index for c in candidates if c.vetoed]
        tail = f"; vetoed: {vetoed}" if vetoed else ""
        return f"{head}" + (f" ({parts})" if parts else "") + tail


class Guard:
    """Sample, judge against policies, and return the best candidate, traced.

    Args:
        policies: Policies, shipped policy names (``"concise"``) or YAML paths.
        judge: A :class:`Judge` or a spec string (``"openai-compat:http://gpu:8000/v1"``).
        strategy: ``"best_of_n"`` (default), ``"retry_with_feedback"`` or a Strategy.
        sampler: The default sampler (a Sampler or a spec like ``"litellm:gpt-4o-mini"``).
        budget: Deadline, candidate and judge-call limits for each decision.
        on_all_rejected: ``"raise"`` :class:`AllCandidatesRejected` (default), or
            ``"return_best"``: return the best vetoed candidate with ``passed=False``.
        name: The guard's name in traces.
        tracer: A :class:`DecisionTracer`; the default uses the global tracer provider.
        audit_log: An :class:`~ra_guard.audit.AuditLog` that records every decision
            (rejected ones too), written off the request path.

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
        loaded = [p if isinstance(p, Policy) else load_policy(p) for p in policies]
        if not loaded:
            raise ConfigurationError("Guard needs at least one policy, e.g. policies=['concise']")
        names = [p.name for p in loaded]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(f"policy names must be unique in a guard; repeated: {', '.join(duplicates)}")
        if on_all_rejected not in ("raise", "return_best"):
            raise ConfigurationError(f"on_all_rejected must be 'raise' or 'return_best', got {on_all_rejected!r}")
        self.policies: tuple[Policy, ...] = tuple(loaded)
        self.judge: Judge = resolve_judge(judge)
        self.strategy: Strategy = resolve_strategy(strategy)
        self.sampler: Sampler | None = resolve_sampler(sampler) if sampler is not None else None
        self.budget = budget or Budget()
        self.on_all_rejected: OnAllRejected = on_all_rejected
        self.name = name
        self.tracer = tracer or DecisionTracer()
        self.audit_log = audit_log

    def __repr__(self) -> str:
        return (
            f"Guard(policies={[p.name for p in self.policies]}, judge={self.judge.name!r}, "
            f"strategy={self.strategy.name!r})"
        )

    def _sampler_for(self, sampler: Sampler | str | None) -> Sampler | None:
        return resolve_sampler(sampler) if sampler is not None else self.sampler

    async def _decide(
        self,
        messages: Messages,
        *,
        strategy_name: str,
        sampler: Sampler | None,
        n: int | None,
        body: _Body,
    ) -> Decision:
        started = time.perf_counter()
        prompt = messages_to_prompt(messages)
        policies = [p.name for p in self.policies]
        with self.tracer.decision(
            guard=self.name, strategy=strategy_name, policies=policies, messages=messages
        ) as span:
            run = DecisionRun(self, messages, sampler=sampler, n_override=n, prompt=prompt)
            await body(run)
            try:
                decision = run.finish(
                    strategy=strategy_name, started=started, trace_id=DecisionTracer.trace_id_of(span)
                )
            except AllCandidatesRejected as exc:
                self._finish_span(span, exc.decision)
                raise
            self._finish_span(span, decision)
            return decision

    def _finish_span(self, span: Span, decision: Decision) -> None:
        self.tracer.finish_decision(span, decision)
        if self.audit_log is not None:
            self.audit_log.record(decision, guard=self.name, policies=self.policies)

    # -- run --------------------------------------------------------------

    async def arun(self, messages: Messages, *, sampler: Sampler | str | None = None, n: int | None = None) -> Decision:
        """Sample candidates for ``messages``, judge them, and return the decision.

        Args:
            messages: The conversation (OpenAI-style dicts).
            sampler: Overrides the guard's sampler for this call.
            n: Overrides the strategy's number of candidates per round.

        Raises:
            AllCandidatesRejected: Every candidate was vetoed (and ``on_all_rejected="raise"``).
            DeadlineExceeded: The deadline passed before any candidate existed.
            SamplerError: The sampler failed.
        """
        chosen_sampler = self._sampler_for(sampler)
        if chosen_sampler is None:
            raise ConfigurationError("run() needs a sampler: pass sampler=... here or to Guard(...)")
        return await self._decide(
            messages, strategy_name=self.strategy.name, sampler=chosen_sampler, n=n, body=self.strategy.decide
        )

    def run(self, messages: Messages, *, sampler: Sampler | str | None = None, n: int | None = None) -> Decision:
        """Synchronous :meth:`arun`."""
        return run_sync(self.arun(messages, sampler=sampler, n=n))

    # -- check ------------------------------------------------------------

    async def acheck(
        self,
        messages: Messages,
        output: str,
        *,
        sampler: Sampler | str | None = None,
        n: int | None = None,
        mode: CheckMode = "on_failure",
    ) -> Decision:
        """Judge an agent's existing ``output``; sample alternatives where it fails.

        Args:
            messages: The conversation that produced ``output``.
            output: The agent's answer (candidate 0, ``source="original"``).
            sampler: Produces alternatives; without one, the output is only judged.
            n: Alternatives to sample (default: the strategy's ``n``).
            mode: ``on_failure`` (default) samples only if the output fails a
                policy; ``always`` samples and compares every time.

        Example:
            >>> from ra_guard.testing import FunctionJudge
            >>> guard = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {k: 5 for k in r.responses}))
            >>> d = guard.check([{"role": "user", "content": "hi"}], "hello")
            >>> d.chosen.source, d.passed
            ('original', True)
        """
        if mode not in ("on_failure", "always"):
            raise ConfigurationError(f"mode must be 'on_failure' or 'always', got {mode!r}")
        chosen_sampler = self._sampler_for(sampler)
        count: int = n if n is not None else int(getattr(self.strategy, "n", 4))

        async def body(run: DecisionRun) -> None:
            original = run.add([Sample(text=output, finish_reason="stop")], source="original", attempt=0)
            if mode == "on_failure":
                await run.judge(original)
                if run.passes(original[0]) or chosen_sampler is None or not run.can_continue():
                    return
            elif chosen_sampler is None:
                await run.judge(original)
                return
            alternatives = await run.sample(
                run.messages, n=count, temperature=getattr(self.strategy, "temperature", None)
            )
            # Judge the original and its alternatives together: a listwise judge compares best
            # when it sees all of them in one call.
            await run.judge([*original, *alternatives])

        return await self._decide(messages, strategy_name="check", sampler=chosen_sampler, n=n, body=body)

    def check(
        self,
        messages: Messages,
        output: str,
        *,
        sampler: Sampler | str | None = None,
        n: int | None = None,
        mode: CheckMode = "on_failure",
    ) -> Decision:
        """Synchronous :meth:`acheck`."""
        return run_sync(self.acheck(messages, output, sampler=sampler, n=n, mode=mode))

    # -- rerank -----------------------------------------------------------

    async def arerank(self, prompt: str | Messages, candidates: Sequence[str]) -> Decision:
        """Score given ``candidates`` for ``prompt`` (no sampling) and choose the best.

        Example:
            >>> from ra_guard.testing import FunctionJudge
            >>> judge = FunctionJudge(lambda r: {k: 6 - len(t) % 5 for k, t in r.responses.items()})
            >>> guard = Guard(policies=["concise"], judge=judge)
            >>> guard.rerank("Greet me", ["hello", "hi"]).text
            'hello'
        """
        if not candidates:
            raise ConfigurationError("rerank() needs at least one candidate")
        messages: Messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt

        async def body(run: DecisionRun) -> None:
            indexes = run.add([Sample(text=c) for c in candidates], source="given", attempt=1)
            await run.judge(indexes)

        return await self._decide(messages, strategy_name="rerank", sampler=None, n=None, body=body)

    def rerank(self, prompt: str | Messages, candidates: Sequence[str]) -> Decision:
        """Synchronous :meth:`arerank`."""
        return run_sync(self.arerank(prompt, candidates))

    async def aclose(self) -> None:
        """Close the judge's and the sampler's pooled resources."""
        await self.judge.aclose()
        if self.sampler is not None:
            await self.sampler.aclose()
