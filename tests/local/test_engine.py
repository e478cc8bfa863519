"""Batching and prefix-cache equivalence of the local judge, on the tiny random Qwen3.

A padded, batched, prefix-cached run must compute what each request computes
alone: the same logits (to float tolerance) and the same greedy tokens.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ra_guard.exceptions import JudgeOutputError
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.format import render_messages
from ra_guard.local import LocalJudge
from ra_guard.verdict import Verdict

torch = pytest.importorskip("torch")

REQUESTS = [
    JudgeRequest(
        principle=principle,
        prompt="What is the capital of France?",
        responses={"a": "Paris.", "b": "The capital of France is Paris, on the Seine." * (i + 1), "c": "Lyon"},
    )
    for i, principle in enumerate(["Be concise.", "Be accurate and polite, explain briefly.", "Be safe.", "x"])
]


def _ids(judge: LocalJudge, request: JudgeRequest) -> list[int]:
    return judge.inputs.prepare(request).ids


def _outcome(result: Verdict | BaseException) -> Any:
    """What a reasoning-mode call produced: the raw text (random weights rarely parse)."""
    if isinstance(result, JudgeOutputError):
        return result.raw_text
    assert isinstance(result, Verdict), result
    return result.raw_text


async def _concurrently(judge: LocalJudge, requests: list[JudgeRequest]) -> list[Verdict | BaseException]:
    return list(await asyncio.gather(*(judge.ajudge(r) for r in requests), return_exceptions=True))


def test_prefix_cache_gives_the_same_logits_and_greedy_tokens(tiny_loaded: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_loaded
    judge = LocalJudge.from_model(model, tokenizer, mode="reasoning", max_new_tokens=12)
    engine = judge.engine
    assert engine.prefix_ids is not None
    rows = [_ids(judge, r) for r in REQUESTS]
    assert all(row[: len(engine.prefix_ids)] == engine.prefix_ids for row in rows)
    plain = LocalJudge.from_model(model, tokenizer, mode="reasoning", max_new_tokens=12, prefix_cache=False).engine
    assert plain.prefix_ids is None
    choose = engine.chooser(judge.sampling)
    with torch.inference_mode():
        cached_state, cached_logits = engine.start(rows)
        plain_state, plain_logits = plain.start(rows)
        assert cached_state.cache.get_seq_length() == plain_state.cache.get_seq_length()
        torch.testing.assert_close(cached_logits, plain_logits, atol=1e-4, rtol=1e-4)
        cached = engine.decode(cached_state, cached_logits, max_new_tokens=12, stop_ids=set(), choose=choose)
        uncached = plain.decode(plain_state, plain_logits, max_new_tokens=12, stop_ids=set(), choose=choose)
    assert cached.tokens == uncached.tokens
    assert len({tuple(t) for t in cached.tokens}) > 1, "rows should differ, or the test proves little"


def test_prefix_cache_is_skipped_when_ids_do_not_start_with_the_prefix(tiny_loaded: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_loaded
    engine = LocalJudge.from_model(model, tokenizer, mode="fast").engine
    other = tokenizer("<|im_start|>system\nsomething else<|im_end|>", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        state, _ = engine.start([other])
    assert state.next_positions == [len(other)]  # computed from scratch, no prefix rows in front


def test_batched_padded_rows_equal_single_rows(tiny_loaded: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_loaded
    judge = LocalJudge.from_model(model, tokenizer, mode="reasoning", max_new_tokens=10)
    engine = judge.engine
    rows = [_ids(judge, r) for r in REQUESTS]
    assert len({len(r) for r in rows}) > 1, "rows of different lengths exercise the padding"
    choose = engine.chooser(judge.sampling)
    with torch.inference_mode():
        state, logits = engine.start(rows)
        batched = engine.decode(state, logits, max_new_tokens=10, stop_ids=set(), choose=choose).tokens
        for row, tokens, row_logits in zip(rows, batched, logits, strict=True):
            single_state, single_logits = engine.start([row])
            torch.testing.assert_close(single_logits[0], row_logits, atol=1e-4, rtol=1e-4)
            single = engine.decode(single_state, single_logits, max_new_tokens=10, stop_ids=set(), choose=choose)
            assert single.tokens[0] == tokens


async def test_concurrent_calls_are_batched_and_equal_one_by_one(tiny_model_path: Path) -> None:
    batched = LocalJudge(tiny_model_path, max_new_tokens=12, max_batch_size=8, max_wait_ms=200)
    alone = LocalJudge(tiny_model_path, max_new_tokens=12, max_batch_size=1)
    together = await _concurrently(batched, REQUESTS)
    one_by_one = [await _concurrently(alone, [r]) for r in REQUESTS]
    assert batched.batch_sizes == [len(REQUESTS)]
    assert alone.batch_sizes == [1] * len(REQUESTS)
    assert [_outcome(r) for r in together] == [_outcome(r[0]) for r in one_by_one]
    await batched.aclose()
    await alone.aclose()


async def test_each_caller_gets_its_own_fast_verdict(tiny_model_path: Path) -> None:
    judge = LocalJudge(tiny_model_path, mode="fast", max_batch_size=8, max_wait_ms=200, min_digit_mass=0.0)
    results = await _concurrently(judge, REQUESTS)
    assert judge.batch_sizes == [len(REQUESTS)]
    for request, result in zip(REQUESTS, results, strict=True):
        assert isinstance(result, Verdict)
        single = await judge.ajudge(request)
        assert set(result.scores) == set(request.responses)
        for name in request.responses:
            assert result.scores[name] == pytest.approx(single.scores[name], abs=1e-5)
    # The request rendered for each caller is its own (a different principle each).
    assert len({render_messages(r).messages[1]["content"] for r in REQUESTS}) == len(REQUESTS)


def test_sync_judge_calls_from_fresh_event_loops_share_the_worker(tiny_model_path: Path) -> None:
    judge = LocalJudge(tiny_model_path, mode="fast", max_wait_ms=0, min_digit_mass=0.0)
    first = judge.judge(REQUESTS[0])
    second = judge.judge(REQUESTS[0])
    assert first.scores == second.scores
    judge.close()


def test_greedy_decoding_matches_transformers_generate(tiny_loaded: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_loaded
    judge = LocalJudge.from_model(model, tokenizer, mode="reasoning", max_new_tokens=10)
    row = _ids(judge, REQUESTS[1])
    ids = torch.tensor([row])
    with torch.inference_mode():
        reference = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False
        )
        state, logits = judge.engine.start([row])
        ours = judge.engine.decode(
            state, logits, max_new_tokens=10, stop_ids=judge._stop_ids, choose=judge.engine.chooser(judge.sampling)
        )
    assert ours.tokens[0] == reference[0, len(row) :].tolist()


def test_dropping_finished_rows_keeps_the_other_rows_exact(tiny_loaded: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_loaded
    judge = LocalJudge.from_model(model, tokenizer, mode="reasoning", max_new_tokens=12)
    engine = judge.engine
    rows = [_ids(judge, r) for r in REQUESTS]
    choose = engine.chooser(judge.sampling)
    with torch.inference_mode():
        state, logits = engine.start(rows)
        free = engine.decode(state, logits, max_new_tokens=12, stop_ids=set(), choose=choose).tokens
        # Stop tokens that end rows at different steps (some rows may never meet one).
        stops = {free[0][2], free[2][4]}
        selected: list[list[int]] = []
        select = engine._select
        engine._select = lambda state, keep: (selected.append(keep), select(state, keep))[1]  # type: ignore[method-assign]
        state, logits = engine.start(rows)
        dropped = engine.decode(state, logits, max_new_tokens=12, stop_ids=stops, choose=choose, drop_finished=True)
        singles = []
        for row in rows:
            one_state, one_logits = engine.start([row])
            singles.append(engine.decode(one_state, one_logits, max_new_tokens=12, stop_ids=stops, choose=choose))
    assert dropped.tokens == [s.tokens[0] for s in singles]
    assert dropped.finish_reasons == [s.finish_reasons[0] for s in singles]
    assert "stop" in dropped.finish_reasons
    assert selected, "finished rows were dropped at least once"
