"""Position bias of the local judge on a real model, and how far averaging K orders removes it.

The same candidate text is judged at every position among its rivals: for each
request, the candidates are presented in several base orders, and each text's
score is read in each. How far one text's score moves with the order is the
position bias. With ``permutations=K`` the judge scores K orders (cyclic shifts
of the base order) and averages; the remaining spread shows what K buys, at
K times the judge's work.

The model is SmolLM2-135M-Instruct (:func:`ra_guard.testing.smollm2.prepare_smollm2`),
a general chat model standing in for a RewardAnything judge, in ``fast`` mode
(expected digit score, no generation), with realistic ~100-word candidates.

Usage::

    .venv/bin/python benchmarks/bench_position.py                      # 8 requests, K = 1, 2, 4 (a few minutes)
    .venv/bin/python benchmarks/bench_position.py --requests 4 --ks 1 4  # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads collapse on a shared machine

from ra_guard.judges.base import JudgeRequest
from ra_guard.local import LocalJudge

TOPICS = {
    "How do I get a stain out of a cotton shirt?": [
        "Blot the stain gently with a clean cloth instead of rubbing it.",
        "Rinse the back of the fabric with cold water to push the stain out.",
        "Apply a small amount of liquid laundry detergent and work it in with your fingers.",
        "Let the detergent sit for about ten minutes before rinsing.",
        "Check the care label first, since some cotton blends shrink in hot water.",
        "For grease, a drop of dish soap breaks the oil down well.",
        "Avoid the dryer until the stain is completely gone, because heat sets it.",
        "Oxygen-based bleach is safe for most white cotton.",
        "Never mix bleach with ammonia, as the fumes are dangerous.",
        "Honestly, you could also just buy a new shirt and save yourself the trouble.",
        "Wash the shirt as usual once the stain has faded.",
        "Test any product on a hidden seam before using it on the stain.",
    ],
    "What should I pack for a three-day hiking trip?": [
        "Bring a tent or shelter rated for the season and a warm sleeping bag.",
        "Pack at least two litres of water capacity and a way to purify more.",
        "A map, a compass and a charged phone help you stay on the trail.",
        "Layered clothing works better than one heavy jacket.",
        "Bring food that is light and calorie dense, such as nuts and dried fruit.",
        "A small first aid kit with blister plasters is essential.",
        "A headlamp with spare batteries makes evenings much easier.",
        "Sunscreen and a hat matter even on cloudy days.",
        "Tell someone your route and when you expect to return.",
        "You probably do not need much, people survived for centuries without gear.",
        "Broken-in boots prevent most foot problems on day two.",
        "A lightweight stove lets you cook warm meals in the evening.",
    ],
    "Explain what a mortgage is.": [
        "A mortgage is a loan used to buy property, secured by that property.",
        "You repay the amount borrowed plus interest over many years.",
        "If the payments stop, the lender can take the property back.",
        "Interest rates can be fixed for the whole term or variable.",
        "A larger down payment usually means a lower monthly payment.",
        "Lenders check your income and credit history before approving one.",
        "Early payments go mostly to interest and later ones mostly to the principal.",
        "Some mortgages charge a fee if you repay them early.",
        "Comparing offers from several lenders can save a lot of money.",
        "Mortgages are a scam invented by banks and you should never take one.",
        "The total cost over the term is often far more than the price of the home.",
        "An adviser can explain the terms before you sign anything.",
    ],
}
PRINCIPLES = [
    "Prefer the response that answers the question accurately and helpfully.",
    "Prefer the response that is clear, well organised and free of bad advice.",
]


def realistic_requests(count: int, candidates: int = 4, words: int = 100, seed: int = 0) -> list[JudgeRequest]:
    """``count`` listwise requests of ``candidates`` distinct answers of about ``words`` words each.

    Answers are built from on-topic sentences (some of them poor advice), so
    candidates differ in quality and length is realistic for a chat answer.

    Example:
        >>> len(realistic_requests(2)[0].responses)
        4
    """
    rng = random.Random(seed)
    requests = []
    topics = list(TOPICS.items())
    for i in range(count):
        prompt, pool = topics[i % len(topics)]
        responses = {}
        for j in range(candidates):
            sentences: list[str] = []
            while sum(len(s.split()) for s in sentences) < words:
                sentences.append(rng.choice(pool))
            responses[f"c{j}"] = " ".join(sentences)
        requests.append(JudgeRequest(principle=PRINCIPLES[i % len(PRINCIPLES)], prompt=prompt, responses=responses))
    return requests


def base_orders(names: list[str], count: int, seed: int) -> list[list[str]]:
    """``count`` distinct presentation orders; the first ``len(names)`` put each name at each position once.

    With a power-of-two number of names the first orders are the Latin square
    ``order[i][p] = names[i XOR p]``: no order is a cyclic shift of another, so
    averaging K cyclic shifts of different base orders still meets different
    neighbours (what a cyclic base set would hide).
    """
    n = len(names)
    if n & (n - 1) == 0:
        orders = [[names[i ^ p] for p in range(n)] for i in range(n)]
    else:
        orders = [names[i:] + names[:i] for i in range(n)]
    rng = random.Random(seed)
    extra = [list(p) for p in itertools.permutations(names) if list(p) not in orders]
    rng.shuffle(extra)
    return (orders + extra)[:count]


async def _scores(judge: LocalJudge, requests: list[JudgeRequest]) -> list[dict[str, float]]:
    verdicts = await asyncio.gather(*(judge.ajudge(r) for r in requests))
    return [{name: float(score) for name, score in v.scores.items()} for v in verdicts]


def measure(judge: LocalJudge, requests: list[JudgeRequest], k: int, orders: int) -> dict[str, Any]:
    """Score every text in ``orders`` base orders with K orders averaged; summarise how scores move."""
    judge.permutations = k
    jobs: list[JudgeRequest] = []
    for request in requests:
        for order in base_orders(request.names, orders, seed=len(jobs)):
            jobs.append(
                JudgeRequest(
                    principle=request.principle,
                    prompt=request.prompt,
                    responses=dict(request.responses),
                    permutation=order,
                )
            )
    started = time.perf_counter()
    scores = asyncio.run(_scores(judge, jobs))
    seconds = time.perf_counter() - started
    spreads: list[float] = []
    agreement: list[float] = []
    by_position: dict[int, list[float]] = {}
    for r, request in enumerate(requests):
        block = scores[r * orders : (r + 1) * orders]
        block_jobs = jobs[r * orders : (r + 1) * orders]
        for name in request.names:
            values = [s[name] for s in block]
            spreads.append(max(values) - min(values))
        winners = [max(s, key=lambda n: s[n]) for s in block]
        agreement.append(max(winners.count(w) for w in set(winners)) / len(winners))
        for s, job in zip(block, block_jobs, strict=True):
            assert job.permutation is not None
            for position, name in enumerate(job.permutation):
                by_position.setdefault(position + 1, []).append(s[name])
    return {
        "k": k,
        "judgments": len(jobs),
        "seconds": seconds,
        "mean_spread": statistics.mean(spreads),
        "max_spread": max(spreads),
        "winner_agreement": statistics.mean(agreement),
        "mean_score_by_position": {p: statistics.mean(v) for p, v in sorted(by_position.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--words", type=int, default=100, help="words per candidate")
    parser.add_argument("--orders", type=int, default=4, help="base orders per request (>= candidates: every position)")
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 2, 4], help="orders averaged (permutations=K)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from ra_guard.testing.smollm2 import prepare_smollm2

    if args.threads:
        torch.set_num_threads(args.threads)
    path = prepare_smollm2(progress=print)
    judge = LocalJudge(path, mode="fast", max_batch_size=8, max_wait_ms=20, device="cpu")
    requests = realistic_requests(args.requests, args.candidates, args.words)
    tokens = len(judge.inputs.prepare(requests[0]).ids)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"SmolLM2-135M-Instruct, fast mode, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load {load:.1f}; {args.requests} requests x {args.candidates} candidates of ~{args.words} words "
        f"({tokens} input tokens), each text scored in {args.orders} base orders"
    )
    print(f"{'K':>2} {'mean spread':>11} {'max spread':>10} {'winner agrees':>13} {'s/judgment':>10}  by position")
    rows = []
    for k in args.ks:
        row = measure(judge, requests, k, args.orders)
        rows.append(row)
        positions = " ".join(f"{p}:{s:.2f}" for p, s in row["mean_score_by_position"].items())
        print(
            f"{k:2d} {row['mean_spread']:11.2f} {row['max_spread']:10.2f} {row['winner_agreement']:13.0%} "
            f"{row['seconds'] / row['judgments']:10.2f}  {positions}",
            flush=True,
        )
    judge.close()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
