"""How much time and CPU ra-guard itself adds to a decision.

Three figures, printed as a table:

(a) latency overhead: best-of-8 wall time / (L + J), against a loopback
    OpenAI-compatible server that answers sampling after L seconds and judging
    after J seconds (target <= 1.15). Measured twice: through the HTTP clients
    (LiteLLMSampler + OpenAICompatJudge, server in a subprocess) and with
    in-process function backends sleeping L and J (pure orchestration).
(b) orchestration CPU: ``time.process_time`` per decision at N=4 with a
    FunctionSampler and a FunctionJudge that answer at once (target <= 1 ms).
(c) the same CPU figure through the HTTP clients. The stub server runs in a
    separate process, so its CPU is *not* counted: the figure is what this
    process spends (ra-guard + openai SDK + litellm + httpx), not the server.

Run from the repository root::

    .venv/bin/python benchmarks/bench_guard.py
    .venv/bin/python benchmarks/bench_guard.py --profile   # cProfile of (b), top entries
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import warnings  # noqa: E402

from ra_guard import Guard, Policy  # noqa: E402
from ra_guard.judges.openai_compat import OpenAICompatJudge  # noqa: E402
from ra_guard.samplers.base import Sampler  # noqa: E402
from ra_guard.testing import FunctionJudge, FunctionSampler  # noqa: E402

POLICIES = [Policy(name="concise", principle="Be concise."), Policy(name="polite", principle="Be polite.")]


def _messages(k: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question number {k}: what is the capital of France?"}]


class StubProcess:
    """The loopback stub server in a child process (its CPU stays out of our figures)."""

    def __init__(self, sampler_latency: float, judge_latency: float) -> None:
        command = [
            sys.executable,
            "-m",
            "tests.support.openai_server",
            "--sampler-latency",
            str(sampler_latency),
            "--judge-latency",
            str(judge_latency),
            "--model",
            "ra-stub",
        ]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"stub server did not start: {self.base_url!r}")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _http_backends(base_url: str) -> tuple[Sampler, OpenAICompatJudge]:
    from ra_guard.samplers.litellm import LiteLLMSampler

    sampler = LiteLLMSampler("openai/gen", api_base=base_url, api_key="x", max_retries=0)
    judge = OpenAICompatJudge(base_url, model="ra-stub", max_retries=0)
    return sampler, judge


async def _wall_ratio(guard: Guard, sampler: Sampler, n: int, expected: float, repeats: int) -> list[float]:
    await guard.arun(_messages(-1), sampler=sampler, n=n)  # warm up: imports, connections
    ratios = []
    for k in range(repeats):
        started = time.perf_counter()
        await guard.arun(_messages(k), sampler=sampler, n=n)
        ratios.append((time.perf_counter() - started) / expected)
    return ratios


async def _cpu_per_decision(guard: Guard, sampler: Sampler, n: int, iterations: int, concurrency: int) -> float:
    for k in range(min(20, iterations)):  # warm up
        await guard.arun(_messages(k), sampler=sampler, n=n)
    started = time.process_time()
    done = 0
    while done < iterations:
        batch = min(concurrency, iterations - done)
        await asyncio.gather(*(guard.arun(_messages(done + i), sampler=sampler, n=n) for i in range(batch)))
        done += batch
    return (time.process_time() - started) / iterations


def _instant_guard() -> tuple[Guard, Sampler]:
    judge = FunctionJudge(lambda request: {name: 1 + len(text) % 5 for name, text in request.responses.items()})
    sampler = FunctionSampler(lambda messages, i: f"answer {i}: Paris is the capital of France.")
    return Guard(policies=POLICIES, judge=judge), sampler


def _sleeping_guard(latency: float, judge_latency: float) -> tuple[Guard, Sampler]:
    async def sample(messages: Any, i: int) -> str:
        await asyncio.sleep(latency)
        return f"answer {i}"

    judge = FunctionJudge(lambda request: {name: 3 for name in request.responses}, delay=judge_latency)
    return Guard(policies=POLICIES, judge=judge), FunctionSampler(sample)


def _run(coro_factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(coro_factory())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sampler-latency", type=float, default=0.3, help="L, seconds")
    parser.add_argument("--judge-latency", type=float, default=0.6, help="J, seconds")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cpu-iterations", type=int, default=2000)
    parser.add_argument("--http-iterations", type=int, default=200)
    parser.add_argument("--profile", action="store_true", help="cProfile the orchestration CPU run")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # litellm's import-time noise is not what we measure
    L, J = args.sampler_latency, args.judge_latency
    rows: list[tuple[str, str, str]] = []

    guard, sampler = _sleeping_guard(L, J)
    ratios = _run(lambda: _wall_ratio(guard, sampler, 8, L + J, args.repeats))
    rows.append(("(a) best-of-8 wall / (L+J), function backends", f"{statistics.median(ratios):.3f}", "<= 1.15"))

    server = StubProcess(L, J)
    try:

        async def http_wall() -> list[float]:
            sampler, judge = _http_backends(server.base_url)
            guard = Guard(policies=POLICIES, judge=judge)
            try:
                return await _wall_ratio(guard, sampler, 8, L + J, args.repeats)
            finally:
                await guard.aclose()
                await sampler.aclose()

        ratios = _run(http_wall)
        rows.append(
            (
                "(a) best-of-8 wall / (L+J), HTTP (litellm + openai-compat)",
                f"{statistics.median(ratios):.3f}",
                "<= 1.15",
            )
        )
    finally:
        server.close()

    guard, sampler = _instant_guard()
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
    cpu = _run(lambda: _cpu_per_decision(guard, sampler, 4, args.cpu_iterations, concurrency=1))
    if args.profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    rows.append(("(b) CPU per decision, N=4, 2 policies, instant function backends", f"{cpu * 1e3:.3f} ms", "<= 1 ms"))

    server = StubProcess(0.0, 0.0)
    try:

        async def http_cpu(use_litellm: bool) -> float:
            http_sampler, judge = _http_backends(server.base_url)
            chosen = http_sampler if use_litellm else sampler
            guard = Guard(policies=POLICIES, judge=judge)
            try:
                return await _cpu_per_decision(guard, chosen, 4, args.http_iterations, concurrency=8)
            finally:
                await guard.aclose()
                await http_sampler.aclose()

        judge_only = _run(lambda: http_cpu(False))
        both = _run(lambda: http_cpu(True))
    finally:
        server.close()
    rows.append(("(c) CPU per decision, N=4, OpenAICompatJudge + function sampler", f"{judge_only * 1e3:.2f} ms", "-"))
    rows.append(("(c) CPU per decision, N=4, OpenAICompatJudge + LiteLLMSampler", f"{both * 1e3:.2f} ms", "-"))

    print(
        f"\nL = {L}s, J = {J}s, {args.repeats} repetitions (median); Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'figure'.ljust(width)}  {'value':>10}  target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:>10}  {target}")


if __name__ == "__main__":
    main()
