"""ra-guard quickstart (``make demo``): sample, judge against policies, choose, trace.

Runs offline, in well under a minute on a laptop CPU, through the real code
paths: shipped policies, the RewardAnything judge rendering, local model
inference with transformers, scoring, selection and OpenTelemetry tracing.

Two ways to run it:

- **No configuration** (the default): the judge is a *tiny random-weight*
  Qwen3 built on the spot and cached under ``~/.cache/ra-guard/tiny-judge``;
  candidates are canned answers. Everything runs for real, but the tiny model
  has never been trained, so **its scores are meaningless**.
- **Real decisions**: point ``RA_GUARD_JUDGE`` at a RewardAnything judge and,
  optionally, ``RA_GUARD_MODEL`` at any litellm model to sample candidates::

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

from ra_guard import BestOfN, Decision, FunctionSampler, Guard, load_policy, resolve_judge, resolve_sampler
from ra_guard.judges.base import Judge
from ra_guard.samplers.base import Sampler
from ra_guard.tracing import DecisionTracer
from ra_guard.types import ChatMessage

POLICIES = ["concise", "harmless"]

CANNED: dict[str, list[str]] = {
    "What is the capital of France?": [
        "Paris.",
        "The capital of France is Paris, which is also the country's largest city and its cultural centre.",
        "I believe it is Lyon.",
        "France's capital? That would be Paris, obviously.",
    ],
    "How do I get a stain out of a cotton shirt?": [
        "Rinse with cold water, dab on dish soap, wait 10 minutes, then wash.",
        "Soak it in bleach mixed with ammonia for an hour.",
        "Blot, apply a little liquid detergent, rinse cold, and wash as usual; avoid the dryer until it is gone.",
        "Just buy a new shirt.",
    ],
}


def _judge_and_sampler() -> tuple[Judge, Sampler | None, bool]:
    """The configured judge and sampler, or the tiny local model and canned answers."""
    spec = os.environ.get("RA_GUARD_JUDGE")
    model = os.environ.get("RA_GUARD_MODEL")
    sampler = resolve_sampler(f"litellm:{model}") if model else None
    if spec:
        return resolve_judge(spec), sampler, False
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny model never needs the hub
    from transformers.utils import logging as hf_logging

    from ra_guard.judges.local import LocalJudge
    from ra_guard.tiny_model import build_tiny_model

    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    path = build_tiny_model()
    judge = LocalJudge(path, mode="fast", max_wait_ms=20)
    print(f"judge: tiny random-weight Qwen3 at {path} (fast mode), ready in {time.perf_counter() - started:.1f}s")
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
    judge, sampler, tiny = _judge_and_sampler()
    if tiny:
        print(
            "NOTE: this judge has random weights: it exercises the real code paths, "
            "but its scores are MEANINGLESS.\n      Set RA_GUARD_JUDGE (and RA_GUARD_MODEL) for real decisions."
        )
    for policy in policies:
        print(f"policy {policy.name}: {' '.join(policy.principle.split())[:100]}")
    tracer, trace_path, tracing = _tracer()
    guard = Guard(policies=policies, judge=judge, strategy=BestOfN(n=4), on_all_rejected="return_best", tracer=tracer)
    for prompt, answers in CANNED.items():
        messages: list[ChatMessage] = [{"role": "user", "content": prompt}]
        chosen_sampler = sampler or FunctionSampler(lambda m, i, answers=answers: answers[i % len(answers)])
        decision = guard.run(messages, sampler=chosen_sampler)
        _show(prompt, decision)
    judge.close()
    if tracing is not None:
        provider, out = tracing
        provider.shutdown()
        out.close()
        print(f"\ntrace: spans written to {trace_path} (one JSON object per line)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
