"""Test and demo helpers: judges and samplers driven by functions, and small models to run.

:class:`FunctionJudge` and :class:`FunctionSampler` talk to no model: use them
to test chains that use ra-guard without a GPU or an endpoint; never in
production. The model builders live in submodules, imported on demand (they
need the ``local`` extra): :mod:`ra_guard.testing.tiny_model` builds a tiny
random-weight Qwen3 for unit tests, :mod:`ra_guard.testing.smollm2` prepares
SmolLM2-135M-Instruct, a real small chat model, for the demo and benchmarks.

Example:
    >>> from ra_guard import Guard, Policy
    >>> judge = FunctionJudge(lambda req: {n: 5 if "please" in t else 2 for n, t in req.responses.items()})
    >>> sampler = FunctionSampler(lambda m, i: ["no", "yes please"][i])
    >>> guard = Guard(policies=[Policy(name="polite", principle="Be polite")], judge=judge)
    >>> guard.run([{"role": "user", "content": "Say yes"}], sampler=sampler, n=2).text
    'yes please'
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ra_guard._threads import call_in_thread, is_async_callable
from ra_guard.exceptions import JudgeError, JudgeOutputError
from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.samplers.function import FunctionSampler
from ra_guard.verdict import Verdict

__all__ = ["FunctionJudge", "FunctionSampler"]

ScoreFn = Callable[[JudgeRequest], "Mapping[str, float] | Verdict | Awaitable[Mapping[str, float] | Verdict]"]


class FunctionJudge(Judge):
    """A judge that scores with ``fn(request) -> {name: score}`` (or a full Verdict).

    The ranking follows the scores, best first, ties in the caller's order.
    ``fn`` may be async (it runs on the event loop) or sync (it runs in a
    worker thread, with the caller's context variables, so that policies are
    judged side by side and a deadline can give up on it); exceptions become
    :class:`JudgeError`. ``delay`` (seconds) simulates a judge's latency.

    Example:
        >>> judge = FunctionJudge(lambda r: {n: 4.0 for n in r.responses})
        >>> judge.judge(JudgeRequest(principle="p", prompt="q", responses={"a": "x"})).scores
        {'a': 4.0}
    """

    def __init__(self, fn: ScoreFn, *, name: str = "function-judge", delay: float = 0.0) -> None:
        self.fn = fn
        self.name = name
        self.delay = delay
        self.calls: list[JudgeRequest] = []
        self._async = is_async_callable(fn)

    async def ajudge(self, request: JudgeRequest) -> Verdict:
        self.calls.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            if self._async:
                result = await self.fn(request)  # type: ignore[misc]
            else:
                result = await call_in_thread(self.fn, request)
                if inspect.isawaitable(result):  # a sync function that returned an awaitable
                    result = await result
        except asyncio.CancelledError:
            raise
        except JudgeError:
            raise
        except Exception as exc:
            raise JudgeError(f"scoring function raised {exc!r}", judge=self.name) from exc
        if isinstance(result, Verdict):
            return result
        scores: dict[str, float] = {}
        try:
            for name in request.responses:
                value = result[name]
                if type(value) is not float:  # something to check or convert: the general path below
                    scores = self._scores(result, request)
                    break
                scores[name] = value  # the usual score, a float: taken as it is
        except (KeyError, TypeError, ValueError) as exc:
            raise JudgeError(f"scoring function returned no usable score: {exc!r}", judge=self.name) from exc
        # A stable sort keeps ties in the caller's order, reverse=True included.
        ranking = sorted(scores, key=scores.__getitem__, reverse=True)
        return Verdict(scores=scores, ranking=ranking, model=self.name)

    def _scores(self, result: Any, request: JudgeRequest) -> dict[str, float]:
        """Every name's score as a float: each read first, then bools refused, then each converted."""
        raw = {name: result[name] for name in request.responses}
        for name, value in raw.items():
            if isinstance(value, bool):  # float(True) would read as a score of 1
                raise JudgeOutputError(
                    "score_not_a_number",
                    f"{name} scored {value!r}: a bool is not a score from 1 to 5",
                    raw_text=repr(result)[:200],
                    judge=self.name,
                )
        return {name: float(value) for name, value in raw.items()}
