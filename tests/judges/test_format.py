"""``render_messages`` must render exactly what the reference package renders."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rewardanything import processing as reference

from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.format import REFERENCE_SEED, masked_order, render_messages, system_prompt

SPEC_PROMPT = Path("/work/shared/spec/rewardanything_system_prompt.txt")

TRICKY = [
    "",
    "plain ascii",
    "中文回答：你好，世界。日本語のテキスト",
    "emoji 👍🏽👨‍👩‍👧 ✨",
    "RTL: مرحبا بالعالم שלום \u200f\u202e",
    "quotes \" ' ` “smart” «guillemets»",
    "back\\slash \\n \\u00e9 C:\\path\\",
    "new\nline\r\ncr\ttab",
    "control \x00 \x01 \x1f \x7f \u2028 \u2029",
    '{"json": ["inside", 1]}',
    "  leading and trailing spaces  ",
]


@contextmanager
def preserved_random_state() -> Iterator[None]:
    """The reference reseeds the global ``random`` module; undo that."""
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


def reference_render(
    principle: str, prompt: str, responses: dict[str, str], mask: bool
) -> tuple[list[dict[str, str]], dict[str, str] | None]:
    with preserved_random_state():
        messages, masked2real = reference.prepare_chat_messages(principle, prompt, responses, mask_responses=mask)
    return messages, masked2real


def assert_same_as_reference(principle: str, prompt: str, responses: dict[str, str], mask: bool) -> None:
    ref_messages, ref_mapping = reference_render(principle, prompt, responses, mask)
    ours = render_messages(JudgeRequest(principle=principle, prompt=prompt, responses=responses, mask=mask))
    ours_messages: list[Any] = [dict(m) for m in ours.messages]
    assert ours_messages == ref_messages
    for mine, theirs in zip(ours.messages, ref_messages, strict=True):
        assert mine["content"].encode("utf-8", "surrogatepass") == theirs["content"].encode("utf-8", "surrogatepass")
        assert list(mine) == list(theirs)  # key order too
    if mask:
        assert ours.masked_to_caller == ref_mapping
        assert list(ours.masked_to_caller) == list(ref_mapping or {})
    else:
        assert ref_mapping is None
        assert ours.masked_to_caller == {name: name for name in responses}


def make_responses(count: int, offset: int = 0) -> dict[str, str]:
    return {
        f"cand-{i}-{TRICKY[(i + offset) % len(TRICKY)][:4]}": TRICKY[(i + offset) % len(TRICKY)] for i in range(count)
    }


@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("count", [1, 2, 5, 12])
def test_matches_reference_for_sizes(count: int, mask: bool) -> None:
    assert_same_as_reference("Be concise.", "What is 2+2?", make_responses(count), mask)


@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("text", TRICKY)
def test_matches_reference_for_tricky_text(text: str, mask: bool) -> None:
    responses = {text or "empty": text, "b": text[::-1], "中文": "x", "": ""}
    assert_same_as_reference(text, text, responses, mask)


@pytest.mark.parametrize("mask", [True, False])
def test_matches_reference_with_empty_strings(mask: bool) -> None:
    assert_same_as_reference("", "", {"": "", "a": ""}, mask)


def test_user_message_layout() -> None:
    rendered = render_messages(JudgeRequest(principle="p", prompt="q", responses={"a": "x"}, mask=False))
    assert rendered.messages[1]["content"] == '{"principle": "p", "prompt": "q", "responses": {"a": "x"}}'
    assert rendered.messages[0] == {"role": "system", "content": system_prompt()}


def test_does_not_touch_global_random_state() -> None:
    random.seed(1234)
    before = random.getstate()
    for count in (1, 2, 5, 12):
        render_messages(JudgeRequest(principle="p", prompt="q", responses=make_responses(count)))
    masked_order(["a", "b", "c"])
    assert random.getstate() == before


def test_reference_really_reseeds_global_random() -> None:
    """Guards the save/restore helper above: without it the reference would leak."""
    with preserved_random_state():
        random.seed(1234)
        before = random.getstate()
        reference.prepare_chat_messages("p", "q", {"a": "x", "b": "y"})
        assert random.getstate() != before


def test_masked_order_is_seeded_shuffle() -> None:
    names = [f"n{i}" for i in range(12)]
    expected = list(names)
    random.Random(REFERENCE_SEED).shuffle(expected)
    assert masked_order(names) == expected
    assert masked_order(names) == masked_order(names)


@pytest.mark.parametrize("mask", [True, False])
def test_permutation_renders_given_order(mask: bool) -> None:
    responses = {"a": "first", "b": "second", "c": "third"}
    request = JudgeRequest(principle="p", prompt="q", responses=responses, mask=mask, permutation=["c", "a", "b"])
    rendered = render_messages(request)
    assert list(rendered.masked_to_caller.values()) == ["c", "a", "b"]
    shown = json.loads(rendered.messages[1]["content"])["responses"]
    assert list(shown.values()) == ["third", "first", "second"]
    if mask:
        assert list(shown) == ["model-1", "model-2", "model-3"]
    else:
        assert list(shown) == ["c", "a", "b"]


def test_permutation_equal_to_masked_order_matches_reference() -> None:
    responses = make_responses(5)
    order = masked_order(list(responses))
    request = JudgeRequest(principle="p", prompt="q", responses=responses, permutation=order)
    ref_messages, ref_mapping = reference_render("p", "q", responses, True)
    rendered = render_messages(request)
    assert [dict(m) for m in rendered.messages] == ref_messages
    assert rendered.masked_to_caller == ref_mapping


def test_permutation_must_list_every_name() -> None:
    with pytest.raises(ValueError, match="permutation"):
        JudgeRequest(principle="p", prompt="q", responses={"a": "x", "b": "y"}, permutation=["a"])


def test_empty_responses_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        JudgeRequest(principle="p", prompt="q", responses={})


def test_system_prompt_is_the_spec_file() -> None:
    text = system_prompt()
    assert text == SPEC_PROMPT.read_bytes().decode("utf-8")
    assert len(text) == 1121
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert digest.startswith("e4a48f41")
    assert digest.endswith("cf98")
    assert text.startswith("\nYou are an evaluator")
    assert text.endswith("}\n")
    assert text == reference.SYSTEM_PROMPT


text_strategy = st.text(max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    principle=text_strategy,
    prompt=text_strategy,
    responses=st.dictionaries(text_strategy, text_strategy, min_size=1, max_size=12),
    mask=st.booleans(),
)
def test_matches_reference_on_generated_inputs(
    principle: str, prompt: str, responses: dict[str, str], mask: bool
) -> None:
    assert_same_as_reference(principle, prompt, responses, mask)
