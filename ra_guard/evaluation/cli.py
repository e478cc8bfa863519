"""``python -m ra_guard eval`` and ``python -m ra_guard quality``: the evaluation commands.

Example:
    $ python -m ra_guard eval data.jsonl --policies concise harmless \\
          --judge openai-compat:http://gpu:8000/v1 --concurrency 8 --out runs/first
    $ python -m ra_guard quality labelled.jsonl --judge "local:/models/ra-8b?mode=fast"

Judge and sampler specs are the usual ones (``openai-compat:URL``,
``litellm:MODEL``, ``local:PATH``...), plus two forms for the command line:
``local:PATH?mode=fast&permutations=4`` passes settings to the local judge,
and ``py:package.module:name`` takes a judge (or sampler) from Python code: an
instance, or a callable that returns one.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ra_guard.exceptions import ConfigurationError
from ra_guard.judges import resolve_judge
from ra_guard.judges.base import Judge
from ra_guard.samplers import resolve_sampler
from ra_guard.samplers.base import Sampler

__all__ = ["COMMANDS", "add_commands", "build_judge", "build_sampler", "run"]

#: The subcommands this module adds.
COMMANDS = ("eval", "quality")


def _from_python(spec: str, kind: type[Any]) -> Any:
    target = spec.removeprefix("py:")
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"{spec!r}: write py:package.module:name")
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"{spec!r}: cannot import it ({exc})") from exc
    if not isinstance(value, kind) and callable(value):
        value = value()
    if not isinstance(value, kind):
        raise ConfigurationError(f"{spec!r} is a {type(value).__name__}, not a {kind.__name__}")
    return value


def _setting(value: str) -> Any:
    """``4`` -> 4, ``0.5`` -> 0.5, ``true`` -> True; anything else stays text."""
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return value


def build_judge(spec: str) -> Judge:
    """A judge from a command-line spec (see the module docs).

    Example:
        >>> build_judge("py:ra_guard.evaluation.cli:_example_judge").name
        'example'
    """
    if spec.startswith("py:"):
        judge: Judge = _from_python(spec, Judge)
        return judge
    if spec.startswith("local:") and "?" in spec:
        from ra_guard.local import LocalJudge

        path, _, query = spec.removeprefix("local:").partition("?")
        settings = {key: _setting(value) for key, value in parse_qsl(query, strict_parsing=True)}
        return LocalJudge(path, **settings)
    return resolve_judge(spec)


def build_sampler(spec: str) -> Sampler:
    """A sampler from a command-line spec (``py:module:name`` or a usual sampler spec)."""
    if spec.startswith("py:"):
        sampler: Sampler = _from_python(spec, Sampler)
        return sampler
    return resolve_sampler(spec)


def _example_judge() -> Judge:
    from ra_guard.testing import FunctionJudge

    return FunctionJudge(lambda request: {name: 3.0 for name in request.responses}, name="example")


def add_commands(subparsers: Any) -> None:
    """Add ``eval`` and ``quality`` to the ``python -m ra_guard`` parser's subparsers."""
    evaluation = subparsers.add_parser(
        "eval", help="judge a dataset through a guard; resumable; writes results.jsonl and report.html"
    )
    evaluation.add_argument("dataset", help="JSONL: {'prompt', 'candidates'} or {'prompt'} with --sampler")
    evaluation.add_argument("--policies", nargs="+", required=True, help="shipped policy names or YAML files")
    evaluation.add_argument(
        "--judge", action="append", required=True, help="judge spec; repeat to compare judges or modes"
    )
    evaluation.add_argument("--sampler", help="sampler spec for lines without candidates")
    evaluation.add_argument("--n", type=int, default=4, help="candidates to sample per line (default 4)")
    evaluation.add_argument(
        "--permutations", type=int, default=1, help="orders each judge sees the candidates in (position bias)"
    )
    evaluation.add_argument("--concurrency", type=int, default=4, help="judgements in flight at most (default 4)")
    evaluation.add_argument("--out", help="run directory (default: DATASET-eval next to the dataset); resumed")
    evaluation.add_argument("--no-progress", action="store_true", help="no progress bar")
    quality = subparsers.add_parser(
        "quality", help="judge labelled rankings (RABench layout): pairwise accuracy, Kendall's tau, NDCG"
    )
    quality.add_argument("labelled", help="JSONL: {'principle', 'prompt', 'responses', 'ranking'} per line")
    quality.add_argument("--judge", required=True, help="judge spec")
    quality.add_argument("--concurrency", type=int, default=4)
    quality.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    quality.add_argument("--json", dest="json_out", help="also write the figures and per-item results here")


def run(args: argparse.Namespace) -> int:
    """Run the command ``args.command``; returns the exit status (2: a usage error, 1: some lines failed)."""
    try:
        if args.command == "eval":
            return _eval(args)
        return _quality(args)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc.filename}: no such file", file=sys.stderr)
        return 2


def _eval(args: argparse.Namespace) -> int:
    from ra_guard.evaluation.run import evaluate

    dataset = Path(args.dataset)
    if not dataset.is_file():
        raise FileNotFoundError(2, "no such file", str(dataset))
    out = Path(args.out) if args.out else dataset.with_name(dataset.stem + "-eval")
    judges = {spec: build_judge(spec) for spec in args.judge}
    sampler = build_sampler(args.sampler) if args.sampler else None
    try:
        summary = evaluate(
            dataset,
            policies=args.policies,
            judges=judges,
            out=out,
            sampler=sampler,
            n=args.n,
            permutations=args.permutations,
            concurrency=args.concurrency,
            progress=not args.no_progress,
        )
    finally:  # the judges and sampler built here are this command's to close
        backends: list[Judge | Sampler] = [*judges.values(), *([sampler] if sampler is not None else [])]
        for backend in backends:
            backend.close()
    print(
        f"{summary.judged} judged, {summary.skipped} already done, {summary.failed} failed "
        f"of {summary.total} in {summary.seconds:.1f}s; results: {out / 'results.jsonl'}; report: {summary.report}"
    )
    for line in summary.errors[:10]:
        print(f"  failed: {line}", file=sys.stderr)
    if summary.failed:
        print(f"{summary.failed} judgement(s) failed: run the same command again to retry them", file=sys.stderr)
    return 1 if summary.failed else 0


def _quality(args: argparse.Namespace) -> int:
    from ra_guard.evaluation.quality import judge_quality, read_labelled

    items = list(read_labelled(args.labelled))
    judge = build_judge(args.judge)
    try:
        result = judge_quality(items, judge, concurrency=args.concurrency, resamples=args.resamples)
    finally:
        judge.close()
    print(result.table())
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    return 1 if result.failed else 0
