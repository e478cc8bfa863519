"""What shadow mode adds to the request path: ``ShadowGuard.check`` against a plain pass-through.

Both sides, in the same process and the same run, with the same request
threads: each thread handles ``--calls`` requests; a request does
``--interval-ms`` of the app's own work (a sleep: the model call it serves),
then hands its output on, and only that hand-over is timed:

- **pass-through**: ``return output`` (what an app does without ra-guard);
- **shadow**: ``shadow.check(messages, output)``, while the shadow decisions
  run on ra-guard's background loop (a judge that answers after
  ``--judge-ms``, two policies, ``--concurrency`` decisions at once). Where the
  judging falls behind, the bounded queue drops checks: their cost (the drop
  path) is in the figures, and the table counts them.

The figures are per call (median, p99 and mean, µs, ``perf_counter_ns``), the
added latency (shadow − pass-through, median), the ratio of the means (large:
a pass-through costs a fraction of a microsecond) and the added mean as a share
of a whole request (the app's work plus the hand-over).

Run from the repository root::

    .venv/bin/python benchmarks/bench_shadow.py
    .venv/bin/python benchmarks/bench_shadow.py --threads 1 8 --calls 2000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ra_guard import Guard, Policy  # noqa: E402
from ra_guard.judges.base import JudgeRequest  # noqa: E402
from ra_guard.shadow import ShadowGuard  # noqa: E402
from ra_guard.testing import FunctionJudge  # noqa: E402

MESSAGES = [
    {"role": "system", "content": "You answer questions about the product."},
    {"role": "user", "content": "How do I reset my password?"},
]
OUTPUT = "Open Settings, choose Security, then Reset password; a link arrives by email within a minute."
POLICIES = [Policy(name="brief", principle="Be brief."), Policy(name="polite", principle="Be polite.")]

Handler = Callable[[list[dict[str, str]], str], str]


def passthrough(messages: list[dict[str, str]], output: str) -> str:
    return output


def run_threads(handler: Handler, *, threads: int, calls: int, interval_s: float) -> list[int]:
    """Per-call nanoseconds of ``handler`` over every thread."""
    timings: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def worker(out: list[int]) -> None:
        start.wait()
        clock = time.perf_counter_ns
        for _ in range(calls):
            time.sleep(interval_s)  # the app's own work for this request
            t0 = clock()
            handler(MESSAGES, OUTPUT)
            out.append(clock() - t0)

    pool = [threading.Thread(target=worker, args=(timings[i],)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return [t for per_thread in timings for t in per_thread]


def summary(ns: list[int]) -> tuple[float, float, float]:
    """(median, p99, mean) in microseconds."""
    ordered = sorted(ns)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) / 1e3, p99 / 1e3, statistics.fmean(ordered) / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--calls", type=int, default=1000, help="requests per thread")
    parser.add_argument("--interval-ms", type=float, default=1.0, help="the app's work per request")
    parser.add_argument("--judge-ms", type=float, default=5.0, help="the judge's latency per call")
    parser.add_argument("--concurrency", type=int, default=4, help="shadow decisions judged at once")
    parser.add_argument("--max-queue", type=int, default=1000)
    args = parser.parse_args()

    def score(request: JudgeRequest) -> dict[str, float]:
        return {name: 4.0 for name in request.responses}

    async def slow_score(request: JudgeRequest) -> dict[str, float]:
        return score(request)

    judge = FunctionJudge(slow_score, delay=args.judge_ms / 1e3)
    interval_s = args.interval_ms / 1e3
    print(
        f"{args.calls} requests per thread, {args.interval_ms:g} ms of app work each; judge {args.judge_ms:g} ms, "
        f"{len(POLICIES)} policies, {args.concurrency} shadow decisions at once, queue {args.max_queue}"
    )
    header = (
        f"{'threads':>7} | {'pass-through µs med/p99/mean':>29} | {'shadow µs med/p99/mean':>25} | "
        f"{'added µs (med)':>14} | {'ratio (mean)':>12} | {'of request':>10} | {'judged':>7} | {'dropped':>7}"
    )
    print(header)
    print("-" * len(header))
    for threads in args.threads:
        guard = Guard(policies=POLICIES, judge=judge, name="bench-shadow")
        shadow = ShadowGuard(guard, max_queue=args.max_queue, max_concurrency=args.concurrency)
        # Side by side: pass-through, shadow, pass-through again; the baseline is the faster of the two.
        base_a = run_threads(passthrough, threads=threads, calls=args.calls, interval_s=interval_s)
        checked = run_threads(shadow.check, threads=threads, calls=args.calls, interval_s=interval_s)
        base_b = run_threads(passthrough, threads=threads, calls=args.calls, interval_s=interval_s)
        shadow.close()
        base = min(base_a, base_b, key=statistics.fmean)
        b_med, b_p99, b_mean = summary(base)
        s_med, s_p99, s_mean = summary(checked)
        share = (s_mean - b_mean) / (args.interval_ms * 1e3 + b_mean)  # added time over a whole request's
        print(
            f"{threads:>7} | {b_med:>8.2f} /{b_p99:>8.2f} /{b_mean:>8.2f} | "
            f"{s_med:>6.2f} /{s_p99:>7.2f} /{s_mean:>7.2f} | {s_med - b_med:>14.2f} | "
            f"{s_mean / b_mean:>11.1f}x | {share:>9.2%} | {shadow.completed:>7} | {shadow.dropped:>7}"
        )


if __name__ == "__main__":
    main()
