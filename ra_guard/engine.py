"""The decision engine: :class:`DecisionRun`, the state of one decision that a strategy drives.

One decision, top to bottom:

1. The :class:`~ra_guard.guard.Guard` checks the call's input, builds a
   :class:`RunSettings` (its policies, judge, budget, tracer, name) and opens
   the decision's trace span; the engine never sees the guard itself.
2. It makes a :class:`DecisionRun` and hands it to a
   :class:`~ra_guard.strategies.Strategy` (``BestOfN``, ``RetryWithFeedback``,
   or ``Check``/``Rerank`` for ``check`` and ``rerank``), which drives the run
   through the interface below until a winner can be chosen.
3. The guard calls :meth:`DecisionRun.finish`, which freezes the run into a
   :class:`~ra_guard.decision.Decision` (or raises ``AllCandidatesRejected``).

What a strategy calls on a run:

- gathering: :meth:`~DecisionRun.sample` (the sampler's candidates, under the
  budgets and the deadline) and :meth:`~DecisionRun.add` (candidates from
  elsewhere: an agent's output, given texts); both return the new indexes.
  :attr:`~DecisionRun.can_sample` says whether the call has a sampler.
- judging: :meth:`~DecisionRun.judge` (candidates under every policy, one
  listwise request per policy) and :meth:`~DecisionRun.judged`.
- reading: :meth:`~DecisionRun.best`, :meth:`~DecisionRun.passes`,
  :meth:`~DecisionRun.text_of`, :meth:`~DecisionRun.critique` (failed
  requirements and the judge's notes, to phrase feedback).
- pacing: :meth:`~DecisionRun.can_continue` (budgets and the deadline),
  :meth:`~DecisionRun.n_or` (the caller's ``n`` over the strategy's),
  :meth:`~DecisionRun.note` (a note on the decision), and
  :attr:`~DecisionRun.messages` (the conversation as the caller gave it).

Rules the run keeps:

- **Nothing falls back in silence.** Every fallback is recorded on the decision,
  logged as a WARNING on the ``ra_guard`` logger (at most once per kind and
  policy per minute, with the count of those held back), and every fallback but
  ``all_rejected`` marks the decision ``degraded``.
- **One judge call per round.** The requests of a judging round (one per
  policy) go to the judge in one :meth:`~ra_guard.judges.base.Judge.ajudge_many`
  call, so a judge that batches (the reference server's batch route) gets them
  as one batch; the base class runs them side by side. A request that failed
  comes back in place and only its policy's ``on_judge_error`` applies. Each
  request has its own judge span; with several in a round, the shared call runs
  under the decision span (what a backend reports during it, such as retries,
  belongs to the round, not to one policy).
- **A verdict is checked before it is used.** Every candidate must have a finite
  score within 1..5 (the RewardAnything scale); anything else is a judge error
  (``JudgeOutputError`` with reason ``missing_candidate``, ``score_not_finite``
  or ``score_out_of_range``) and the policy's ``on_judge_error`` applies.
- **One text, one judgement.** A text that repeats an earlier candidate's
  exactly (in the same judging round, or in an earlier one: a retry that
  answers the same again) is not sent again: the copy shares the first's
  scores, veto included, and says so (``Candidate.duplicate_of``, a note and
  ``why``). A retry made only of copies calls no judge but still counts as an
  attempt. Where the first's judgement failed, the copy is judged anew.
- **The deadline keeps what finished.** Under a deadline, samples are consumed
  as they finish (:meth:`~ra_guard.samplers.base.Sampler.astream_samples`); when
  the deadline passes, the finished ones are judged and the rest dropped. A
  judging round cut off by the deadline fails every request still in it.

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
import contextvars
import os
import time
from collections.abc import Coroutine, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from opentelemetry.trace import Span

from ra_guard._candidates import (
    SCORE_RANGE,
    Answer,
    Entry,
    Failure,
    Missed,
    candidate_fields,
    check_verdict,
    explain,
    rank,
    record_failure,
    record_verdict,
    repeat_note,
    repeats,
    reusable,
    split_repeats,
    usable_answer,
)
from ra_guard._collect import checked_samples, collect_samples
from ra_guard._fallback_log import FALLBACK_LOG, FallbackLog
from ra_guard.budget import Budget
from ra_guard.decision import CandidateSource, Decision, Fallback, degraded_reasons
from ra_guard.exceptions import (
    AllCandidatesRejected,
    ConfigurationError,
    DeadlineExceeded,
    JudgeError,
    SamplerError,
)
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.policy import Policy
from ra_guard.samplers.base import Sampler
from ra_guard.tracing import DecisionTracer
from ra_guard.types import ChatMessage, Messages, Sample, Usage
from ra_guard.verdict import Verdict

__all__ = ["FALLBACK_LOG", "SCORE_RANGE", "DecisionRun", "FallbackLog", "RunSettings", "check_verdict"]

#: What a decision does when every candidate is vetoed (see ``Guard(on_all_rejected=...)``).
OnAllRejected = Literal["raise", "return_best"]


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What a decision needs from the guard that runs it, and nothing more.

    Built by the guard for each decision; the engine reads nothing else of it.

    Attributes:
        guard_name: The guard's name, in fallback warnings.
        policies: The policies every candidate is judged under, in order (names unique).
        judge: The judge every request of the decision goes to.
        budget: The deadline and the candidate and judge-call limits.
        tracer: Traces sampling and judge calls (the decision span is the guard's).
        on_all_rejected: ``"raise"`` or ``"return_best"`` when every candidate is vetoed.

    Example:
        >>> from ra_guard.testing import FunctionJudge
        >>> settings = RunSettings(guard_name="g", policies=(Policy(name="p", principle="Be brief."),),
        ...                        judge=FunctionJudge(lambda r: {k: 3 for k in r.responses}),
        ...                        budget=Budget(), tracer=DecisionTracer())
        >>> settings.on_all_rejected
        'raise'
    """

    guard_name: str
    policies: tuple[Policy, ...]
    judge: Judge
    budget: Budget
    tracer: DecisionTracer
    on_all_rejected: OnAllRejected = "raise"


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


