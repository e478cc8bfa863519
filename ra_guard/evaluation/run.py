"""Evaluation runs: judge a whole dataset through guards, with bounded concurrency, resumably.

:func:`aevaluate` takes a dataset (see :mod:`ra_guard.evaluation.dataset`), the
policies, one judge or several (to compare judges or judge modes) and, for
lines without candidates, a sampler. Each line is judged through a
:class:`~ra_guard.guard.Guard` per judge (``arerank`` for given candidates,
``arun`` to sample them first; every other judge and order then reranks the
same sampled texts). With ``permutations=K`` each judge also sees the
candidates in K orders (cyclic shifts), which the report turns into
position-bias consistency.

Every judgement is appended to ``results.jsonl`` in the run directory as it
finishes; a run started again on the same directory skips what is there, so a
crash costs at most the judgements in flight. ``run.json`` records the run's
settings, and a restart with other settings is refused rather than mixed in.

Example:
    >>> import tempfile
    >>> from ra_guard.testing import FunctionJudge
    >>> from ra_guard.evaluation.dataset import EvalItem
    >>> judge = FunctionJudge(lambda r: {n: 5 - len(t) / 10 for n, t in r.responses.items()})
    >>> items = [EvalItem(key="q1", line=1, prompt="Hi", candidates=["Hello", "Hello there, friend"])]
    >>> summary = evaluate(items, policies=["concise"], judges=[judge], out=tempfile.mkdtemp(), progress=False)
    >>> summary.judged, summary.failed
    (1, 0)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ra_guard._redact import redact_secrets
from ra_guard._sync import run_sync
from ra_guard.budget import Budget
from ra_guard.evaluation._judging import ItemJudging
from ra_guard.evaluation.dataset import EvalItem, read_dataset
from ra_guard.evaluation.progress import Progress
from ra_guard.evaluation.store import RUN_FILE, ResultStore, task_key
from ra_guard.exceptions import ConfigurationError
from ra_guard.guard import Guard
from ra_guard.judges import resolve_judge
from ra_guard.judges.base import Judge
from ra_guard.policy import Policy, load_policy
from ra_guard.samplers import resolve_sampler
from ra_guard.samplers.base import Sampler

__all__ = ["RunSummary", "aevaluate", "check_run_settings", "evaluate", "judge_labels"]

logger = logging.getLogger("ra_guard")


@dataclass
class RunSummary:
    """What a run did.

    Attributes:
        run_dir: The run directory.
        total: Judgements the dataset asks for (items x judges x orders).
        skipped: Judgements already in the results file (a resumed run).
        judged: Judgements made by this run that succeeded.
        failed: Judgements of this run that raised (recorded; a restart tries them again).
        seconds: Wall time of this run.
        report: The HTML report written at the end, if any.
    """

    run_dir: Path
    total: int = 0
    skipped: int = 0
    judged: int = 0
    failed: int = 0
    seconds: float = 0.0
    report: Path | None = None
    errors: list[str] = field(default_factory=list)


def _specs(judges: Sequence[Judge | str] | Mapping[str, Judge | str]) -> dict[str, Judge | str]:
    """Label -> what the caller gave, labelled as :func:`judge_labels` labels it."""
    if isinstance(judges, Mapping):
        return dict(judges)
    out: dict[str, Judge | str] = {}
    for judge in judges:
        label, count = (redact_secrets(judge) if isinstance(judge, str) else judge.name), 1
        unique = label
        while unique in out:
            count += 1
            unique = f"{label}#{count}"
        out[unique] = judge
    return out


def judge_labels(judges: Sequence[Judge | str] | Mapping[str, Judge | str]) -> dict[str, Judge]:
    """Label -> judge: a mapping's own labels, else spec strings as written (keys redacted) or ``judge.name``.

    A label that repeats gets ``#2``, ``#3``...

    Example:
        >>> from ra_guard.testing import FunctionJudge
        >>> list(judge_labels([FunctionJudge(lambda r: {}), FunctionJudge(lambda r: {})]))
        ['function-judge', 'function-judge#2']
    """
    specs = _specs(judges)
    if not specs:
        raise ConfigurationError(
            "an evaluation needs at least one judge, e.g. --judge openai-compat:http://gpu:8000/v1"
        )
    return {label: resolve_judge(judge) for label, judge in specs.items()}


def _settings_record(
    policies: Sequence[Policy], labels: Sequence[str], sampler: Sampler | None, n: int, permutations: int
) -> dict[str, Any]:
    return {
        "policies": [p.model_dump(mode="json") for p in policies],
        "judges": list(labels),
        "sampler": sampler.name if sampler is not None else None,
        "n": n,
        "permutations": permutations,
    }


def check_run_settings(run_dir: Path, settings: dict[str, Any]) -> None:
    """Write ``run.json``, or check that a resumed run uses the settings it was started with."""
    path = run_dir / RUN_FILE
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in settings if before.get(k) != settings[k]]
        if changed:
            raise ConfigurationError(
                f"{run_dir} holds a run with other settings ({', '.join(changed)} differ); "
                "resume it with the same settings or pass a new --out directory"
            )
        return
    path.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


async def aevaluate(
    dataset: str | Path | Iterable[EvalItem],
    *,
    policies: Sequence[Policy | str | Path],
    judges: Sequence[Judge | str] | Mapping[str, Judge | str],
    out: str | Path,
    sampler: Sampler | str | None = None,
    n: int = 4,
    permutations: int = 1,
    concurrency: int = 4,
    budget: Budget | None = None,
    progress: bool = True,
    report: bool = True,
) -> RunSummary:
    """Judge every item of ``dataset``; results go to ``out/results.jsonl``, the report to ``out/report.html``.

    Args:
        dataset: A JSONL path or :class:`EvalItem` objects.
        policies: Policies, shipped names or YAML paths (as for :class:`Guard`).
        judges: One judge or several (instances, spec strings, or a label -> judge mapping).
        out: The run directory; an existing one is resumed.
        sampler: Makes candidates for items without them (``n`` per item).
        n: Candidates to sample per item.
        permutations: Orders each judge sees the candidates in (1: as given).
        concurrency: Judgements in flight at most.
        budget: The guards' budget per decision.
        progress: Draw a progress bar on stderr.
        report: Write ``report.html`` at the end.

    Raises:
        ConfigurationError: Bad settings, an item without candidates and no sampler,
            or ``out`` holding a run with other settings.
        DatasetError: A malformed dataset line or results file.
    """
    if concurrency < 1 or permutations < 1 or n < 1:
        raise ConfigurationError("concurrency, permutations and n must each be at least 1")
    started = time.perf_counter()
    items = list(read_dataset(dataset) if isinstance(dataset, (str, Path)) else dataset)
    chosen_sampler = resolve_sampler(sampler) if sampler is not None else None
    missing = next((item for item in items if item.candidates is None), None)
    if missing is not None and chosen_sampler is None:
        raise ConfigurationError(
            f"line {missing.line} ({missing.key}) has no 'candidates': give them, or a sampler (--sampler SPEC)"
        )
    labelled = judge_labels(judges)
    loaded = [p if isinstance(p, Policy) else load_policy(p) for p in policies]
    guards = {
        label: Guard(policies=loaded, judge=judge, budget=budget, on_all_rejected="return_best", name=f"eval:{label}")
        for label, judge in labelled.items()
    }
    run_dir = Path(out)
    store = ResultStore(run_dir)
    check_run_settings(run_dir, _settings_record(loaded, list(labelled), chosen_sampler, n, permutations))
    done = store.load()
    ok_done = {task for task, record in done.items() if record.get("ok")}
    unique: dict[str, EvalItem] = {}
    for item in items:
        unique.setdefault(item.key, item)  # a repeated line is judged once
    summary = RunSummary(run_dir=run_dir, total=len(unique) * len(labelled) * permutations)
    summary.skipped = sum(
        task_key(key, label, order) in ok_done for key in unique for label in labelled for order in range(permutations)
    )
    if summary.skipped:
        logger.info(
            "evaluation %s: resuming, %d of %d judgements already done", run_dir, summary.skipped, summary.total
        )
    bar = Progress(total=summary.total, initial=summary.skipped, enabled=progress)
    limit = asyncio.Semaphore(concurrency)

    def emit(record: dict[str, Any]) -> None:
        store.append(record)
        if record["ok"]:
            summary.judged += 1
        else:
            summary.failed += 1
            summary.errors.append(f"line {record['line']} {record['judge']}#{record['order']}: {record['error']}")
        bar.update()

    runner = ItemJudging(guards, done, sampler=chosen_sampler, n=n, permutations=permutations, limit=limit, emit=emit)
    runner.on_skipped = bar.update
    queue: asyncio.Queue[EvalItem] = asyncio.Queue()
    for item in unique.values():
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            await runner.item(queue.get_nowait())

    try:
        await asyncio.gather(*(worker() for _ in range(min(concurrency, max(1, len(unique))))))
    finally:
        bar.close()
        # What this run built from spec strings is its own to close; instances belong to the caller.
        owned: list[Judge | Sampler] = [
            labelled[label] for label, spec in _specs(judges).items() if isinstance(spec, str)
        ]
        if isinstance(sampler, str) and chosen_sampler is not None:
            owned.append(chosen_sampler)
        for backend in owned:
            await backend.aclose()
    summary.seconds = time.perf_counter() - started
    if report:
        from ra_guard.evaluation.report import write_report

        summary.report = write_report(run_dir)
    return summary


def evaluate(
    dataset: str | Path | Iterable[EvalItem],
    *,
    policies: Sequence[Policy | str | Path],
    judges: Sequence[Judge | str] | Mapping[str, Judge | str],
    out: str | Path,
    sampler: Sampler | str | None = None,
    n: int = 4,
    permutations: int = 1,
    concurrency: int = 4,
    budget: Budget | None = None,
    progress: bool = True,
    report: bool = True,
) -> RunSummary:
    """Synchronous :func:`aevaluate` (same arguments)."""
    return run_sync(
        aevaluate(
            dataset,
            policies=policies,
            judges=judges,
            out=out,
            sampler=sampler,
            n=n,
            permutations=permutations,
            concurrency=concurrency,
            budget=budget,
            progress=progress,
            report=report,
        )
    )
