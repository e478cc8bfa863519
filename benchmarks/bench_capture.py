"""What content capture (with secret redaction) costs a traced decision.

One process, one run: the same decisions (best-of-N with function backends that
answer at once, candidates of ``--chars`` characters, two policies) traced by an
SDK tracer provider, first with ``capture_content=False``, then ``True``. It
prints the CPU per decision of each and their ratio (target: capture on within
2x of capture off at 2,000 characters).

Run from the repository root::

    .venv/bin/python benchmarks/bench_capture.py
    .venv/bin/python benchmarks/bench_capture.py --chars 2000 --n 4 --decisions 300
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from ra_guard import Guard, Policy  # noqa: E402
from ra_guard.testing import FunctionJudge, FunctionSampler  # noqa: E402
from ra_guard.tracing import DecisionTracer  # noqa: E402

POLICIES = [Policy(name="concise", principle="Be concise."), Policy(name="polite", principle="Be polite.")]
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "the",
    "answer",
    "explains",
    "why",
    "Paris",
    "is",
    "the",
    "capital",
]


def candidate_text(chars: int, seed: int) -> str:
    """Prose of ``chars`` characters, different per seed (no secrets in it: the common case)."""
    words: list[str] = []
    total = 0
    i = seed
    while total < chars:
        word = WORDS[i % len(WORDS)]
        words.append(word)
        total += len(word) + 1
        i = i * 7 + 3
    return " ".join(words)[:chars]


def build_guard(*, capture: bool) -> Guard:
    judge = FunctionJudge(lambda request: {name: len(text) % 5 + 1 for name, text in request.responses.items()})
    tracer = DecisionTracer(TracerProvider(), capture_content=capture)
    return Guard(policies=POLICIES, judge=judge, tracer=tracer, name="bench-capture")


async def cpu_per_decision(guard: Guard, sampler: FunctionSampler, *, n: int, decisions: int, k: int) -> float:
    messages = [{"role": "user", "content": f"Question {k}: what is the capital of France? " * 5}]
    for _ in range(20):  # warm up
        await guard.arun(messages, sampler=sampler, n=n)
    started = time.process_time()
    for _ in range(decisions):
        await guard.arun(messages, sampler=sampler, n=n)
    return (time.process_time() - started) / decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=2000, help="characters per candidate")
    parser.add_argument("--n", type=int, default=4, help="candidates per decision")
    parser.add_argument("--decisions", type=int, default=300, help="decisions per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is printed")
    args = parser.parse_args()
    texts = [candidate_text(args.chars, seed) for seed in range(args.n)]
    sampler = FunctionSampler(lambda messages, i: texts[i], name="bench-sampler")
    guards = {capture: build_guard(capture=capture) for capture in (False, True)}
    figures: dict[bool, list[float]] = {False: [], True: []}

    async def measure() -> None:
        for round_ in range(args.rounds):
            for capture in (False, True):
                figures[capture].append(
                    await cpu_per_decision(guards[capture], sampler, n=args.n, decisions=args.decisions, k=round_)
                )

    asyncio.run(measure())
    off, on = (statistics.median(figures[c]) for c in (False, True))
    print(
        f"candidates: {args.n} x {args.chars} chars, {len(POLICIES)} policies, "
        f"{args.decisions} decisions x {args.rounds}"
    )
    print(f"{'capture_content':16} {'CPU ms/decision':>16}")
    print(f"{'False':16} {off * 1000:16.3f}")
    print(f"{'True':16} {on * 1000:16.3f}")
    print(f"ratio on/off: {on / off:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
