"""Replay recorded decisions under other policies or another judge: what would change before you switch.

:func:`replay` reads an audit log written with ``AuditLog(include_text=True)``
(the judge's prompt and every candidate's text are in it), judges each recorded
decision's candidates again, all in one listwise call per policy, and reports:

- **flips**: decisions whose winner would be another text;
- **blocks**: decisions whose *served* output (what the user got: the winner,
  or, for a shadow decision, the agent's own output) would be vetoed by a hard
  policy or would miss a policy's ``min_score``; ``newly_blocked`` counts those
  the recorded scores let through, ``unblocked`` the reverse.

Each flip and block is kept with its texts and the new scores, as the examples
behind the counts. A decision whose re-judging fell back (a judge error under
``fail_open``) is counted in ``degraded`` and keeps its reasons, since its
figures are less sure.

A replayed decision judges every candidate at once, whatever the recorded
strategy did (a retry's rounds were judged one by one): listwise scores of the
same text may differ a little between the two.

Command line::

    python -m ra_guard replay decisions.jsonl --policies new.yaml --judge openai-compat:http://gpu:8000/v1 \\
        --report replay.json

Example:
    >>> import tempfile, pathlib
    >>> from ra_guard import AuditLog, Guard, Policy
    >>> from ra_guard.testing import FunctionJudge
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "decisions.jsonl"
    >>> with AuditLog(path, include_text=True) as audit:
    ...     old = Guard(policies=["concise"], judge=FunctionJudge(lambda r: {k: 4 for k in r.responses}),
    ...                 audit_log=audit)
    ...     _ = old.rerank("Say hi", ["Hi!", "Hello, dear friend!"])
    >>> warm = Policy(name="warm", principle="Be warm.", min_score=3)
    >>> report = replay(path, policies=[warm],
    ...                 judge=FunctionJudge(lambda r: {k: max(1, min(5, len(t) / 4)) for k, t in r.responses.items()}))
    >>> report.decisions, len(report.flipped), report.flipped[0].new_winner_text
    (1, 1, 'Hello, dear friend!')
    >>> report.blocked[0].failing
    ['warm']
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ra_guard._sync import run_sync
from ra_guard.audit import decisions_with_text
from ra_guard.exceptions import ConfigurationError
from ra_guard.guard import Guard
from ra_guard.judges import resolve_judge
from ra_guard.judges.base import Judge
from ra_guard.policy import Policy, load_policy
from ra_guard.tracing import DecisionTracer

__all__ = ["ReplayReport", "ReplayedDecision", "areplay", "replay", "served_index"]

_MAX_ERRORS = 100  # errors kept with their decision ids; the count goes on


@dataclass(frozen=True)
class ReplayedDecision:
    """One recorded decision judged again: what the user got, what wins now, and whether it would be blocked.

    Attributes:
        decision_id: The recorded decision's id.
        prompt: The judge's prompt, as recorded.
        shadow: Whether the recorded decision was a shadow one.
        served_index: The candidate the user got (the winner; a shadow decision's own output).
        served_text: Its text.
        old_winner, new_winner: The winner's index, as recorded and now.
        old_winner_text, new_winner_text: Their texts.
        flipped: The winner would be another text.
        blocked: The served output would be vetoed or would fail a policy now.
        was_blocked: The recorded scores vetoed or failed it.
        vetoed_by: Policies whose veto would block it now.
        failing: Policies whose ``min_score`` it would miss now (not vetoing).
        new_scores: Per candidate index, per policy, the new score (``None``: not judged).
        degraded_reasons: Fallbacks of the re-judging (empty when it went as asked).
    """

    decision_id: str
    prompt: str
    shadow: bool
    served_index: int
    served_text: str
    old_winner: int
    old_winner_text: str
    new_winner: int
    new_winner_text: str
    flipped: bool
    blocked: bool
    was_blocked: bool
    vetoed_by: list[str]
    failing: list[str]
    new_scores: dict[int, dict[str, float | None]]
    degraded_reasons: list[str]


@dataclass
class ReplayReport:
    """What replaying a log under other policies or another judge would change.

    Attributes:
        source: The log replayed.
        policies: The policies judged under (their names).
        judge: The judge's name.
        decisions: Decisions judged again.
        flipped: Those whose winner would change, with the texts.
        blocked: Those whose served output would be vetoed or failing.
        newly_blocked: Blocked now, let through by the recorded scores.
        unblocked: Let through now, blocked by the recorded scores.
        degraded: Re-judged with a fallback (a judge error ignored...): less sure.
        errors: Decisions that could not be replayed, ``"decision_id: error"`` (the first 100).
        error_count: How many could not be replayed.

    Example:
        >>> ReplayReport(source="a.jsonl", policies=["brief"], judge="j").summary().splitlines()[0]
        'replayed 0 decision(s) from a.jsonl under brief with j'
    """

    source: str
    policies: list[str]
    judge: str
    decisions: int = 0
    flipped: list[ReplayedDecision] = field(default_factory=list)
    blocked: list[ReplayedDecision] = field(default_factory=list)
    newly_blocked: int = 0
    unblocked: int = 0
    degraded: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (the examples included).

        Example:
            >>> ReplayReport(source="a.jsonl", policies=[], judge="j").to_dict()["flipped_count"]
            0
        """
        data = asdict(self)
        data["flipped_count"] = len(self.flipped)
        data["blocked_count"] = len(self.blocked)
        return data

    def summary(self, examples: int = 3, width: int = 160) -> str:
        """A few lines for a terminal: the counts, then up to ``examples`` of each kind."""

        def cut(text: str) -> str:
            flat = " ".join(text.split())
            return flat if len(flat) <= width else flat[: width - 1] + "…"

        lines = [
            f"replayed {self.decisions} decision(s) from {self.source} under {', '.join(self.policies)} "
            f"with {self.judge}",
            f"winner would flip: {len(self.flipped)}; served output would be blocked: {len(self.blocked)} "
            f"({self.newly_blocked} newly, {self.unblocked} no longer blocked); degraded: {self.degraded}; "
            f"errors: {self.error_count}",
        ]
        for item in self.flipped[:examples]:
            lines += [
                f"  flip {item.decision_id}: {cut(item.prompt)}",
                f"    was: {cut(item.old_winner_text)}",
                f"    now: {cut(item.new_winner_text)}",
            ]
        for item in self.blocked[:examples]:
            why = [f"vetoed by {p}" for p in item.vetoed_by] + [f"fails {p}" for p in item.failing]
            lines += [f"  block {item.decision_id} ({'; '.join(why)}): {cut(item.served_text)}"]
        lines += [f"  error {error}" for error in self.errors[:examples]]
        return "\n".join(lines)


def served_index(record: Mapping[str, Any]) -> int:
    """The candidate the user got: a shadow decision's own output (``source="original"``), else the winner.

    Example:
        >>> served_index({"shadow": True, "chosen_index": 1, "candidates": [{"source": "original"}, {}]})
        0
    """
    if record.get("shadow"):
        for position, candidate in enumerate(record["candidates"]):
            if candidate.get("source") == "original":
                return position
    return int(record["chosen_index"])


def _blocked_in_record(candidate: Mapping[str, Any]) -> bool:
    scores = candidate.get("scores") or {}
    return any(s.get("vetoed") or not s.get("passed", True) for s in scores.values())


class _Guards:
    """One replay guard per policy set: the given policies, or each record's own, loaded by name."""

    def __init__(self, policies: Sequence[Policy | str | Path] | None, judge: Judge, tracer: DecisionTracer) -> None:
        self._judge = judge
        self._tracer = tracer
        self._given = None if policies is None else self._guard(policies)
        self._by_names: dict[tuple[tuple[str, str | None], ...], Guard] = {}

    def _guard(self, policies: Sequence[Policy | str | Path]) -> Guard:
        return Guard(
            policies=policies,
            judge=self._judge,
            on_all_rejected="return_best",
            name="ra-guard-replay",
            tracer=self._tracer,
        )

    def for_record(self, record: Mapping[str, Any]) -> Guard:
        if self._given is not None:
            return self._given
        recorded = tuple((str(p["name"]), p.get("content_hash")) for p in record.get("policies") or [])
        guard = self._by_names.get(recorded)
        if guard is None:
            loaded = []
            for name, content_hash in recorded:
                policy = load_policy(name)
                if content_hash is not None and policy.content_hash != content_hash:
                    raise ConfigurationError(
                        f"the recorded policy {name!r} (content hash {content_hash[:12]}) is not the shipped one "
                        f"({policy.content_hash[:12]}); pass the policies to replay under (--policies FILE...)"
                    )
                loaded.append(policy)
            guard = self._by_names[recorded] = self._guard(loaded)
        return guard

    @property
    def names(self) -> list[str]:
        if self._given is not None:
            return [p.name for p in self._given.policies]
        return sorted({name for key in self._by_names for name, _ in key})


async def _replay_one(guard: Guard, record: Mapping[str, Any]) -> ReplayedDecision:
    candidates = record["candidates"]
    texts = [str(c["text"]) for c in candidates]
    served = served_index(record)
    old_winner = int(record["chosen_index"])
    decision = await guard.arerank(str(record["prompt"]), texts)
    now = decision.candidates[served].scores
    vetoed_by = [name for name, s in now.items() if s.vetoed]
    failing = [name for name, s in now.items() if not s.vetoed and not s.passed]
    return ReplayedDecision(
        decision_id=str(record.get("decision_id", "?")),
        prompt=str(record["prompt"]),
        shadow=bool(record.get("shadow")),
        served_index=served,
        served_text=texts[served],
        old_winner=old_winner,
        old_winner_text=texts[old_winner],
        new_winner=decision.chosen_index,
        new_winner_text=decision.text,
        flipped=decision.text != texts[old_winner],
        blocked=bool(vetoed_by or failing),
        was_blocked=_blocked_in_record(candidates[served]),
        vetoed_by=vetoed_by,
        failing=failing,
        new_scores={c.index: {name: s.score for name, s in c.scores.items()} for c in decision.candidates},
        degraded_reasons=list(decision.degraded_reasons),
    )


async def areplay(
    source: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
    *,
    policies: Sequence[Policy | str | Path] | None,
    judge: Judge | str,
    concurrency: int = 4,
    tracer: DecisionTracer | None = None,
) -> ReplayReport:
    """Judge recorded decisions again under ``policies`` with ``judge``; report flips and blocks.

    Args:
        source: An audit log written with ``include_text=True`` (a path), or its records.
        policies: The policies to judge under (policies, shipped names or YAML paths);
            ``None``: each decision's recorded policies, loaded by name (refused
            where the recorded content hash is not the shipped policy's).
        judge: The judge (an instance, left open; or a spec string, closed at the end).
        concurrency: Decisions judged at once.
        tracer: Traces the replayed decisions (default: the global tracer provider).

    Raises:
        AuditTextMissingError: The log holds no texts (it was written without ``include_text=True``).
        ConfigurationError: ``concurrency`` is below 1, or a recorded policy cannot be loaded as recorded.

    Example:
        >>> # report = await areplay("decisions.jsonl", policies=["new.yaml"], judge="openai-compat:http://gpu:8000/v1")
    """
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
    resolved = resolve_judge(judge)
    records: Iterable[Mapping[str, Any]]
    if isinstance(source, (str, os.PathLike)):
        records, shown = decisions_with_text(source), str(source)
    else:
        records, shown = source, "<records>"
    guards = _Guards(policies, resolved, tracer or DecisionTracer())
    report = ReplayReport(source=shown, policies=guards.names, judge=resolved.name)
    running: set[asyncio.Task[ReplayedDecision]] = set()
    ids: dict[asyncio.Task[ReplayedDecision], tuple[int, str]] = {}
    flipped: list[tuple[int, ReplayedDecision]] = []
    blocked: list[tuple[int, ReplayedDecision]] = []

    def settle(task: asyncio.Task[ReplayedDecision]) -> None:
        position, decision_id = ids.pop(task)
        error = task.exception()
        if error is not None:
            report.error_count += 1
            if len(report.errors) < _MAX_ERRORS:
                report.errors.append(f"{decision_id}: {type(error).__name__}: {error}")
            return
        item = task.result()
        report.decisions += 1
        if item.flipped:
            flipped.append((position, item))
        if item.blocked:
            blocked.append((position, item))
        report.newly_blocked += item.blocked and not item.was_blocked
        report.unblocked += item.was_blocked and not item.blocked
        report.degraded += bool(item.degraded_reasons)

    try:
        for position, record in enumerate(records):  # read as judged: at most `concurrency` held at once
            task = asyncio.ensure_future(_replay_one(guards.for_record(record), record))
            ids[task] = (position, str(record.get("decision_id", "?")))
            running.add(task)
            if len(running) >= concurrency:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    settle(finished)
        if running:
            done, _ = await asyncio.wait(running)
            for finished in done:
                settle(finished)
    finally:
        for task in running:
            task.cancel()
        if isinstance(judge, str):
            await resolved.aclose()
    report.policies = guards.names
    # Tasks finish out of order: the examples keep the log's order.
    report.flipped = [item for _, item in sorted(flipped, key=lambda pair: pair[0])]
    report.blocked = [item for _, item in sorted(blocked, key=lambda pair: pair[0])]
    return report


def replay(
    source: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
    *,
    policies: Sequence[Policy | str | Path] | None,
    judge: Judge | str,
    concurrency: int = 4,
    tracer: DecisionTracer | None = None,
) -> ReplayReport:
    """Synchronous :func:`areplay`.

    Example:
        >>> # print(replay("decisions.jsonl", policies=["new.yaml"], judge=my_judge).summary())
    """
    return run_sync(areplay(source, policies=policies, judge=judge, concurrency=concurrency, tracer=tracer))
