"""The decision engine: :class:`DecisionRun`, the state of one decision that strategies drive.

A strategy (:mod:`ra_guard.strategies`) calls four things on a run:
:meth:`DecisionRun.sample`, :meth:`DecisionRun.judge`, :meth:`DecisionRun.best`
and :meth:`DecisionRun.passes`. The run applies the budgets and the deadline,
checks what samplers and judges return, applies each policy's failure mode,
traces, and at the end freezes everything into a :class:`~ra_guard.decision.Decision`.

Rules it keeps:

- **Nothing falls back in silence.** Every fallback is recorded on the decision,
  logged as a WARNING on the ``ra_guard`` logger (at most once per kind and
  policy per minute, with the count of those held back), and every fallback but
  ``all_rejected`` marks the decision ``degraded``.
- **A verdict is checked before it is used.** Every candidate must have a finite
  score within 1..5 (the RewardAnything scale); anything else is a judge error
  (``JudgeOutputError`` with reason ``missing_candidate``, ``score_not_finite``
  or ``score_out_of_range``) and the policy's ``on_judge_error`` applies.
- **One text, one judgement.** Within a judge call, a text that repeats an
  earlier candidate's exactly is not sent again: the copy shares the scores of
  the first, and says so (``Candidate.duplicate_of``).
- **The deadline keeps what finished.** Under a deadline, samples are consumed
  as they finish (:meth:`~ra_guard.samplers.base.Sampler.astream_samples`); when
  the deadline passes, the finished ones are judged and the rest dropped.

Example:
    >>> from ra_guard import Guard, Policy
    >>> from ra_guard.testing import FunctionJudge
    >>> guard = Guard(policies=[Policy(name="p", principle="Be brief.")],
    ...               judge=FunctionJudge(lambda r: {k: 6 - len(t) for k, t in r.responses.items()}))
    >>> d = guard.rerank("q", ["one", "two", "one"])
    >>> d.chosen_index, d.candidates[2].duplicate_of
    (0, 0)
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from ra_guard._fallback_log import FALLBACK_LOG, FallbackLog
from ra_guard.decision import CandidateSource, Decision, Fallback, degraded_reasons
from ra_guard.exceptions import (
    AllCandidatesRejected,
    ConfigurationError,
    DeadlineExceeded,
    JudgeError,
    JudgeOutputError,
    JudgeTimeoutError,
    SamplerError,
)
from ra_guard.judges.base import JudgeRequest
from ra_guard.policy import Policy
from ra_guard.samplers.base import Sampler
from ra_guard.types import ChatMessage, Messages, Sample
from ra_guard.verdict import Verdict

if TYPE_CHECKING:
    from ra_guard.guard import Guard

__all__ = ["FALLBACK_LOG", "SCORE_RANGE", "DecisionRun", "FallbackLog", "check_verdict"]

#: The RewardAnything score scale: a verdict outside it is a judge error.
SCORE_RANGE = (1.0, 5.0)


# uuid4's version and variant bits, set on 128 random bits exactly as uuid.uuid4() sets them.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def _uuid4_hex() -> str:
    """``uuid.uuid4().hex`` without building a ``UUID`` object (a few microseconds per decision).

    Example:
        >>> import uuid
        >>> uuid.UUID(hex=_uuid4_hex()).version
        4
    """
    return f"{int.from_bytes(os.urandom(16), 'big') & _UUID4_CLEAR | _UUID4_SET:032x}"


def _candidate_name(index: int) -> str:
    return f"candidate-{index}"


class _Score(TypedDict):
    """One candidate under one policy while deciding: the :class:`PolicyScore` fields.

    A plain dict, not an object, so that :meth:`DecisionRun.finish` hands it to the
    one validation of the whole decision as it is (no copy per candidate and policy).
    Treated as frozen once made: a copy of a text shares its first's.
    """

    score: float | None
    rank: int | None
    passed: bool
    vetoed: bool
    reasoning: str
    distribution: list[float] | None
    error: str | None
    repairs: list[str]


@dataclass(slots=True)
class _Entry:
    """A candidate while the decision is being made (mutable; frozen at the end)."""

    index: int
    name: str  # what judges call it (``candidate-{index}``), made once
    sample: Sample
    source: CandidateSource
    attempt: int
    scores: dict[str, _Score] = field(default_factory=dict)
    rank_fraction: dict[str, float] = field(default_factory=dict)
    duplicate_of: int | None = None
    combined: float | None = None
    vetoed: bool = False
    # Best first when sorted: (-combined, mean rank fraction, index); made by _update, not per look.
    key: tuple[float, float, int] = (0.0, 1.0, 0)


def check_verdict(verdict: object, names: Sequence[str], *, judge: str) -> JudgeOutputError | None:
    """Why ``verdict`` cannot be used for ``names``, or ``None`` when it can.

    Example:
        >>> check_verdict(Verdict(scores={"a": 99.0}, ranking=["a"]), ["a"], judge="j").reason
        'score_out_of_range'
    """
    if not isinstance(verdict, Verdict):
        return JudgeOutputError(
            "not_a_verdict", f"the judge returned {type(verdict).__name__}, not a Verdict", raw_text="", judge=judge
        )
    scores = verdict.scores
    low, high = SCORE_RANGE
    # The usual verdict, in one pass: every name scored within the scale (NaN fails the comparison).
    # A plain loop: this runs per judge call, and a generator costs more than the checks at small N.
    nan = math.nan
    for name in names:
        if not low <= scores.get(name, nan) <= high:
            break
    else:
        return None
    for name in names:
        if name not in scores:
            missing = ", ".join(n for n in names if n not in scores)
            return JudgeOutputError(
                "missing_candidate", f"verdict has no score for {missing}", raw_text=verdict.raw_text, judge=judge
            )
        score = scores[name]
        if not math.isfinite(score):
            return JudgeOutputError(
                "score_not_finite", f"{name} scored {score!r}", raw_text=verdict.raw_text, judge=judge
            )
        if not low <= score <= high:
            return JudgeOutputError(
                "score_out_of_range",
                f"{name} scored {score:g}, outside the scale {low:g}..{high:g}",
                raw_text=verdict.raw_text,
                judge=judge,
            )
    return None


class DecisionRun:
    """The state of one decision, driven by a :class:`~ra_guard.strategies.Strategy`.

    Strategies call :meth:`sample`, :meth:`judge`, :meth:`best` and
    :meth:`passes` (and :meth:`critique` to phrase feedback); the run applies
    budgets, failure modes and tracing.

    Args:
        guard: The guard whose policies, judge, budget and tracer apply.
        messages: The conversation as the caller gave it (samplers get it unchanged).
        sampler: Samples candidates (``None`` where the call only judges).
        n_override: The caller's ``n`` for this call, over the strategy's.
        prompt: The judge's rendering of ``messages``.
        notes: Notes gathered before the run (content parts left out...).
    """

    def __init__(
        self,
        guard: Guard,
        messages: Messages,
        *,
        sampler: Sampler | None,
        n_override: int | None,
        prompt: str,
        notes: Sequence[str] = (),
    ) -> None:
        self.guard = guard
        self.messages: list[ChatMessage] = list(messages)
        self.prompt = prompt
        self.n_override = n_override
        self._sampler = sampler
        self._entries: list[_Entry] = []
        self._fallbacks: list[Fallback] = []
        self._notes: list[str] = list(notes)
        self._judge_calls = 0
        # Judge tokens as [prompt, completion]: one Usage at the end, not one per judge call.
        self._judge_tokens = [0, 0]
        self._attempts = 0
        policies = guard.policies
        self._by_name = {p.name: p for p in policies}
        # Soft policies rank candidates; hard ones only where no soft policy scored.
        self._pools = (
            [(p.name, p.weight) for p in policies if not p.is_hard],
            [(p.name, p.weight) for p in policies if p.is_hard],
        )
        budget = guard.budget
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + budget.deadline_s if budget.deadline_s is not None else None
        self._deadline_hit = False
        # Whether any score can veto: a hard policy, or a fail_closed policy whose judge call failed.
        # False (the usual soft-only run) lets _update skip looking for vetoes per candidate.
        self._may_veto = bool(self._pools[1])

    # -- time and budgets -------------------------------------------------

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    def n_or(self, default: int) -> int:
        """The caller's ``n`` for this call where given, else the strategy's ``default``."""
        return default if self.n_override is None else self.n_override

    def can_continue(self) -> bool:
        """Whether budgets and the deadline leave room for another round."""
        budget = self.guard.budget
        if self._deadline_hit or (self._remaining() == 0.0):
            return False
        if budget.max_candidates is not None and len(self._entries) >= budget.max_candidates:
            return False
        return budget.max_judge_calls is None or self._judge_calls < budget.max_judge_calls

    def _fallback(self, kind: str, reason: str, action: str, policy: str | None = None) -> None:
        fallback = Fallback(kind=kind, policy=policy, reason=reason, action=action)
        self._fallbacks.append(fallback)
        FALLBACK_LOG.warn(fallback, guard=self.guard.name)

    def note(self, text: str) -> None:
        """Add a note to the decision (something worth knowing that changed nothing)."""
        if text not in self._notes:
            self._notes.append(text)

    # -- candidates -------------------------------------------------------

    def add(self, samples: Sequence[Sample], *, source: CandidateSource, attempt: int) -> list[int]:
        """Add candidates that did not come from the sampler (an agent's output, given texts)."""
        start = len(self._entries)
        entries = self._entries
        for index, sample in enumerate(samples, start):
            # Positional, all fields, the name inlined (= _candidate_name): this runs per candidate.
            # Not judged yet: no score, the worst mean rank.
            entries.append(
                _Entry(
                    index, f"candidate-{index}", sample, source, attempt, {}, {}, None, None, False, (0.0, 1.0, index)
                )
            )
        return list(range(start, len(entries)))

    async def sample(self, messages: Messages, *, n: int, temperature: float | None) -> list[int]:
        """Sample ``n`` candidates (fewer if the candidate budget says so); return their indexes.

        Under a deadline the samples are taken as they finish; when the deadline
        passes, those that finished are kept (a ``deadline`` fallback) and
        :class:`DeadlineExceeded` is raised only if the decision has no candidate at all.
        """
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
        samples: list[Sample] = []
        with tracer.sampling(
            sampler=sampler.name,
            n=n,
            attempt=attempt,
            temperature=temperature,
            messages=messages,
            model=getattr(sampler, "model", None),
        ) as span:
            try:
                await self._collect(sampler, messages, n, temperature, samples)
            except asyncio.TimeoutError:
                self._deadline_hit = True
                tracer.record_error(span, DeadlineExceeded("deadline passed during sampling"))
                if not samples and not self._entries:
                    raise DeadlineExceeded(
                        f"the decision's deadline ({self.guard.budget.deadline_s}s) passed while sampling, "
                        "before any candidate existed; raise Budget.deadline_s or speed up the sampler"
                    ) from None
                if not samples:
                    self._fallback("deadline", "deadline passed during sampling", "kept best so far")
                    self._attempts -= 1
                    return []
                self._fallback(
                    "deadline",
                    f"deadline passed during sampling; {len(samples)} of {n} samples had finished",
                    "judged the finished samples, dropped the rest",
                )
            except SamplerError as exc:
                tracer.record_error(span, exc)
                raise
            tracer.record_samples(span, samples)
        return self.add(samples, source="sampled", attempt=attempt)

    async def _collect(
        self, sampler: Sampler, messages: Messages, n: int, temperature: float | None, out: list[Sample]
    ) -> None:
        """Fill ``out`` with samples; ``TimeoutError`` when time ran out (``out`` keeps what finished)."""
        remaining = self._remaining()
        if remaining is None:
            # No deadline: nothing to rescue from a hung call, and asample keeps the sampler's order.
            got = await sampler.asample(messages, n=n, temperature=temperature)
            checked: list[Sample] = []
            for sample in got:
                # Checked one by one in a plain loop (no generator per call); a bad one raises SamplerError.
                checked.append(sample if isinstance(sample, Sample) else self._checked(sampler, sample))
            out.extend(checked)
            return
        arrived = asyncio.Event()

        async def drain() -> None:
            async for sample in sampler.astream_samples(messages, n=n, temperature=temperature):
                out.append(self._checked(sampler, sample))
                arrived.set()

        task = asyncio.ensure_future(drain())
        try:
            # Late samples must leave the judge its share of the time: stop early if some finished.
            soft = remaining * (1.0 - self.guard.budget.judge_reserve)
            done, _ = await asyncio.wait({task}, timeout=soft)
            if not done and not out:  # nothing yet: wait for a first sample up to the deadline itself
                first = asyncio.ensure_future(arrived.wait())
                try:
                    await asyncio.wait({task, first}, timeout=self._remaining(), return_when=asyncio.FIRST_COMPLETED)
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

    @staticmethod
    def _checked(sampler: Sampler, sample: object) -> Sample:
        if isinstance(sample, Sample):
            return sample
        got = "None" if sample is None else type(sample).__name__
        raise SamplerError(f"{sampler.name}: sampler returned {got} where a Sample was expected")

    # -- judging ----------------------------------------------------------

    async def judge(self, indexes: Sequence[int]) -> None:
        """Judge the candidates at ``indexes`` under every policy, policies in parallel.

        A text that repeats an earlier one in ``indexes`` is judged once; the
        copy shares its scores (``duplicate_of``).
        """
        if not indexes:
            return
        entries = self._entries
        first_of: dict[str, int] = {}
        distinct: list[int] = []
        copies: list[tuple[int, int]] = []
        for i in indexes:
            text = entries[i].sample.text
            first = first_of.get(text)
            if first is None:
                first_of[text] = i
                distinct.append(i)
                entries[i].duplicate_of = None
            else:
                copies.append((i, first))
                entries[i].duplicate_of = first
        if copies:
            repeated: dict[int, list[int]] = {}
            for copy, first in copies:
                repeated.setdefault(first, []).append(copy)
            for first, same in repeated.items():
                self.note(
                    f"candidate{'s' if len(same) > 1 else ''} {', '.join(map(str, same))} repeat candidate {first}'s "
                    "text exactly: judged once, scores shared"
                )
        policies = self.guard.policies
        max_calls = self.guard.budget.max_judge_calls
        allowed = len(policies) if max_calls is None else max(0, min(len(policies), max_calls - self._judge_calls))
        # What every policy's call shares, made once per round rather than once per policy.
        judged = [entries[i] for i in distinct]
        responses = {e.name: e.sample.text for e in judged}
        names = list(responses)
        if allowed == 1:
            await self._judge_policy(policies[0], distinct, judged, responses, names)
        elif allowed:
            # Each request gets its own copy of the responses: a judge may keep or change its request.
            await asyncio.gather(
                *[self._judge_policy(p, distinct, judged, dict(responses), names) for p in policies[:allowed]]
            )
        for policy in policies[allowed:]:
            self._judge_failed(policy, distinct, "max_judge_calls reached", kind="budget")
        for copy, first in copies:
            source = entries[first]
            entries[copy].scores.update(source.scores)
            entries[copy].rank_fraction.update(source.rank_fraction)
        self._update([entries[i] for i in indexes])

    async def _judge_policy(
        self,
        policy: Policy,
        indexes: Sequence[int],
        entries: Sequence[_Entry],
        responses: dict[str, str],
        names: Sequence[str],
    ) -> None:
        """One judge call for ``entries`` (at ``indexes``), keyed ``names``, under ``policy``."""
        self._judge_calls += 1
        request = JudgeRequest(principle=policy.principle, prompt=self.prompt, responses=responses)
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
                remaining = self._remaining()
                call = judge.ajudge(request)
                verdict = await (call if remaining is None else asyncio.wait_for(call, remaining))
            except asyncio.TimeoutError:
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
            # Checked for every judge: the parser keeps to the scale, a third-party judge might not.
            problem = check_verdict(verdict, names, judge=judge.name)
            if problem is not None:
                tracer.record_error(span, problem)
                self._judge_failed(policy, indexes, str(problem), kind="judge_error")
                return
            tracer.record_verdict(span, verdict)
        usage = verdict.usage
        self._judge_tokens[0] += usage.prompt_tokens
        self._judge_tokens[1] += usage.completion_tokens
        self._record_verdict(policy, entries, verdict)

    def _record_verdict(self, policy: Policy, entries: Sequence[_Entry], verdict: Verdict) -> None:
        size = max(1, len(entries) - 1)
        # Built here rather than through Verdict.ranks: a cached_property takes a lock per first read on 3.11.
        ranks = {name: position for position, name in enumerate(verdict.ranking)}
        unranked = len(verdict.ranking)
        scores = verdict.scores
        distributions = verdict.distributions
        repairs = verdict.repairs
        for repair in repairs:
            self.note(f"{policy.name}: the judge repaired its output ({repair})")
        min_score = policy.min_score
        hard = policy.is_hard
        reasoning = verdict.reasoning
        policy_name = policy.name
        for entry in entries:
            name = entry.name
            score = scores[name]
            passed = score >= min_score
            rank = ranks.get(name, unranked)
            entry.scores[policy_name] = {
                "score": score,
                "rank": rank,
                "passed": passed,
                "vetoed": hard and not passed,
                "reasoning": reasoning,
                "distribution": distributions.get(name) if distributions is not None else None,
                "error": None,
                "repairs": repairs,  # shared: validation copies it into each PolicyScore
            }
            entry.rank_fraction[policy_name] = rank / size

    def _judge_failed(self, policy: Policy, indexes: Sequence[int], reason: str, *, kind: str) -> None:
        closed = policy.on_judge_error == "fail_closed"
        self._may_veto = self._may_veto or closed
        for i in indexes:
            self._entries[i].scores[policy.name] = {
                "score": None,
                "rank": None,
                "passed": not closed,
                "vetoed": closed,
                "reasoning": "",
                "distribution": None,
                "error": reason,
                "repairs": [],
            }
        action = "treated every candidate as failing (fail_closed)" if closed else "ignored this policy (fail_open)"
        self._fallback(kind, reason, action, policy=policy.name)

    def judged(self, index: int) -> bool:
        """Whether a candidate has been through the judge (or its failure mode) under every policy."""
        return len(self._entries[index].scores) == len(self._by_name)

    # -- choosing ---------------------------------------------------------

    def _update(self, changed: Sequence[_Entry]) -> None:
        """Recompute entries' combined score, veto and sort key after their scores changed."""
        # Runs per candidate after each judge round: plain loops, no generators, lookups hoisted.
        pools = self._pools
        may_veto = self._may_veto
        for entry in changed:
            scores = entry.scores
            vetoed = False
            if may_veto:
                for score_of in scores.values():
                    if score_of["vetoed"]:
                        vetoed = True
                        break
            entry.vetoed = vetoed
            combined = None
            for pool in pools:
                total = weights = 0.0
                for name, weight in pool:
                    held = scores.get(name)
                    if held is not None and (score := held["score"]) is not None:
                        total += weight * score
                        weights += weight
                if weights:
                    combined = total / weights
                    break
            entry.combined = combined
            ranks = entry.rank_fraction
            mean_rank = sum(ranks.values()) / len(ranks) if ranks else 1.0
            entry.key = (-combined if combined is not None else 0.0, mean_rank, entry.index)

    def best(self, *, include_vetoed: bool = False) -> int | None:
        """Index of the best candidate so far, vetoed ones left out unless asked; ``None`` if none."""
        best: _Entry | None = None
        for entry in self._entries:
            if (include_vetoed or not entry.vetoed) and (best is None or entry.key < best.key):
                best = entry
        return None if best is None else best.index

    def passes(self, index: int) -> bool:
        """Whether a candidate meets every policy's ``min_score`` (and nothing vetoes it)."""
        return all(s["passed"] and not s["vetoed"] for s in self._entries[index].scores.values())

    def text_of(self, index: int) -> str:
        """A candidate's text."""
        return self._entries[index].sample.text

    def critique(self, index: int) -> tuple[str, str]:
        """Failed requirements and the judge's notes for a candidate, as text."""
        failures: list[str] = []
        notes: list[str] = []
        for name, score in self._entries[index].scores.items():
            if score["passed"] and not score["vetoed"]:
                continue
            policy = self._by_name[name]
            value = score["score"]
            got = "not judged" if value is None else f"scored {value:.3g}/5"
            failures.append(f"- {policy.name}: {policy.principle.strip()} ({got}; needs {policy.min_score:g})")
            if score["reasoning"]:
                notes.append(f"[{policy.name}] {score['reasoning'].strip()}")
        return "\n".join(failures), "\n\n".join(notes)

    def finish(self, *, strategy: str, started: float, trace_id: str | None) -> Decision:
        """Freeze the run into a :class:`Decision` (raises if every candidate is vetoed)."""
        guard = self.guard
        entries = self._entries
        allowed = self.best()
        rejected = allowed is None
        best = self.best(include_vetoed=True) if allowed is None else allowed
        assert best is not None  # a decision always has a candidate
        if rejected and guard.on_all_rejected == "return_best":
            self._fallback(
                "all_rejected", "every candidate was vetoed", "returned the best vetoed candidate (return_best)"
            )
        reasons = degraded_reasons(self._fallbacks)
        sampled = [e.sample.usage for e in entries if e.source == "sampled"]
        # One validation of plain data for the whole decision: pydantic-core builds the nested
        # models in one pass, several times faster than a constructor call per candidate and score.
        decision = Decision.model_validate(
            {
                "decision_id": _uuid4_hex(),
                "chosen_index": best,
                "candidates": [
                    {
                        "index": e.index,
                        "text": e.sample.text,
                        "source": e.source,
                        "attempt": e.attempt,
                        "finish_reason": e.sample.finish_reason,
                        "usage": e.sample.usage,
                        "response_id": e.sample.response_id,
                        "scores": e.scores,
                        "combined": e.combined,
                        "duplicate_of": e.duplicate_of,
                    }
                    for e in entries
                ],
                "policies": list(self._by_name),
                "strategy": strategy,
                "attempts": max(1, self._attempts),
                "passed": not rejected and self.passes(best),
                "fallbacks": self._fallbacks,
                "degraded": bool(reasons),
                "degraded_reasons": reasons,
                "notes": self._notes,
                "why": self._why(best, reasons),
                "sampling_usage": {
                    "prompt_tokens": sum(u.prompt_tokens for u in sampled),
                    "completion_tokens": sum(u.completion_tokens for u in sampled),
                },
                "judge_usage": {"prompt_tokens": self._judge_tokens[0], "completion_tokens": self._judge_tokens[1]},
                "judge_calls": self._judge_calls,
                "latency_s": time.perf_counter() - started,
                "trace_id": trace_id,
            }
        )
        if rejected and guard.on_all_rejected == "raise":
            vetoes = "; ".join(f"{name} vetoed {idx}" for name, idx in decision.vetoes.items())
            raise AllCandidatesRejected(
                f"all {len(entries)} candidates were vetoed ({vetoes}); inspect err.decision, "
                "or pass on_all_rejected='return_best' to get the best of them anyway",
                decision=decision,
            )
        return decision

    def _why(self, best: int, reasons: Sequence[str]) -> str:
        entries = self._entries
        chosen = entries[best]
        if len(entries) == 1:
            head = f"candidate {best} was the only candidate"
        elif chosen.combined is None:
            head = f"candidate {best} was chosen without scores (every judge call failed or was skipped)"
        else:
            head = f"candidate {best} had the best combined score {chosen.combined:.2f}"
        parts = ", ".join(f"{name} {s['score']:.3g}" for name, s in chosen.scores.items() if s["score"] is not None)
        why = head + (f" ({parts})" if parts else "")
        vetoed = [e.index for e in entries if e.vetoed]
        if vetoed:
            why += f"; vetoed: {vetoed}"
        copies: dict[int, list[int]] = {}
        for e in entries:
            if e.duplicate_of is not None:
                copies.setdefault(e.duplicate_of, []).append(e.index)
        for first, same in copies.items():
            why += f"; candidates {', '.join(map(str, same))} repeat candidate {first}'s text (judged once)"
        if reasons:
            why += f"; degraded: {'; '.join(reasons)}"
        return why
