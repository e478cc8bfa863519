"""A thin digit mass is seen by the local judge (issue 8): noted, warned, and parsed instead or raised.

The tiny random model really puts about 0.5% of the probability on the digits
1-5 where a score is read (see ``conftest.py``), far below the default
``min_digit_mass=0.1``; SmolLM2 puts 0.86-1.0 there on the demo's requests.
Where a test needs a verdict out of the fallback generation, the tiny model is
:class:`~tests.local.scripted.Scripted` to write one (it then writes
``<think>`` where a digit is expected: digit mass 0).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from ra_guard._warn import reset_fallback_warnings
from ra_guard.exceptions import ConfigurationError, JudgeOutputError, MissingDependencyError
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.format import render_messages
from ra_guard.local import LocalJudge
from ra_guard.verdict import Verdict
from tests.local.scripted import Scripted, recording_starts

REQUEST = JudgeRequest(
    principle="Answer in as few words as possible.",
    prompt="What is the capital of France?",
    responses={"terse": "Paris.", "wordy": "The capital of France is the city of Paris."},
)
OTHER = JudgeRequest(
    principle="Be polite.", prompt="Say hello.", responses={"warm": "Hello, nice to meet you!", "cold": "What."}
)
SHOWN = render_messages(REQUEST).masked_to_caller  # shown name -> caller name
VERDICT = '<think>model-2 rambles.</think>\n{"scores": {"model-1": 2, "model-2": 4}}'


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    reset_fallback_warnings()  # WARNINGs are rate-limited per judge name and code; each test starts clean


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("ra_guard") and r.levelno == logging.WARNING]


@pytest.mark.parametrize("mode", ["fast", "hybrid"])
def test_thin_digit_mass_falls_back_to_a_bounded_reasoning_generation_and_says_so(
    tiny_loaded: Any, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    model, tokenizer = tiny_loaded
    script = tokenizer(VERDICT, add_special_tokens=False)["input_ids"]
    judge = LocalJudge.from_model(
        Scripted(model, script, tokenizer.eos_token_id),
        tokenizer,
        mode=mode,  # type: ignore[arg-type]
        fallback_max_tokens=len(script) + 8,
        prefix_cache=False,
    )
    rows = recording_starts(judge)
    with caplog.at_level(logging.WARNING, logger="ra_guard"):
        verdict = judge.judge(REQUEST)
    judge.close()
    # The verdict is the fallback's parsed generation, not a digit reading.
    assert verdict.mode == "reasoning" and verdict.distributions is None
    assert verdict.scores == {SHOWN["model-1"]: 2.0, SHOWN["model-2"]: 4.0}
    (note,) = [r for r in verdict.repairs if r.startswith("low_digit_mass:")]
    assert note == (
        f"low_digit_mass: the digits 1-5 held 0.0% of the probability where {SHOWN['model-1']}'s score was "
        "expected (min_digit_mass=0.1); parsed a generated verdict"
    )
    (warning,) = [w for w in _warnings(caplog) if "low_digit_mass" in w]
    assert warning.startswith(f"{judge.name}: low_digit_mass: the digits 1-5 held 0.0%")
    assert f"fallback generation of at most {len(script) + 8} tokens" in warning
    # Two inputs were run: the digit reading's, then the same request's reasoning input (no forced JSON).
    assert len(rows) == 2
    if mode == "fast":
        assert tokenizer.decode(rows[0]).endswith('{"scores": {"model-1": ')
    assert tokenizer.decode(rows[1]).endswith("<|im_start|>assistant\n")
    # Usage counts the fallback's generation (the script and its end-of-text) and the digit reading.
    assert verdict.usage.prompt_tokens == len(rows[0]) + len(rows[1])
    assert verdict.usage.completion_tokens > len(script) + 1


def test_the_fallback_generation_is_bounded_by_fallback_max_tokens(
    tiny_model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The real random model, default threshold: its digits hold ~0.5%, and its generation is no verdict.
    judge = LocalJudge(tiny_model_path, mode="fast", fallback_max_tokens=8)
    budgets: list[int] = []
    generated: list[int] = []
    decode = judge.engine.decode

    def recording(*args: Any, **kwargs: Any) -> Any:
        budgets.append(kwargs["max_new_tokens"])
        result = decode(*args, **kwargs)
        generated.extend(len(tokens) for tokens in result.tokens)
        return result

    judge.engine.decode = recording  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="ra_guard"), pytest.raises(JudgeOutputError) as info:
        judge.judge(REQUEST)
    judge.close()
    assert budgets == [8] and generated and max(generated) <= 8
    message = str(info.value)
    assert info.value.reason != "low_digit_mass", "the fallback ran; its generation could not be parsed"
    assert "in the low_digit_mass fallback, a generation of at most 8 tokens: the digits 1-5 held" in message
    assert any("fallback generation of at most 8 tokens" in w for w in _warnings(caplog))


def test_raise_fails_the_request_with_low_digit_mass(tiny_model_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    judge = LocalJudge(tiny_model_path, mode="fast", on_low_digit_mass="raise")
    rows = recording_starts(judge)
    with caplog.at_level(logging.WARNING, logger="ra_guard"), pytest.raises(JudgeOutputError) as info:
        judge.judge(REQUEST)
    judge.close()
    error = info.value
    assert error.reason == "low_digit_mass"
    assert f"where {SHOWN['model-1']}'s score was expected (min_digit_mass=0.1)" in str(error)
    assert "lower min_digit_mass, or use mode='reasoning'" in str(error)
    assert error.raw_text.endswith('{"scores": {"model-1": ')
    assert len(rows) == 1, "no fallback generation"
    assert not _warnings(caplog)


def test_raise_with_permutations_raises_instead_of_averaging_the_other_orders(tiny_model_path: Path) -> None:
    judge = LocalJudge(tiny_model_path, mode="fast", on_low_digit_mass="raise", permutations=2, max_wait_ms=100)
    with pytest.raises(JudgeOutputError, match="low_digit_mass"):
        judge.judge(REQUEST)
    judge.close()


def _lowest_masses(tiny_model_path: Path) -> list[float]:
    """The lowest digit mass of each of two requests judged in one batch (a recording run, nothing checked)."""
    judge = LocalJudge(tiny_model_path, mode="fast", min_digit_mass=0.0, max_wait_ms=500)
    lowest = [1.0, 1.0]
    read = judge.engine.digit_probabilities

    def recording(logits: Any, digit_ids: Any) -> Any:
        result = read(logits, digit_ids)
        for r, (_, mass) in enumerate(result):
            lowest[r] = min(lowest[r], mass)
        return result

    judge.engine.digit_probabilities = recording  # type: ignore[method-assign]

    async def both() -> None:
        await asyncio.gather(judge.ajudge(REQUEST), judge.ajudge(OTHER))
        await judge.aclose()

    asyncio.run(both())
    assert judge.batch_sizes == [2]
    return lowest


@pytest.mark.parametrize("on_low", ["raise", "parse"])
def test_only_the_thin_request_of_a_batch_is_caught(
    tiny_model_path: Path, caplog: pytest.LogCaptureFixture, on_low: str
) -> None:
    masses = _lowest_masses(tiny_model_path)
    assert masses[0] != masses[1]
    threshold = sum(masses) / 2  # between the two requests' lowest digit masses: one is thin, one is not
    thin = masses.index(min(masses))
    judge = LocalJudge(
        tiny_model_path,
        mode="fast",
        min_digit_mass=threshold,
        on_low_digit_mass=on_low,  # type: ignore[arg-type]
        fallback_max_tokens=4,
        max_wait_ms=500,
    )

    async def both() -> list[Verdict | BaseException]:
        outcomes = await asyncio.gather(judge.ajudge(REQUEST), judge.ajudge(OTHER), return_exceptions=True)
        await judge.aclose()
        return outcomes

    with caplog.at_level(logging.WARNING, logger="ra_guard"):
        outcomes = asyncio.run(both())
    assert judge.batch_sizes[0] == 2, "both requests were read in one batch"
    normal = outcomes[1 - thin]
    assert isinstance(normal, Verdict) and normal.distributions is not None
    assert not any("low_digit_mass" in r for r in normal.repairs), "a request with enough mass is not noted"
    caught = outcomes[thin]
    assert isinstance(caught, JudgeOutputError)  # the random model's 4-token fallback is no verdict either
    if on_low == "raise":
        assert caught.reason == "low_digit_mass"
        assert not _warnings(caplog)
    else:
        assert "in the low_digit_mass fallback" in str(caught)
        assert len([w for w in _warnings(caplog) if "low_digit_mass" in w]) == 1


@pytest.fixture(scope="module")
def smollm2_path() -> Path:
    from ra_guard.testing.smollm2 import prepare_smollm2

    try:
        return prepare_smollm2()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
def test_smollm2_reads_digits_without_a_note_and_falls_back_above_its_mass(
    smollm2_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SmolLM2's digits hold 0.86-1.0 of the probability: read at the default; a 0.999 threshold is not met."""
    normal = LocalJudge(smollm2_path, mode="fast", dtype="bfloat16")
    strict = LocalJudge.from_model(
        normal.hf_model, normal.tokenizer, mode="fast", min_digit_mass=0.999, fallback_max_tokens=16, name="strict"
    )
    with caplog.at_level(logging.WARNING, logger="ra_guard"):
        verdict = normal.judge(REQUEST)
        assert verdict.mode == "fast" and verdict.distributions is not None
        assert not any("low_digit_mass" in r for r in verdict.repairs)
        assert not _warnings(caplog)
        try:
            outcome: Verdict | JudgeOutputError = strict.judge(REQUEST)
        except JudgeOutputError as exc:  # a 135M chat model seldom writes a RewardAnything verdict in 16 tokens
            outcome = exc
    normal.close()
    strict.close()
    if isinstance(outcome, Verdict):
        assert any(r.startswith("low_digit_mass: ") for r in outcome.repairs)
    else:
        assert "in the low_digit_mass fallback, a generation of at most 16 tokens" in str(outcome)
    assert any(w.startswith("strict: low_digit_mass: ") for w in _warnings(caplog))


def test_settings_are_checked_before_loading(tmp_path: Path) -> None:
    missing = tmp_path / "no-model"
    with pytest.raises(ConfigurationError, match=r"min_digit_mass must be between 0 and 1, got 1\.5"):
        LocalJudge(missing, mode="fast", min_digit_mass=1.5)
    with pytest.raises(ConfigurationError, match="on_low_digit_mass must be 'parse' or 'raise'"):
        LocalJudge(missing, mode="fast", on_low_digit_mass="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="fallback_max_tokens must be at least 1"):
        LocalJudge(missing, mode="fast", fallback_max_tokens=0)
