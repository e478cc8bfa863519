"""Scoring modes of the local judge: fast digit reading, hybrid, reasoning parse, position bias."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.format import render_messages
from ra_guard.judges.scoring import ForcedJsonReader, permutation_orders
from ra_guard.local import LocalJudge
from tests.local.scripted import Scripted

torch = pytest.importorskip("torch")

REQUEST = JudgeRequest(
    principle="Answer in as few words as possible.",
    prompt="What is the capital of France?",
    responses={"terse": "Paris.", "wordy": "The capital of France is the city of Paris.", "wrong": "Lyon."},
)


def test_fast_mode_reads_a_distribution_per_candidate(tiny_model_path: Path) -> None:
    judge = LocalJudge(tiny_model_path, mode="fast", min_digit_mass=0.0)
    verdict = judge.judge(REQUEST)
    assert verdict.mode == "fast"
    assert verdict.distributions is not None
    assert set(verdict.scores) == set(verdict.distributions) == set(REQUEST.responses)
    for name, distribution in verdict.distributions.items():
        assert len(distribution) == 5
        assert math.fsum(distribution) == pytest.approx(1.0)
        assert 1.0 <= verdict.scores[name] <= 5.0
        assert verdict.scores[name] == pytest.approx(sum((i + 1) * p for i, p in enumerate(distribution)))
    assert verdict.ranking == sorted(verdict.scores, key=lambda n: -verdict.scores[n])
    assert verdict.raw_text.startswith('<think>\n\n</think>\n\n{"scores": {"model-1": ')
    assert verdict.usage.prompt_tokens > 0 and verdict.usage.completion_tokens > 0


def test_fast_mode_first_distribution_matches_a_plain_forward(tiny_model_path: Path, tiny_loaded: Any) -> None:
    model, tokenizer = tiny_loaded
    judge = LocalJudge.from_model(model, tokenizer, mode="fast", min_digit_mass=0.0)
    verdict = judge.judge(REQUEST)
    rendered = render_messages(REQUEST)
    text = tokenizer.apply_chat_template(rendered.messages, tokenize=False, add_generation_prompt=True)
    text += ForcedJsonReader(rendered.shown_names).prefix
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        probs = torch.softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)
    digits = probs[[tokenizer.convert_tokens_to_ids(str(d)) for d in range(1, 6)]]
    expected = (digits / digits.sum()).tolist()
    first = rendered.masked_to_caller["model-1"]
    assert verdict.distributions is not None
    assert verdict.distributions[first] == pytest.approx(expected, abs=1e-5)


def test_fast_mode_is_one_forward_plus_one_step_per_candidate(tiny_loaded: Any) -> None:
    model, tokenizer = tiny_loaded
    judge = LocalJudge.from_model(model, tokenizer, mode="fast", min_digit_mass=0.0)
    calls: list[int] = []
    forward = judge.engine._forward

    def counting(state: Any, ids: Any, mask: Any, positions: Any) -> Any:
        calls.append(ids.shape[1])
        return forward(state, ids, mask, positions)

    judge.engine._forward = counting  # type: ignore[method-assign]
    judge.judge(REQUEST)  # the first call also computes the system prompt's cache
    calls.clear()
    judge.judge(REQUEST)
    assert len(calls) == 1 + (len(REQUEST.responses) - 1)
    assert all(width < 12 for width in calls[1:]), "steps feed only the digit and the next key"


def test_hybrid_mode_thinks_then_reads_digits(tiny_model_path: Path) -> None:
    judge = LocalJudge(tiny_model_path, mode="hybrid", thinking_budget=6, min_digit_mass=0.0)
    verdict = judge.judge(REQUEST)
    assert verdict.mode == "hybrid"
    assert "</think>" in verdict.raw_text and '{"scores": {"model-1": ' in verdict.raw_text
    assert verdict.distributions is not None
    assert all(math.fsum(d) == pytest.approx(1.0) for d in verdict.distributions.values())
    assert verdict.usage.completion_tokens >= 6


def test_hybrid_mode_closes_thinking_the_model_closed_itself(tiny_loaded: Any) -> None:
    model, tokenizer = tiny_loaded
    close = tokenizer.convert_tokens_to_ids("</think>")
    script = tokenizer("<think>short", add_special_tokens=False)["input_ids"] + [close]
    judge = LocalJudge.from_model(
        Scripted(model, script, tokenizer.eos_token_id),
        tokenizer,
        mode="hybrid",
        min_digit_mass=0.0,
        thinking_budget=50,
        prefix_cache=False,
    )
    verdict = judge.judge(REQUEST)
    assert verdict.raw_text.startswith('<think>short</think>\n\n{"scores"')
    assert verdict.reasoning == "short"


def test_reasoning_mode_parses_the_generation(tiny_loaded: Any) -> None:
    model, tokenizer = tiny_loaded
    text = (
        '<think>model-2 is shortest.</think>\n{"scores": {"model-1": 2, "model-2": 5, "model-3": 1}, '
        '"best-to-worst": ["model-2", "model-1", "model-3"]}'
    )
    script = tokenizer(text, add_special_tokens=False)["input_ids"]
    judge = LocalJudge.from_model(
        Scripted(model, script, tokenizer.eos_token_id), tokenizer, mode="reasoning", max_new_tokens=len(script) + 5
    )
    verdict = judge.judge(REQUEST)
    shown = render_messages(REQUEST).masked_to_caller
    assert verdict.mode == "reasoning"
    assert verdict.scores == {shown["model-1"]: 2.0, shown["model-2"]: 5.0, shown["model-3"]: 1.0}
    assert verdict.best == shown["model-2"]
    assert verdict.reasoning == f"{shown['model-2']} is shortest."
    assert verdict.usage.completion_tokens == len(script) + 1  # the end-of-text token counts


def test_sampling_is_reproducible_with_a_seed(tiny_model_path: Path) -> None:
    def raw(seed: int) -> str:
        judge = LocalJudge(
            tiny_model_path,
            mode="hybrid",
            thinking_budget=12,
            do_sample=True,
            temperature=1.0,
            top_p=0.95,
            seed=seed,
            min_digit_mass=0.0,
        )
        return judge.judge(REQUEST).raw_text

    greedy = LocalJudge(tiny_model_path, mode="hybrid", thinking_budget=12, min_digit_mass=0.0).judge(REQUEST).raw_text
    assert raw(1) == raw(1)
    assert len({raw(1), raw(2), greedy}) == 3


def test_permutations_average_the_orders(tiny_model_path: Path) -> None:
    averaged = LocalJudge(tiny_model_path, mode="fast", permutations=3, max_wait_ms=100, min_digit_mass=0.0)
    verdict = averaged.judge(REQUEST)
    assert averaged.batch_sizes == [3], "the orders are judged in one batch"
    single = LocalJudge(tiny_model_path, mode="fast", min_digit_mass=0.0)
    base = list(render_messages(REQUEST).masked_to_caller.values())
    orders = permutation_orders(base, 3)
    separate = [single.judge(JudgeRequest(**{**REQUEST.__dict__, "permutation": o})) for o in orders]
    for name in REQUEST.responses:
        mean = sum(v.scores[name] for v in separate) / 3
        assert verdict.scores[name] == pytest.approx(mean, abs=1e-5)
    assert verdict.ranking == sorted(verdict.scores, key=lambda n: -verdict.scores[n])
    assert verdict.usage.prompt_tokens == sum(v.usage.prompt_tokens for v in separate)


def test_forced_json_reader_quotes_caller_names_and_reads_the_likeliest_digit() -> None:
    reader = ForcedJsonReader(['say "hi"', "b"], open_thinking=False)
    assert reader.prefix == '{"scores": {"say \\"hi\\"": '
    assert reader.feed([0.1, 0.1, 0.1, 0.1, 0.6]) == '5, "b": '
    assert reader.feed([2, 0, 0, 0, 0]) is None
    assert reader.distributions["b"] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert reader.prefix.endswith('"b": 1')
    with pytest.raises(RuntimeError):
        reader.feed([1, 0, 0, 0, 0])


def test_top_logprobs_of_sdk_objects_and_without_digits() -> None:
    from types import SimpleNamespace

    from ra_guard.judges.scoring import distribution_from_top_logprobs

    entries = [SimpleNamespace(token=" 2", logprob=math.log(0.3)), SimpleNamespace(token="2", logprob=math.log(0.1))]
    distribution, mass = distribution_from_top_logprobs(entries) or ([], 0.0)
    assert distribution == pytest.approx([0, 1, 0, 0, 0]) and mass == pytest.approx(0.4)
    assert distribution_from_top_logprobs([{"token": "x", "logprob": 0.0}]) is None


def test_permutation_orders_beyond_the_number_of_names_are_seeded_shuffles() -> None:
    orders = permutation_orders(["a", "b"], 4)
    assert orders[:2] == [["a", "b"], ["b", "a"]]
    assert orders == permutation_orders(["a", "b"], 4)
    assert all(sorted(o) == ["a", "b"] for o in orders)
