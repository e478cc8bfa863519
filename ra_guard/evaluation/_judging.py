"""Judging one dataset item through guards: the part of a run that a local run and a Ray worker share.

An item becomes one task per judge and presentation order. Given candidates
are reranked (in the order of :func:`~ra_guard.judges.scoring.permutation_orders`);
an item without candidates is sampled once, by the first judge's guard, and
every other task reranks the same texts. Each finished task becomes a record
(a JSON-ready dict) handed to ``emit``; a task that raises, or whose decision
is degraded (the guard went on without a judge's answer), is recorded as
failed, so that a later run tries it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ra_guard._redact import redact_secrets
from ra_guard.decision import Decision
from ra_guard.evaluation.dataset import EvalItem
from ra_guard.evaluation.store import task_key
from ra_guard.guard import Guard
from ra_guard.judges.scoring import permutation_orders
from ra_guard.samplers.base import Sampler

__all__ = ["ItemJudging"]

logger = logging.getLogger("ra_guard")


class _Degraded(Exception):
    """A decision made without (some of) its judgements: recorded as a failure."""


class ItemJudging:
    """Judges each item's pending tasks through the guards; hands every record to ``emit`` as it finishes.

    Args:
        guards: Judge label -> its guard.
        done: Task key -> record already made (a resumed run): those with ``ok`` are skipped.
        sampler: Makes candidates for items without them.
        n: Candidates to sample per item.
        permutations: Orders each judge sees the candidates in.
        limit: Bounds the judgements in flight.
        emit: Receives each record (``ok`` true with the decision, or false with the error).
    """

    def __init__(
        self,
        guards: dict[str, Guard],
        done: dict[str, dict[str, Any]],
        *,
        sampler: Sampler | None,
        n: int,
        permutations: int,
        limit: asyncio.Semaphore,
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        self.guards = guards
        self.done = done
        self.sampler = sampler
        self.n = n
        self.permutations = permutations
        self.limit = limit
        self.emit = emit
        #: Called once per task given up without a record (nothing to rerank after sampling failed).
        self.on_skipped: Callable[[], None] = lambda: None

    def _pending(self, key: str) -> list[tuple[str, int]]:
        return [
            (label, order)
            for label in self.guards
            for order in range(self.permutations)
            if not self.done.get(task_key(key, label, order), {}).get("ok")
        ]

    async def item(self, item: EvalItem) -> None:
        pending = self._pending(item.key)
        if not pending:
            return
        candidates = item.candidates
        first = (next(iter(self.guards)), 0)
        if candidates is None:
            # Sampled once, by the first judge's guard; every other task reranks the same texts.
            previous = self.done.get(task_key(item.key, *first), {})
            if previous.get("ok"):
                candidates = previous["candidates"]
            else:
                candidates = await self._task(item, *first, candidates=None)
                pending = [task for task in pending if task != first]
                if candidates is None:
                    for _ in pending:  # nothing to rerank: counted as not done, tried again on restart
                        self.on_skipped()
                    return
        assert candidates is not None
        await asyncio.gather(*(self._task(item, label, order, candidates=candidates) for label, order in pending))

    async def _task(self, item: EvalItem, label: str, order: int, *, candidates: list[str] | None) -> list[str] | None:
        """One judgement; returns the candidate texts in the dataset's order (``None`` if it failed)."""
        guard = self.guards[label]
        record: dict[str, Any] = {
            "task": task_key(item.key, label, order),
            "key": item.key,
            "line": item.line,
            "judge": label,
            "order": order,
            "prompt": item.prompt_text,
            "meta": item.meta,
        }
        async with self.limit:
            try:
                if candidates is None:
                    assert self.sampler is not None
                    decision: Decision = await guard.arun(item.prompt, sampler=self.sampler, n=self.n)  # type: ignore[arg-type]
                    candidates = [c.text for c in decision.candidates]
                    positions = list(range(len(candidates)))
                else:
                    orders = permutation_orders([str(i) for i in range(len(candidates))], self.permutations)
                    positions = [int(i) for i in orders[order]]
                    shown = [candidates[i] for i in positions]
                    decision = await guard.arerank(item.prompt, shown)  # type: ignore[arg-type]
                if decision.degraded:
                    # The guard went on without a judge's answer (fail_open, a deadline): for the
                    # guard a usable decision, for an evaluation a judgement that did not happen.
                    raise _Degraded("; ".join(decision.degraded_reasons))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad line must not end a long run: recorded, retried on restart
                message = str(exc) if isinstance(exc, _Degraded) else redact_secrets(f"{type(exc).__name__}: {exc}")
                logger.warning(
                    "evaluation: line %d (%s), judge %s, order %d failed: %s",
                    item.line,
                    item.key,
                    label,
                    order,
                    message,
                )
                self.emit({**record, "ok": False, "error": message})
                return None
        self.emit(
            {
                **record,
                "ok": True,
                "candidates": candidates,
                "positions": positions,
                "decision": decision.model_dump(mode="json"),
            }
        )
        return candidates
