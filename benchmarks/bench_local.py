"""Local judge throughput: ra-guard's batched LocalJudge versus the reference RewardModel.

Side by side in one run, on the same saved model directory, the same judge
inputs and the same ``max_new_tokens``, greedy on both sides:

- reference: ``rewardanything.local.from_pretrained(dir).judge_batch(requests, batch_size=B)``
  (it loops over requests one ``generate`` at a time);
- ra-guard ``mode="reasoning"``: ``LocalJudge(dir, max_batch_size=B)``, all requests
  submitted concurrently, gathered by the dynamic batcher;
- ra-guard ``mode="fast"``: forced-JSON digit scoring (no generation);
- whole decisions: 32 ``Guard.arun`` decisions concurrently versus one after another.

The default model is SmolLM2-135M-Instruct's real weights
(:func:`ra_guard.testing.smollm2.prepare_smollm2`; a chat model standing in for a
RewardAnything judge) with realistic candidates of about 100 words
(``--words``; 0 uses the old 3-12-word answers). ``tiny`` (~0.1M) and ``small``
(~20M) are random-weight Qwen3s built by :mod:`ra_guard.testing.tiny_model`; their
generations are garbage. Either way both sides generate greedily from the same
weights, so they produce the same tokens (the tokens per judgment are printed),
and a judgment counts whether or not its output parses. Both sides run in this
process, with the same torch thread count (``--threads``); the machine's load is
printed before and after, because a loaded machine skews every figure.

Usage::

    .venv/bin/python benchmarks/bench_local.py --threads 1     # SmolLM2, ~100-word candidates
    .venv/bin/python benchmarks/bench_local.py --sizes tiny small --words 0 --batch-sizes 8 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads collapse on a shared machine

from ra_guard import BestOfN, Guard
from ra_guard.exceptions import JudgeOutputError
from ra_guard.judges.base import JudgeRequest
from ra_guard.local import LocalJudge, Mode
from ra_guard.testing import FunctionSampler
from ra_guard.testing.tiny_model import build_tiny_model
from ra_guard.types import ChatMessage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_position import realistic_requests  # a sibling script

#: The dtype both sides load the model in (``--dtype``).
DTYPE = ["float32"]

PRINCIPLES = [
    "Answer in as few words as possible.",
    "Be accurate; prefer responses that state facts correctly.",
    "Be polite and never condescending.",
    "Refuse harmful requests; answer harmless ones fully.",
]
ANSWERS = [
    "Paris.",
    "The capital of France is Paris, which is also its largest city.",
    "Lyon, I think.",
    "I am not able to help with geography questions.",
]


def make_requests(count: int, candidates: int) -> list[JudgeRequest]:
    """``count`` distinct listwise requests with ``candidates`` responses each."""
    return [
        JudgeRequest(
            principle=PRINCIPLES[i % len(PRINCIPLES)] + f" (case {i})",
            prompt="What is the capital of France?",
            responses={f"r{j}": ANSWERS[(i + j) % len(ANSWERS)] for j in range(candidates)},
        )
        for i in range(count)
    ]


def bench_reference(
    path: Path, requests: list[JudgeRequest], batch_size: int, max_new_tokens: int, repeats: int = 1
) -> tuple[float, float]:
    """Best seconds of the reference ``judge_batch`` over ``requests`` (after a warm-up); new tokens per judgment."""
    from rewardanything import local

    model = local.from_pretrained(str(path), device="cpu", torch_dtype=DTYPE[0])
    tokenizer = model.tokenizer
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": False,
        "temperature": None,
        "top_p": None,
        "eos_token_id": tokenizer.eos_token_id,
        # The reference's own GenerationConfig leaves use_cache unset, which on transformers 5.x
        # runs markedly slower; asking for the KV cache gives the reference its best showing.
        "use_cache": True,
    }
    payload = [{"principle": r.principle, "prompt": r.prompt, "responses": dict(r.responses)} for r in requests]
    model.judge_batch(payload[:1], batch_size=1, **kwargs)
    generated: list[int] = []
    generate = model.model.generate

    def counting(**inputs: Any) -> Any:  # records new tokens per call, to check both sides do equal work
        output = generate(**inputs)
        generated.append(int(output.shape[1] - inputs["input_ids"].shape[1]))
        return output

    model.model.generate = counting
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        results = model.judge_batch(payload, batch_size=batch_size, **kwargs)
        best = min(best, time.perf_counter() - started)
        assert len(results) == len(requests)
    return best, sum(generated) / len(generated)


async def _judge_all(judge: LocalJudge, requests: list[JudgeRequest]) -> list[Any]:
    return list(await asyncio.gather(*(judge.ajudge(r) for r in requests), return_exceptions=True))


def bench_ours(
    path: Path, requests: list[JudgeRequest], *, mode: Mode, batch_size: int, max_new_tokens: int, repeats: int = 1
) -> tuple[float, float]:
    """Best seconds for ra-guard's judge over ``requests``, and mean completion tokens per judgment."""
    judge = LocalJudge(
        path,
        mode=mode,
        max_new_tokens=max_new_tokens,
        max_batch_size=batch_size,
        max_wait_ms=20,
        device="cpu",
        dtype=DTYPE[0],
        # The benchmark times digit reading; random-weight models put about 0.5% on the digits.
        min_digit_mass=0.0,
    )
    asyncio.run(_judge_all(judge, requests[:1]))  # warm-up: prefix cache, first-call overheads
    generated: list[int] = []
    decode = judge.engine.decode

    def counting(*args: Any, **kwargs: Any) -> Any:  # new tokens per judgment, unparseable outputs included
        result = decode(*args, **kwargs)
        generated.extend(len(t) for t in result.tokens)
        return result

    setattr(judge.engine, "decode", counting)  # noqa: B010 - a counting wrapper, for this benchmark only
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        results = asyncio.run(_judge_all(judge, requests))
        best = min(best, time.perf_counter() - started)
        for result in results:
            # An unparseable reasoning output still counts as a judgment (both sides alike); nothing else may fail.
            if isinstance(result, BaseException) and not isinstance(result, JudgeOutputError):
                raise result
    judge.close()
    return best, (sum(generated) / len(generated)) if generated else 0.0


