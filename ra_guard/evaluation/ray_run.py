"""The evaluation run as a Ray Data job: the same judging, spread over Ray workers that each hold a judge.

One machine stays the default (:func:`~ra_guard.evaluation.run.evaluate` needs no
Ray); this is for a dataset too large for one. Items go through Ray Data's
``map_batches`` to a pool of actors; each actor builds its judges (and
sampler) once, from spec strings or factories, and judges its batches through
guards exactly as a local run does (:class:`~ra_guard.evaluation._judging.ItemJudging`).
The driver writes every record to the run directory's ``results.jsonl`` as the
batches stream back, so the run resumes, reports and mixes with local runs on
the same directory like any other. Remote judges scale the same way: point the
spec at vLLM replicas behind a litellm Router judge.

Needs the ``ray`` extra: ``pip install 'ra-guard[ray]'``.

Example:
    >>> summary = evaluate_on_ray("data.jsonl", policies=["concise"],
    ...                           judges={"ra": "openai-compat:http://gpu:8000/v1"},
    ...                           out="runs/ray", actors=4)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ra_guard.evaluation._judging import ItemJudging
from ra_guard.evaluation.dataset import EvalItem, read_dataset
from ra_guard.evaluation.progress import Progress
from ra_guard.evaluation.run import RunSummary, check_run_settings
from ra_guard.evaluation.store import ResultStore, task_key
from ra_guard.exceptions import ConfigurationError, MissingDependencyError
from ra_guard.guard import Guard
from ra_guard.judges.base import Judge
from ra_guard.policy import Policy, load_policy
from ra_guard.samplers.base import Sampler

__all__ = ["evaluate_on_ray"]

#: A judge or sampler as a worker builds it: a spec string (``py:module:name`` too) or a picklable factory.
JudgeSource = str | Callable[[], Judge]
SamplerSource = str | Callable[[], Sampler]


def _ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise MissingDependencyError("ray", extra="ray") from exc


def _source_name(source: object) -> str:
    if isinstance(source, str):
        from ra_guard._redact import redact_secrets

        return redact_secrets(source)
    return f"{getattr(source, '__module__', '?')}.{getattr(source, '__qualname__', type(source).__name__)}"


class _Worker:
    """A Ray Data actor: builds its judges once, then judges each batch of items through guards."""

    def __init__(
        self,
        *,
        judges: dict[str, JudgeSource],
        policies: list[dict[str, Any]],
        sampler: SamplerSource | None,
        n: int,
        permutations: int,
        concurrency: int,
    ) -> None:
        from ra_guard.evaluation.cli import build_judge, build_sampler

        built = {label: build_judge(s) if isinstance(s, str) else s() for label, s in judges.items()}
        loaded = [Policy.model_validate(p) for p in policies]
        self.guards = {
            label: Guard(policies=loaded, judge=judge, on_all_rejected="return_best", name=f"eval:{label}")
            for label, judge in built.items()
        }
        self.sampler = None if sampler is None else build_sampler(sampler) if isinstance(sampler, str) else sampler()
        self.n, self.permutations, self.concurrency = n, permutations, concurrency

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from ra_guard._sync import run_sync

        return {"record": run_sync(self._judge(list(batch["item"])))}

    async def _judge(self, payloads: list[str]) -> list[str]:
        records: list[str] = []
        done: dict[str, dict[str, Any]] = {}
        items = []
        for payload in payloads:
            data = json.loads(payload)
            items.append(EvalItem(**data["item"]))
            done.update(data["done"])
        judging = ItemJudging(
            self.guards,
            done,
            sampler=self.sampler,
            n=self.n,
            permutations=self.permutations,
            limit=asyncio.Semaphore(self.concurrency),
            emit=lambda record: records.append(json.dumps(record, ensure_ascii=False)),
        )
        await asyncio.gather(*(judging.item(item) for item in items))
        return records


def evaluate_on_ray(
    dataset: str | Path | Iterable[EvalItem],
    *,
    policies: Sequence[Policy | str | Path],
    judges: Mapping[str, JudgeSource],
    out: str | Path,
    sampler: SamplerSource | None = None,
    n: int = 4,
    permutations: int = 1,
    actors: int = 2,
    batch_size: int = 8,
    concurrency: int = 4,
    progress: bool = True,
    report: bool = True,
) -> RunSummary:
    """Judge ``dataset`` on Ray (connect with ``ray.init`` first, or one starts locally).

    Args:
        dataset: A JSONL path or :class:`EvalItem` objects.
        policies: Policies, shipped names or YAML paths.
        judges: Label -> a judge spec string or a picklable zero-argument factory,
            built once in every worker.
        out: The run directory (shared with local runs: resumed, reported alike).
        sampler: A sampler spec or factory, for items without candidates.
        n: Candidates to sample per item.
        permutations: Orders each judge sees the candidates in.
        actors: Ray workers, each holding its own judges.
        batch_size: Items per batch handed to a worker.
        concurrency: Judgements in flight within one worker.
        progress: Draw a progress bar on stderr.
        report: Write ``report.html`` at the end.

    Raises:
        MissingDependencyError: Ray is not installed.
        ConfigurationError: As :func:`~ra_guard.evaluation.run.aevaluate`.
    """
    ray = _ray()
    if not judges:
        raise ConfigurationError("an evaluation needs at least one judge")
    started = time.perf_counter()
    items = list(read_dataset(dataset) if isinstance(dataset, (str, Path)) else dataset)
    missing = next((item for item in items if item.candidates is None), None)
    if missing is not None and sampler is None:
        raise ConfigurationError(f"line {missing.line} ({missing.key}) has no 'candidates': give them, or a sampler")
    loaded = [p if isinstance(p, Policy) else load_policy(p) for p in policies]
    run_dir = Path(out)
    store = ResultStore(run_dir)
    settings = {
        "policies": [p.model_dump(mode="json") for p in loaded],
        "judges": list(judges),
        "sampler": None if sampler is None else _source_name(sampler),
        "n": n,
        "permutations": permutations,
    }
    check_run_settings(run_dir, settings)
    done = store.load()
    unique: dict[str, EvalItem] = {}
    for item in items:
        unique.setdefault(item.key, item)
    tasks = {key: [task_key(key, label, order) for label in judges for order in range(permutations)] for key in unique}
    summary = RunSummary(run_dir=run_dir, total=sum(len(t) for t in tasks.values()))
    summary.skipped = sum(bool(done.get(t, {}).get("ok")) for keyed in tasks.values() for t in keyed)
    payloads = [
        json.dumps({"item": asdict(item), "done": {t: done[t] for t in tasks[key] if t in done}}, ensure_ascii=False)
        for key, item in unique.items()
        if not all(done.get(t, {}).get("ok") for t in tasks[key])
    ]
    bar = Progress(total=summary.total, initial=summary.skipped, enabled=progress)
    try:
        if payloads:
            if not ray.is_initialized():
                ray.init()
            stream = ray.data.from_items([{"item": p} for p in payloads]).map_batches(
                _Worker,
                fn_constructor_kwargs={
                    "judges": dict(judges),
                    "policies": settings["policies"],
                    "sampler": sampler,
                    "n": n,
                    "permutations": permutations,
                    "concurrency": concurrency,
                },
                batch_size=batch_size,
                concurrency=actors,
            )
            for batch in stream.iter_batches(batch_size=None):
                for text in batch["record"]:  # written as each batch comes back: a crash keeps them
                    record = json.loads(text)
                    store.append(record)
                    if record["ok"]:
                        summary.judged += 1
                    else:
                        summary.failed += 1
                        summary.errors.append(f"line {record['line']} {record['judge']}: {record['error']}")
                    bar.update()
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - started
    if report:
        from ra_guard.evaluation.report import write_report

        summary.report = write_report(run_dir)
    return summary
