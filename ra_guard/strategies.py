"""Decision strategies: how candidates are gathered before the best one is chosen.

A strategy drives a :class:`~ra_guard.engine.DecisionRun`: it asks it to
sample, to judge, and reads back which candidate is best so far. The run
enforces the budgets and the policies' failure modes; the strategy only says
when to sample and when to stop.

Every entry point of a guard runs one strategy's :meth:`Strategy.decide`:

- ``run``: the guard's strategy (``BestOfN``, ``RetryWithFeedback`` or your
  own) gathers candidates from nothing;
- ``check``: :class:`Check` adds the agent's output, judges it, and where it
  fails (or, with ``mode="always"``, anyway) hands it to the guard's strategy's
  :meth:`Strategy.improve`. ``BestOfN`` samples ``n`` alternatives and judges
  them with the output in one listwise call; ``RetryWithFeedback`` sends the
  output's critique as the first feedback and retries up to ``max_attempts`` times;
- ``rerank``: :class:`Rerank` only judges the texts it is given, no sampling.

Example:
    >>> BestOfN(n=8).n
    8
    >>> RetryWithFeedback(max_attempts=3).max_attempts
    3
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ra_guard._inputs import checked_output
from ra_guard.exceptions import ConfigurationError
from ra_guard.types import ChatMessage, Sample

if TYPE_CHECKING:
    from ra_guard.engine import DecisionRun

__all__ = ["BestOfN", "Check", "CheckMode", "Rerank", "RetryWithFeedback", "Strategy", "resolve_strategy"]

#: When ``check`` looks for alternatives: only if the output fails a policy, or every time.
CheckMode = Literal["on_failure", "always"]


def _check_count(owner: str, field: str, value: object) -> None:
    """A ``ConfigurationError`` naming ``owner.field`` unless ``value`` is an integer >= 1 (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{owner}.{field} must be an integer >= 1, got {value!r}")


def _check_temperature(owner: str, value: object) -> None:
    """A ``ConfigurationError`` naming ``owner.temperature`` unless it is ``None`` or a finite number >= 0."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigurationError(
            f"{owner}.temperature must be a number >= 0, or None for the sampler's default, got {value!r}"
        )


class Strategy(ABC):
    """Decides when to sample and when to stop.

    Attributes:
        name: The strategy's name in decisions and traces.
        n: Candidates per sampling round (a call's ``n=`` overrides it).
        temperature: Sampling temperature (``None``: the sampler's default).

    Example:
        >>> class OneShot(Strategy):
        ...     name = "one_shot"
        ...     async def decide(self, run):
        ...         await run.judge(await run.sample(run.messages, n=run.n_or(1), temperature=None))
        >>> OneShot().n
        1
    """

    name: str = "strategy"
    n: int = 1
    temperature: float | None = None

    @abstractmethod
    async def decide(self, run: DecisionRun) -> None:
        """Sample and judge through ``run`` until a winner can be chosen."""

    async def improve(self, run: DecisionRun, index: int) -> None:
        """Look for something better than candidate ``index`` (an agent's output), for ``check``.

        The default judges it (if not judged yet), then runs :meth:`decide`.
        """
        if not run.judged(index):
            await run.judge([index])
        await self.decide(run)


@dataclass(frozen=True)
class BestOfN(Strategy):
    """Sample ``n`` candidates in parallel, judge them listwise once per policy, keep the best.

    Attributes:
        n: Candidates to sample.
        temperature: Sampling temperature (``None``: the sampler's default).

    Example:
        >>> BestOfN(n=4, temperature=0.9).name
        'best_of_n'
    """

    n: int = 4
    temperature: float | None = 0.8
    name: str = "best_of_n"

    def __post_init__(self) -> None:
        _check_count("BestOfN", "n", self.n)
        _check_temperature("BestOfN", self.temperature)

    async def decide(self, run: DecisionRun) -> None:
        new = await run.sample(run.messages, n=run.n_or(self.n), temperature=self.temperature)
        await run.judge(new)

    async def improve(self, run: DecisionRun, index: int) -> None:
        """Sample ``n`` alternatives and judge them together with candidate ``index``.

        A listwise judge compares best when it sees all of them in one call, so
        the output is judged again beside its alternatives.
        """
        new = await run.sample(run.messages, n=run.n_or(self.n), temperature=self.temperature)
        await run.judge([index, *new])


#: How retry-with-feedback phrases the judge's critique to the model.
DEFAULT_FEEDBACK_TEMPLATE = (
    "A reviewer checked your previous answer against these requirements and it fell short:\n"
    "{failures}\n\n"
    "Reviewer's notes:\n{notes}\n\n"
    "Write an improved answer that meets every requirement. Reply with the answer only."
)


@dataclass(frozen=True)
class RetryWithFeedback(Strategy):
    """Sample, judge, and while the best falls below ``min_score``, retry with the critique.

    Each retry sends the conversation plus the best answer so far and the
    judge's critique (policies failed, scores, reasoning). Where a hard policy
    vetoed every candidate so far, the critique is that of the best vetoed one.
    The best candidate across all attempts wins. In ``check``, the agent's
    output is the first answer critiqued, and ``max_attempts`` rounds follow.

    Attributes:
        max_attempts: Sampling rounds at most (>= 1).
        n: Candidates per round.
        temperature: Sampling temperature.
        feedback_template: Text of the critique message; ``{failures}`` and
            ``{notes}`` are filled in.

    Example:
        >>> RetryWithFeedback(max_attempts=2, n=2).name
        'retry_with_feedback'
    """

    max_attempts: int = 3
    n: int = 1
    temperature: float | None = 0.7
    feedback_template: str = DEFAULT_FEEDBACK_TEMPLATE
    name: str = "retry_with_feedback"

    def __post_init__(self) -> None:
        _check_count("RetryWithFeedback", "max_attempts", self.max_attempts)
        _check_count("RetryWithFeedback", "n", self.n)
        _check_temperature("RetryWithFeedback", self.temperature)
        template = self.feedback_template
        if not isinstance(template, str):
            raise ConfigurationError(
                f"RetryWithFeedback.feedback_template must be a string, got {type(template).__name__}"
            )
        try:  # a stray placeholder would otherwise fail only at the first retry, mid-decision
            template.format(failures="", notes="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigurationError(
                f"RetryWithFeedback.feedback_template is not a valid template ({type(exc).__name__}: {exc}); "
                "it may use {failures} and {notes}, and must write other braces doubled ({{ }})"
            ) from None

    async def decide(self, run: DecisionRun) -> None:
        await self._rounds(run, list(run.messages))

    async def improve(self, run: DecisionRun, index: int) -> None:
        """Retry from candidate ``index``: its critique is the first feedback (none if it passes)."""
        if not run.judged(index):
            await run.judge([index])
        if run.passes(index):
            await self._rounds(run, list(run.messages))  # mode="always": look for better anyway
        elif run.can_continue():
            await self._rounds(run, [*run.messages, *self.feedback(run, index)])

    async def _rounds(self, run: DecisionRun, messages: list[ChatMessage]) -> None:
        n = run.n_or(self.n)
        for attempt in range(1, self.max_attempts + 1):
            new = await run.sample(messages, n=n, temperature=self.temperature)
            if not new:
                return  # a budget or the deadline stopped sampling; keep what we have
            await run.judge(new)
            best = run.best()
            if best is not None and run.passes(best):
                return
            if attempt == self.max_attempts or not run.can_continue():
                return
            # Every candidate vetoed by a hard policy: the best vetoed one's critique says what to fix.
            target = best if best is not None else run.best(include_vetoed=True)
            assert target is not None  # this round added candidates
            messages = [*run.messages, *self.feedback(run, target)]

    def feedback(self, run: DecisionRun, index: int) -> list[ChatMessage]:
        """The assistant turn and critique to send before the next attempt."""
        failures, notes = run.critique(index)
        content = self.feedback_template.format(failures=failures, notes=notes or "(none)")
        return [
            {"role": "assistant", "content": run.text_of(index)},
            {"role": "user", "content": content},
        ]


@dataclass(frozen=True)
class Check(Strategy):
    """``check``: judge an agent's ``output`` and, where it fails, let another strategy look for better.

    The output is candidate 0 (``source="original"``). With ``mode="on_failure"``
    it is judged first; if it passes, if the call has no sampler, or if the
    budgets leave no room, that is the decision. Otherwise (and always with
    ``mode="always"``, given a sampler) ``then.improve`` takes over from it.

    Attributes:
        output: The agent's answer (a string, else ``InputError``).
        then: The strategy that looks for alternatives (the guard's strategy).
        mode: ``"on_failure"`` or ``"always"``.

    Example:
        >>> Check("Paris.", then=BestOfN(n=2)).name
        'check'
    """

    output: str
    then: Strategy
    mode: CheckMode = "on_failure"
    name: str = "check"

    def __post_init__(self) -> None:
        if self.mode not in ("on_failure", "always"):
            raise ConfigurationError(f"Check.mode must be 'on_failure' or 'always', got {self.mode!r}")
        checked_output(self.output)
        if not isinstance(self.then, Strategy):
            raise ConfigurationError(f"Check.then must be a Strategy, got {type(self.then).__name__}")

    async def decide(self, run: DecisionRun) -> None:
        (original,) = run.add([Sample(text=self.output, finish_reason="stop")], source="original", attempt=0)
        if self.mode == "on_failure" or not run.can_sample:
            await run.judge([original])
            if not run.can_sample or run.passes(original) or not run.can_continue():
                return
        await self.then.improve(run, original)


@dataclass(frozen=True)
class Rerank(Strategy):
    """``rerank``: judge the given ``texts`` once under every policy; no sampling.

    Attributes:
        texts: The candidates, in order (``source="given"``).

    Example:
        >>> Rerank(("hi", "hello")).name
        'rerank'
    """

    texts: tuple[str, ...]
    name: str = "rerank"

    async def decide(self, run: DecisionRun) -> None:
        await run.judge(run.add([Sample(text=t) for t in self.texts], source="given", attempt=1))


_STRATEGIES: dict[str, type[Strategy]] = {"best_of_n": BestOfN, "retry_with_feedback": RetryWithFeedback}


def resolve_strategy(spec: Strategy | str) -> Strategy:
    """A strategy instance from an instance or a name (``best_of_n``, ``retry_with_feedback``).

    Example:
        >>> resolve_strategy("retry_with_feedback").name
        'retry_with_feedback'
    """
    if isinstance(spec, Strategy):
        return spec
    known = _STRATEGIES.get(spec) if isinstance(spec, str) else None
    if known is None:
        raise ConfigurationError(
            f"unknown strategy {spec!r}; use one of: {', '.join(_STRATEGIES)} or a Strategy instance"
        )
    return known()