# What a decision that spent no counted token reports (frozen: one instance serves every decision),
# built as validating {"prompt_tokens": 0, "completion_tokens": 0} builds it (fields set included).
_NO_TOKENS = Usage(prompt_tokens=0, completion_tokens=0)


def _usage(prompt_tokens: int, completion_tokens: int) -> Usage | dict[str, int]:
    """A decision's usage field for its one validation: the shared zero, else the plain counts.

    Example:
        >>> _usage(0, 0) is _usage(0, 0), _usage(3, 1)
        (True, {'prompt_tokens': 3, 'completion_tokens': 1})
    """
    if prompt_tokens == 0 and completion_tokens == 0:
        return _NO_TOKENS
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}


_T = TypeVar("_T")


async def _side_by_side(calls: list[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Run ``calls`` side by side like ``asyncio.gather``, their results in order; the first in this task.

    ``gather`` wraps every coroutine in a task; the first needs none (it runs here
    while the others run as tasks), and one other is awaited as it is. Where one
    raises (cancelled: the calls here fail in place), the others are cancelled.

    Example:
        >>> async def double(x):
        ...     return 2 * x
        >>> asyncio.run(_side_by_side([double(1), double(2), double(3)]))
        [2, 4, 6]
    """
    first, *rest = calls
    if not rest:
        return [await first]
    tasks = [asyncio.ensure_future(call) for call in rest]
    try:
        head = await first
        others = [await tasks[0]] if len(tasks) == 1 else await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    return [head, *others]


class DecisionRun:
    """The state of one decision, driven by a :class:`~ra_guard.strategies.Strategy`.

    Strategies call the interface listed in :mod:`ra_guard.engine`; the run
    applies budgets, failure modes and tracing.

    Args:
        settings: The guard's policies, judge, budget and tracer for this decision.
        messages: The conversation as the caller gave it (samplers get it unchanged).
        sampler: Samples candidates (``None`` where the call only judges).
        n_override: The caller's ``n`` for this call, over the strategy's.
        prompt: The judge's rendering of ``messages``.
        notes: Notes gathered before the run (content parts left out...).

    Example:
        >>> from ra_guard.testing import FunctionJudge
        >>> settings = RunSettings(guard_name="g", policies=(Policy(name="p", principle="Be brief."),),
        ...                        judge=FunctionJudge(lambda r: {k: 6 - len(t) for k, t in r.responses.items()}),
        ...                        budget=Budget(), tracer=DecisionTracer())
        >>> async def decide():
        ...     run = DecisionRun(settings, [], sampler=None, n_override=None, prompt="Say hi")
        ...     await run.judge(run.add([Sample(text="hello"), Sample(text="hi")], source="given", attempt=1))
        ...     return run.finish(strategy="rerank", started=time.perf_counter(), trace_id=None).text
        >>> asyncio.run(decide())
        'hi'
    """

    def __init__(
        self,
        settings: RunSettings,
        messages: Messages,
        *,
        sampler: Sampler | None,
        n_override: int | None,
        prompt: str,
        notes: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.messages: list[ChatMessage] = list(messages)
        self.prompt = prompt
        self.n_override = n_override
        self._sampler = sampler
        self._entries: list[Entry] = []
        self._fallbacks: list[Fallback] = []
        self._notes: list[str] = list(notes)
        self._judge_calls = 0
        # Judge tokens as [prompt, completion]: one Usage at the end, not one per judge call.
        self._judge_tokens = [0, 0]
        self._attempts = 0
        # Text -> the candidate whose judgement later copies of that text share (see split_repeats).
        self._judged_texts: dict[str, int] = {}
        policies = settings.policies
        self._by_name = {p.name: p for p in policies}
        # Soft policies rank candidates; hard ones only where no soft policy scored.
        self._pools = (
            [(p.name, p.weight) for p in policies if not p.is_hard],
            [(p.name, p.weight) for p in policies if p.is_hard],
        )
        deadline_s = settings.budget.deadline_s
        self._deadline = None if deadline_s is None else asyncio.get_running_loop().time() + deadline_s
        self._deadline_hit = False
        # Whether any score can veto: a hard policy, or a fail_closed policy whose judge call failed.
        # False (the usual soft-only run) lets rank() skip looking for vetoes per candidate.
        self._may_veto = bool(self._pools[1])

    # -- time and budgets -------------------------------------------------

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    def n_or(self, default: int) -> int:
        """The caller's ``n`` for this call where given, else the strategy's ``default``."""
        return default if self.n_override is None else self.n_override

    @property
    def can_sample(self) -> bool:
        """Whether this call has a sampler (``rerank`` and ``check`` without one only judge)."""
        return self._sampler is not None

    def can_continue(self) -> bool:
        """Whether budgets and the deadline leave room for another round."""
        budget = self.settings.budget
        if self._deadline_hit or (self._remaining() == 0.0):
            return False
        if budget.max_candidates is not None and len(self._entries) >= budget.max_candidates:
            return False
        return budget.max_judge_calls is None or self._judge_calls < budget.max_judge_calls

    def _fallback(self, kind: str, reason: str, action: str, policy: str | None = None) -> None:
        fallback = Fallback(kind=kind, policy=policy, reason=reason, action=action)
        self._fallbacks.append(fallback)
        FALLBACK_LOG.warn(fallback, guard=self.settings.guard_name)

    def note(self, text: str) -> None:
        """Add a note to the decision (something worth knowing that changed nothing)."""
        if text not in self._notes:
            self._notes.append(text)

    # -- candidates -------------------------------------------------------

    def add(self, samples: Sequence[Sample], *, source: CandidateSource, attempt: int) -> list[int]:
        """Add candidates that did not come from the sampler (an agent's output, given texts)."""
        entries = self._entries
        start = len(entries)
        new = Entry.new
        for index, sample in enumerate(samples, start):
            entries.append(new(index, sample, source, attempt))
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
        limit = self.settings.budget.max_candidates
        if limit is not None:
            n = min(n, limit - len(self._entries))
            if n <= 0:
                self._fallback("budget", "max_candidates reached", "stopped sampling")
                return []
        self._attempts += 1
        attempt = self._attempts
        tracer = self.settings.tracer
        samples: list[Sample] = []
        with tracer.sampling(
            sampler=sampler.name,
            n=n,
            attempt=attempt,
            temperature=temperature,
            messages=messages,
            model=sampler.model,
        ) as span:
            try:
                if self._deadline is None:
                    # collect_samples' own no-deadline path, without its coroutine in between.
                    samples = checked_samples(sampler, await sampler.asample(messages, n=n, temperature=temperature))
                else:
                    await collect_samples(
                        sampler,
                        messages,
                        n=n,
                        temperature=temperature,
                        out=samples,
                        remaining=self._remaining,
                        judge_reserve=self.settings.budget.judge_reserve,
                    )
            except asyncio.TimeoutError:
                self._deadline_hit = True
                tracer.record_error(span, DeadlineExceeded("deadline passed during sampling"))
                if not samples and not self._entries:
                    raise DeadlineExceeded(
                        f"the decision's deadline ({self.settings.budget.deadline_s}s) passed while sampling, "
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

    # -- judging ----------------------------------------------------------

    async def judge(self, indexes: Sequence[int]) -> None:
        """Judge the candidates at ``indexes`` under every policy, in one judging round.

        The round's requests (one per policy the judge-call budget allows) go to
        the judge in one ``ajudge_many`` call. A text that repeats an earlier
        one in ``indexes``, or one judged in an earlier round, is judged once:
        the copy shares its scores (``duplicate_of``). A round of copies only
        calls no judge.
        """
        if not indexes:
            return
        entries = self._entries
        policies = self.settings.policies
        known = self._judged_texts
        distinct, copies = split_repeats(entries, indexes, known, len(policies))
        judged = [entries[i] for i in distinct]
        if judged:
            max_calls = self.settings.budget.max_judge_calls
            allowed = len(policies) if max_calls is None else max(0, min(len(policies), max_calls - self._judge_calls))
            if allowed:
                await self._judge_round(policies[:allowed], judged)
            for policy in policies[allowed:]:
                self._judge_failed(policy, judged, "max_judge_calls reached", kind="budget")
            for entry in judged:
                # The first judgement of a text stands for its later copies (a failed one does not).
                held = known.get(entry.sample.text)
                if held is None or not reusable(entries[held], len(policies)):
                    known[entry.sample.text] = entry.index
        for first, same in copies.items():
            source = entries[first]
            for copy in same:
                entries[copy].scores.update(source.scores)
                entries[copy].rank_fraction.update(source.rank_fraction)
        # Without copies, the round's candidates are those judged, in the same order.
        changed = judged if not copies else [entries[i] for i in indexes]
        rank(changed, pools=self._pools, may_veto=self._may_veto)

    async def _judge_round(self, policies: Sequence[Policy], entries: Sequence[Entry]) -> None:
        """One request per policy for ``entries``, each traced on its own; one call where the judge batches."""
        responses = {e.name: e.sample.text for e in entries}
        names = list(responses)
        prompt = self.prompt
        # Each request gets its own copy of the responses: a judge may keep or change its request.
        requests = [
            JudgeRequest(principle=p.principle, prompt=prompt, responses=responses if i == 0 else dict(responses))
            for i, p in enumerate(policies)
        ]
        self._judge_calls += len(requests)
        tracer = self.settings.tracer
        judge = self.settings.judge
        calls = [
            tracer.judge_call(judge=judge.name, policy=p.name, candidates=len(entries), request=r, model=judge.model)
            for p, r in zip(policies, requests, strict=True)
        ]
        if not judge.batches or len(requests) == 1:
            # One ajudge call per request, side by side, each inside its own judge span: backends see it as
            # the current span (their retries and HTTP spans land on it), and each has the deadline to itself.
            asked = zip(calls, policies, requests, strict=True)
            settled = await _side_by_side([self._judge_one(call, p, r, entries, names) for call, p, r in asked])
            for policy, verdict in zip(policies, settled, strict=True):
                if verdict is not None:
                    self._take(policy, entries, verdict)
            return
        # A batching judge, several requests, one call: each span is entered and left in its own copy of
        # the context, so the spans are siblings under the decision span (not nested) and each records its
        # own answer. The call runs under the decision span, since it serves them all.
        contexts = [contextvars.copy_context() for _ in calls]
        opened = [context.run(call.__enter__) for context, call in zip(contexts, calls, strict=True)]
        try:
            answers = await self._ask_all(requests)
        except BaseException as exc:  # cancelled: every span ends with it
            for context, call in zip(contexts, calls, strict=True):
                context.run(call.__exit__, type(exc), exc, exc.__traceback__)
            raise
        verdicts: list[Verdict | None] = []
        try:
            for context, span, policy, answer in zip(contexts, opened, policies, answers, strict=True):
                verdicts.append(context.run(self._settle, span, policy, answer, entries, names))
        finally:
            for context, call in zip(contexts, calls, strict=True):
                context.run(call.__exit__, None, None, None)
        for policy, verdict in zip(policies, verdicts, strict=True):
            if verdict is not None:
                self._take(policy, entries, verdict)

    async def _judge_one(
        self,
        call: AbstractContextManager[Span],
        policy: Policy,
        request: JudgeRequest,
        entries: Sequence[Entry],
        names: Sequence[str],
    ) -> Verdict | None:
        """One request in one ``ajudge`` call inside its judge span: the verdict to take, or ``None``."""
        with call as span:
            judge = self.settings.judge
            remaining = self._remaining()
            answer: Answer
            try:
                pending = judge.ajudge(request)
                answer = await (pending if remaining is None else asyncio.wait_for(pending, remaining))
            except asyncio.TimeoutError as exc:
                # The decision's deadline, or a timeout the judge raised itself (a judge error).
                if remaining is None or self._remaining() != 0.0:
                    answer = exc
                else:
                    self._deadline_hit = True
                    answer = Missed.DEADLINE
            except Exception as exc:  # failed in place, like ajudge_many's answers
                answer = exc
            return self._settle(span, policy, answer, entries, names)

    async def _ask_all(self, requests: Sequence[JudgeRequest]) -> Sequence[Answer]:
        """The judge's answers to ``requests`` from one ``ajudge_many`` call, one per request, in order."""
        judge = self.settings.judge
        remaining = self._remaining()
        try:
            call = judge.ajudge_many(requests)
            answers = await (call if remaining is None else asyncio.wait_for(call, remaining))
        except asyncio.TimeoutError:
            self._deadline_hit = True
            return [Missed.DEADLINE] * len(requests)
        except Exception as exc:  # ajudge_many should answer in place; one that raises fails every request
            return [exc] * len(requests)
        if not isinstance(answers, list) or len(answers) != len(requests):
            got = f"{len(answers)} answers" if isinstance(answers, list) else type(answers).__name__
            error = JudgeError(
                f"{type(judge).__name__}.ajudge_many returned {got} for {len(requests)} requests; "
                "it must return one verdict or exception per request, in order",
                judge=judge.name,
            )
            return [error] * len(requests)
        return answers

    def _settle(
        self, span: Span, policy: Policy, answer: Answer, entries: Sequence[Entry], names: Sequence[str]
    ) -> Verdict | None:
        """Record one request's answer on its span: the verdict to take, or ``None`` where its policy failed."""
        tracer = self.settings.tracer
        verdict = usable_answer(answer, names, judge=self.settings.judge.name)
        if isinstance(verdict, Failure):
            tracer.record_error(span, verdict.error)
            self._judge_failed(policy, entries, verdict.reason, kind=verdict.kind)
            return None
        tracer.record_verdict(span, verdict)
        return verdict

    def _take(self, policy: Policy, entries: Sequence[Entry], verdict: Verdict) -> None:
        """Write a usable verdict into the candidates' scores, with its usage and repairs."""
        usage = verdict.usage
        self._judge_tokens[0] += usage.prompt_tokens
        self._judge_tokens[1] += usage.completion_tokens
        for repair in verdict.repairs:
            self.note(f"{policy.name}: the judge repaired its output ({repair})")
        record_verdict(policy, entries, verdict)

    def _judge_failed(self, policy: Policy, entries: Sequence[Entry], reason: str, *, kind: str) -> None:
        closed = record_failure(policy, entries, reason)
        self._may_veto = self._may_veto or closed
        action = "treated every candidate as failing (fail_closed)" if closed else "ignored this policy (fail_open)"
        self._fallback(kind, reason, action, policy=policy.name)

    def judged(self, index: int) -> bool:
        """Whether a candidate has been through the judge (or its failure mode) under every policy."""
        return len(self._entries[index].scores) == len(self._by_name)

    # -- choosing ---------------------------------------------------------

    def best(self, *, include_vetoed: bool = False) -> int | None:
        """Index of the best candidate so far, vetoed ones left out unless asked; ``None`` if none."""
        best: Entry | None = None
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
        on_all_rejected = self.settings.on_all_rejected
        entries = self._entries
        allowed = self.best()
        rejected = allowed is None
        best = self.best(include_vetoed=True) if allowed is None else allowed
        assert best is not None  # a decision always has a candidate
        if rejected and on_all_rejected == "return_best":
            self._fallback(
                "all_rejected", "every candidate was vetoed", "returned the best vetoed candidate (return_best)"
            )
        reasons = degraded_reasons(self._fallbacks)
        copies = repeats(entries)
        for first, same in copies.items():
            self.note(repeat_note(first, same))
        sampled_prompt = sampled_completion = 0
        for entry in entries:
            if entry.source == "sampled":
                usage = entry.sample.usage
                sampled_prompt += usage.prompt_tokens
                sampled_completion += usage.completion_tokens
        judge_prompt, judge_completion = self._judge_tokens
        # One validation of plain data for the whole decision: pydantic-core builds the nested
        # models in one pass, several times faster than a constructor call per candidate and score.
        decision = Decision.model_validate(
            {
                "decision_id": _uuid4_hex(),
                "chosen_index": best,
                "candidates": candidate_fields(entries),
                "policies": list(self._by_name),
                "strategy": strategy,
                "attempts": max(1, self._attempts),
                "passed": not rejected and self.passes(best),
                "fallbacks": self._fallbacks,
                "degraded": bool(reasons),
                "degraded_reasons": reasons,
                "notes": self._notes,
                "why": explain(entries, best, reasons, copies),
                "sampling_usage": _usage(sampled_prompt, sampled_completion),
                "judge_usage": _usage(judge_prompt, judge_completion),
                "judge_calls": self._judge_calls,
                "latency_s": time.perf_counter() - started,
                "trace_id": trace_id,
            }
        )
        if rejected and on_all_rejected == "raise":
            vetoes = "; ".join(f"{name} vetoed {idx}" for name, idx in decision.vetoes.items())
            raise AllCandidatesRejected(
                f"all {len(entries)} candidates were vetoed ({vetoes}); inspect err.decision, "
                "or pass on_all_rejected='return_best' to get the best of them anyway",
                decision=decision,
            )
        return decision
