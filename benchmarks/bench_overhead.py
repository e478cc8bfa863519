"""ra-guard's own CPU per decision against a hand-written asyncio floor doing the same work.

Both sides, in the same process and the same run, per decision:

1. sample N candidates with an async function (answers at once),
2. judge them once per policy (2 policies) with an async scoring function,
3. pick the candidate with the best mean score.

The floor is the least code that does this with asyncio (``gather`` for the
samples, ``gather`` for the policies, ``max``). ra-guard does it with
``Guard.arun`` and ``FunctionSampler``/``FunctionJudge`` wrapping the same
functions, tracing through the default (no-op) tracer provider. The figure is
``time.process_time`` per decision; the ratio is ra-guard / floor. Target:
within 2.5x at N=4 and N=32, and per-candidate cost flat (linear) up to N=1,024.

A second table times best-of-8 with a *sync* sampling function that blocks
50 ms (wall time; ideal ~50 ms: the eight calls run in worker threads side by
side, where they once ran one after another on the event loop, ~400 ms).

Run from the repository root::

    .venv/bin/python benchmarks/bench_overhead.py
    .venv/bin/python benchmarks/bench_overhead.py --profile 32   # cProfile of ra-guard at N=32
    .venv/bin/python benchmarks/bench_overhead.py --no-gc        # both sides with the cyclic GC off

``--no-gc`` separates the cyclic garbage collector from the rest: a decision
allocates objects per candidate (samples, scores, the Decision's models), and at
N=1,024 the collections they trigger walk the whole heap, so per-candidate cost
grows with N while the code's own work stays linear.

``RA_GUARD_SOURCE=/path/to/checkout`` measures another copy of ``ra_guard``
(to compare before/after a change in one command line each).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ.get("RA_GUARD_SOURCE", str(ROOT)))

from ra_guard import Guard, JudgeRequest, Policy  # noqa: E402
from ra_guard.testing import FunctionJudge, FunctionSampler  # noqa: E402

POLICIES = [Policy(name="concise", principle="Be concise."), Policy(name="polite", principle="Be polite.")]
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


async def sample_fn(messages: Any, i: int) -> str:
    return f"answer number {i} " + "x" * (i % 7)


async def score_fn(request: JudgeRequest) -> dict[str, float]:
    return {name: 1.0 + (len(text) * 7 + len(request.principle)) % 40 / 10 for name, text in request.responses.items()}


async def floor_decision(n: int) -> str:
    """The same work, written by hand: sample, judge per policy, pick the best mean score."""
    texts = await asyncio.gather(*(sample_fn(MESSAGES, i) for i in range(n)))
    names = [f"c{i}" for i in range(n)]
    verdicts = await asyncio.gather(
        *(
            score_fn(JudgeRequest(principle=p.principle, prompt="q", responses=dict(zip(names, texts, strict=True))))
            for p in POLICIES
        )
    )
    best = max(range(n), key=lambda i: sum(v[names[i]] for v in verdicts))
    return texts[best]


def guard_decision(guard: Guard, sampler: FunctionSampler) -> Callable[[int], Coroutine[Any, Any, str]]:
    async def decide(n: int) -> str:
        return (await guard.arun(MESSAGES, sampler=sampler, n=n)).text

    return decide


def cpu_per_call(decide: Callable[[int], Coroutine[Any, Any, str]], n: int, repeats: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of process CPU seconds per decision."""

    async def many() -> None:
        for _ in range(repeats):
            await decide(n)

    figures = []
    for _ in range(rounds):
        gc.collect()
        start = time.process_time()
        asyncio.run(many())
        figures.append((time.process_time() - start) / repeats)
    return statistics.median(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=int, metavar="N", help="profile ra-guard at this N instead")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the repeat counts (quicker: 0.3)")
    parser.add_argument("--no-gc", action="store_true", help="turn the cyclic garbage collector off (both sides)")
    args = parser.parse_args()
    if args.no_gc:
        gc.disable()
    guard = Guard(policies=POLICIES, judge=FunctionJudge(score_fn))
    sampler = FunctionSampler(sample_fn)
    ours = guard_decision(guard, sampler)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        cpu_per_call(ours, args.profile, repeats=max(1, 2000 // args.profile), rounds=1)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        return
    print(f"ra_guard from {sys.modules['ra_guard'].__file__}" + (" (cyclic GC off)" if args.no_gc else ""))
    print(f"load average before: {_load()}")
    print(f"{'N':>6} {'floor us':>10} {'ra-guard us':>12} {'ratio':>7} {'ra-guard us/cand':>17}")
    for n, repeats in ((4, 400), (32, 100), (1024, 4)):
        count = max(1, int(repeats * args.scale))
        floor = cpu_per_call(floor_decision, n, count)
        guarded = cpu_per_call(ours, n, count)
        print(f"{n:>6} {floor * 1e6:>10.0f} {guarded * 1e6:>12.0f} {guarded / floor:>7.2f} {guarded * 1e6 / n:>17.1f}")
    print(f"load average after the CPU table: {_load()}")
    wall = sync_function_wall()
    print(f"best-of-8, sync function blocking 50 ms: {wall * 1e3:.0f} ms per decision ({wall / 0.05:.1f}x the 50 ms)")


def _load() -> str:
    """The 1-, 5- and 15-minute load averages, and the CPU count they compare with."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def sync_function_wall(n: int = 8, block_s: float = 0.05, repeats: int = 5) -> float:
    """Wall seconds of one best-of-``n`` decision whose sync sampling function blocks ``block_s``."""

    def blocking(messages: Any, i: int) -> str:
        time.sleep(block_s)
        return f"answer {i}"

    guard = Guard(policies=POLICIES, judge=FunctionJudge(score_fn))
    sampler = FunctionSampler(blocking)
    guard.run(MESSAGES, sampler=sampler, n=n)  # warm: threads started, loop running
    start = time.perf_counter()
    for _ in range(repeats):
        guard.run(MESSAGES, sampler=sampler, n=n)
    return (time.perf_counter() - start) / repeats


if __name__ == "__main__":
    main()