def bench_decisions(path: Path, *, mode: Mode, count: int, max_new_tokens: int) -> tuple[float, float]:
    """Seconds for ``count`` decisions run concurrently, and one after another."""
    judge = LocalJudge(
        path, mode=mode, max_new_tokens=max_new_tokens, max_batch_size=count, max_wait_ms=20, min_digit_mass=0.0
    )
    guard = Guard(policies=["concise"], judge=judge, strategy=BestOfN(n=4), on_all_rejected="return_best")
    sampler = FunctionSampler(lambda messages, i: ANSWERS[i % len(ANSWERS)])
    conversations: list[list[ChatMessage]] = [
        [{"role": "user", "content": f"What is the capital of France? (user {i})"}] for i in range(count)
    ]

    async def concurrently() -> None:
        await asyncio.gather(*(guard.arun(c, sampler=sampler) for c in conversations))

    async def sequentially() -> None:
        for c in conversations:
            await guard.arun(c, sampler=sampler)

    asyncio.run(guard.arun(conversations[0], sampler=sampler))  # warm-up
    started = time.perf_counter()
    asyncio.run(concurrently())
    together = time.perf_counter() - started
    started = time.perf_counter()
    asyncio.run(sequentially())
    one_by_one = time.perf_counter() - started
    judge.close()
    return together, one_by_one


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["smollm2"], choices=["smollm2", "tiny", "small"])
    parser.add_argument("--words", type=int, default=100, help="words per candidate (0: 3-12-word answers)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both sides")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="both sides")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--requests", type=int, default=32, help="judgments per measurement")
    parser.add_argument("--candidates", type=int, default=4, help="responses per judgment")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="time each measurement this often, keep the best")
    parser.add_argument("--decisions", type=int, default=32, help="concurrent vs sequential decisions (0: skip)")
    parser.add_argument("--cache", type=Path, default=None, help="where the random models are built")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    DTYPE[0] = args.dtype
    if args.words:
        requests = realistic_requests(args.requests, args.candidates, args.words)
    else:
        requests = make_requests(args.requests, args.candidates)
    rows: list[dict[str, Any]] = []
    print(f"load before: {_load()}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}, CPU; {args.requests} judgments "
        f"of {args.candidates} candidates, max_new_tokens={args.max_new_tokens}, greedy, best of {args.repeats}"
    )
    print(f"{'model':6} {'batch':>5} {'ref j/s':>14} {'reasoning j/s':>14} {'ratio':>6} {'fast j/s':>9} {'ratio':>7}")
    for size in args.sizes:
        path = _model(size, args.cache)
        if size == "smollm2" or args.words:
            sample = LocalJudge(path, mode="fast", device="cpu")
            print(f"{size}: {len(sample.inputs.prepare(requests[0]).ids)} input tokens per judgment", flush=True)
            sample.close()
        for batch in args.batch_sizes:
            reference, reference_tokens = bench_reference(path, requests, batch, args.max_new_tokens, args.repeats)
            reasoning, tokens = bench_ours(
                path,
                requests,
                mode="reasoning",
                batch_size=batch,
                max_new_tokens=args.max_new_tokens,
                repeats=args.repeats,
            )
            fast, _ = bench_ours(
                path, requests, mode="fast", batch_size=batch, max_new_tokens=args.max_new_tokens, repeats=args.repeats
            )
            n = len(requests)
            row = {
                "model": size,
                "batch": batch,
                "reference_jps": n / reference,
                "reasoning_jps": n / reasoning,
                "fast_jps": n / fast,
                "reasoning_ratio": reference / reasoning,
                "fast_ratio": reference / fast,
                "reasoning_tokens_per_judgment": tokens,
                "reference_tokens_per_judgment": reference_tokens,
            }
            rows.append(row)
            print(
                f"{size:6} {batch:5d} {row['reference_jps']:14.2f} {row['reasoning_jps']:14.2f} "
                f"{row['reasoning_ratio']:5.1f}x {row['fast_jps']:9.2f} {row['fast_ratio']:6.1f}x"
                f"   (tokens/judgment: reference {reference_tokens:.1f}, ra-guard {tokens:.1f})",
                flush=True,
            )
        # Control: ra-guard's own decoding loop without batching, to separate loop overhead from batching gains.
        alone, _ = bench_ours(
            path, requests, mode="reasoning", batch_size=1, max_new_tokens=args.max_new_tokens, repeats=args.repeats
        )
        rows.append({"model": size, "batch": 1, "reasoning_jps": len(requests) / alone})
        print(f"{size:6} {1:5d} {'':>14} {len(requests) / alone:14.2f}   (ra-guard unbatched control)", flush=True)
        if args.decisions:
            for mode in ("reasoning", "fast"):
                together, one_by_one = bench_decisions(
                    path, mode=mode, count=args.decisions, max_new_tokens=args.max_new_tokens
                )
                row = {
                    "model": size,
                    "decisions": args.decisions,
                    "mode": mode,
                    "concurrent_dps": args.decisions / together,
                    "sequential_dps": args.decisions / one_by_one,
                    "speedup": one_by_one / together,
                }
                rows.append(row)
                print(
                    f"{size:6} {args.decisions} decisions, {mode:9}: concurrent {row['concurrent_dps']:.2f}/s, "
                    f"one after another {row['sequential_dps']:.2f}/s ({row['speedup']:.1f}x)",
                    flush=True,
                )
    print(f"load after: {_load()}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _model(size: str, cache: Path | None) -> Path:
    if size == "smollm2":
        from ra_guard.testing.smollm2 import prepare_smollm2

        return prepare_smollm2(cache, progress=print)
    return build_tiny_model(cache, size=size)


def _load() -> str:
    """The 1, 5 and 15-minute load averages (what ``uptime`` shows)."""
    if not hasattr(os, "getloadavg"):
        return "unknown"
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main())
