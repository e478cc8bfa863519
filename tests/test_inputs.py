"""Bad input gets a typed error naming the argument; messages in the shapes users send are understood."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ra_guard import (
    BestOfN,
    Budget,
    ConfigurationError,
    Guard,
    InputError,
    Policy,
    RetryWithFeedback,
    SamplerError,
    Strategy,
)
from ra_guard.testing import FunctionJudge, FunctionSampler

POLICY = Policy(name="brief", principle="Be brief.")
USER = [{"role": "user", "content": "Say yes"}]


def length_judge() -> FunctionJudge:
    return FunctionJudge(lambda r: {k: 5 - min(len(t), 40) / 10 for k, t in r.responses.items()})


def guard(**options: Any) -> Guard:
    return Guard(policies=[POLICY], judge=length_judge(), **options)


def test_rerank_rejects_a_string_as_candidates() -> None:
    with pytest.raises(InputError, match="candidates") as err:
        guard().rerank("hi", "draft A")  # type: ignore[arg-type]
    assert err.value.argument == "candidates"


@pytest.mark.parametrize("bad", [[None], ["ok", 3], [b"bytes"]])
def test_rerank_rejects_non_string_candidates(bad: list[Any]) -> None:
    with pytest.raises(InputError, match=r"candidates\[\d\]"):
        guard().rerank("hi", bad)


def test_policies_as_a_string_is_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"policies=\['concise'\]"):
        Guard(policies="concise", judge=length_judge())  # type: ignore[arg-type]


def test_a_string_as_messages_is_one_user_message() -> None:
    seen: list[Any] = []
    sampler = FunctionSampler(lambda m, i: seen.append(list(m)) or "yes")
    decision = guard().run("Say yes", sampler=sampler, n=1)  # type: ignore[arg-type]
    assert decision.text == "yes"
    assert seen == [[{"role": "user", "content": "Say yes"}]]


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([{"content": "hi"}], r"messages\[0\].*'role'"),
        ([{"role": "user", "content": 3}], r"messages\[0\]\.content"),
        (["hi"], r"messages\[0\]"),
        ([], "messages"),
        (None, "messages"),
    ],
)
def test_malformed_messages_name_the_message(messages: Any, match: str) -> None:
    with pytest.raises(InputError, match=match):
        guard().run(messages, sampler=FunctionSampler(lambda m, i: "x"), n=1)


@pytest.mark.parametrize("output", [None, 42, ["a"]])
def test_check_rejects_a_non_string_output(output: Any) -> None:
    with pytest.raises(InputError, match="output"):
        guard().check(USER, output)


def test_a_sampler_returning_none_is_a_sampler_error_naming_it() -> None:
    sampler = FunctionSampler(lambda m, i: None, name="my-sampler")  # type: ignore[arg-type, return-value]
    with pytest.raises(SamplerError, match=r"my-sampler.*None"):
        guard().run(USER, sampler=sampler, n=2)


@pytest.mark.parametrize("n", [-1, 0, 1.5, True, "3"])
def test_n_must_be_a_positive_integer(n: Any) -> None:
    with pytest.raises(InputError) as err:
        guard().run(USER, sampler=FunctionSampler(lambda m, i: "x"), n=n)
    assert err.value.argument == "n"
    assert str(err.value) == f"n: must be an integer >= 1 (or None for the strategy's n), got {n!r}"


def test_n_zero_in_check_is_an_error_not_the_default() -> None:
    with pytest.raises(InputError, match="n: must be an integer >= 1"):
        guard().check(USER, "x", sampler=FunctionSampler(lambda m, i: "x"), n=0)


@pytest.mark.parametrize("role", ["wizard", "User", "human"])
def test_an_unknown_role_is_refused_naming_the_message_and_the_roles(role: str) -> None:
    messages = [{"role": "system", "content": "Be kind."}, {"role": role, "content": "hi"}]
    with pytest.raises(InputError) as err:
        guard().run(messages, sampler=FunctionSampler(lambda m, i: "x"), n=1)  # type: ignore[arg-type]
    assert err.value.argument == "messages[1].role"
    assert f"is {role!r}, not a chat role" in str(err.value)
    assert "system, developer, user, assistant, tool, function" in str(err.value)


def test_the_roles_openai_accepts_are_accepted() -> None:
    messages = [
        {"role": "developer", "content": "Answer in one word."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "function_call": {"name": "weather", "arguments": "{}"}},
        {"role": "function", "name": "weather", "content": "sunny"},
    ]
    judge = length_judge()
    decision = Guard(policies=[POLICY], judge=judge).rerank(messages, ["Sunny."])  # type: ignore[arg-type]
    assert decision.text == "Sunny."
    (request,) = judge.calls
    assert request.prompt.startswith("[developer]\nAnswer in one word.")
    assert "[function (weather)]\nsunny" in request.prompt


@pytest.mark.parametrize(
    "fields",
    [
        {"deadline_s": -1},
        {"deadline_s": 0},
        {"deadline_s": math.nan},
        {"deadline_s": math.inf},
        {"max_candidates": 0},
        {"max_candidates": -3},
        {"max_judge_calls": 0},
        {"max_candidates": 2.5},
        {"max_judge_calls": True},
        {"judge_reserve": 1.0},
        {"judge_reserve": -0.1},
    ],
)
def test_budget_fields_must_be_positive(fields: dict[str, Any]) -> None:
    (name,) = fields
    with pytest.raises(ConfigurationError, match=f"Budget.{name}"):
        Budget(**fields)


def test_best_of_n_n_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        BestOfN(n=0)


@pytest.mark.parametrize(
    ("strategy", "fields", "field"),
    [
        (BestOfN, {"n": "3"}, "n"),
        (BestOfN, {"n": 2.0}, "n"),
        (BestOfN, {"n": True}, "n"),
        (BestOfN, {"temperature": "0.7"}, "temperature"),
        (BestOfN, {"temperature": -0.1}, "temperature"),
        (BestOfN, {"temperature": math.nan}, "temperature"),
        (RetryWithFeedback, {"n": "3"}, "n"),
        (RetryWithFeedback, {"max_attempts": "3"}, "max_attempts"),
        (RetryWithFeedback, {"max_attempts": None}, "max_attempts"),
        (RetryWithFeedback, {"temperature": "hot"}, "temperature"),
        (RetryWithFeedback, {"feedback_template": None}, "feedback_template"),
        (RetryWithFeedback, {"feedback_template": "Fix {problems}"}, "feedback_template"),
        (RetryWithFeedback, {"feedback_template": "Reply as {json}: {failures}"}, "feedback_template"),
    ],
)
def test_strategy_settings_of_the_wrong_type_are_a_configuration_error_naming_the_field(
    strategy: type[Strategy], fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{strategy.__name__}\.{field} ") as err:
        strategy(**fields)  # type: ignore[call-arg]
    assert not isinstance(err.value, TypeError)


def test_a_feedback_template_with_doubled_braces_is_accepted() -> None:
    template = 'Fix:\n{failures}\nReply as {{"answer": ...}}'
    assert RetryWithFeedback(feedback_template=template, temperature=0).feedback_template == template


@pytest.mark.parametrize("spec", [3, ["best_of_n"], None])
def test_a_strategy_that_is_neither_a_name_nor_a_strategy_is_a_configuration_error(spec: Any) -> None:
    with pytest.raises(ConfigurationError, match="unknown strategy"):
        Guard(policies=[POLICY], judge=length_judge(), strategy=spec)


# -- message shapes --------------------------------------------------------------------------------------


def test_content_parts_use_the_text_and_say_what_was_dropped(caplog: pytest.LogCaptureFixture) -> None:
    judge = length_judge()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "Be brief."},
            ],
        }
    ]
    decision = Guard(policies=[POLICY], judge=judge).run(messages, sampler=FunctionSampler(lambda m, i: "A cat."), n=1)
    prompt = judge.calls[0].prompt
    assert "What is in this picture?" in prompt and "Be brief." in prompt
    assert "base64" not in prompt
    assert "[image_url part omitted]" in prompt
    assert any("messages[0]" in note and "image_url" in note for note in decision.notes)
    assert not decision.degraded


def test_tool_call_turns_and_tool_results_are_rendered_for_the_judge() -> None:
    judge = length_judge()
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
    ]
    seen: list[Any] = []
    sampler = FunctionSampler(lambda m, i: seen.append(m) or "It is 18C and sunny.")
    decision = Guard(policies=[POLICY], judge=judge).run(messages, sampler=sampler, n=1)
    prompt = judge.calls[0].prompt
    assert '[tool call] weather({"city": "Paris"})' in prompt
    assert "[tool (call_1)]\n18C, sunny" in prompt
    assert "None" not in prompt
    assert decision.text == "It is 18C and sunny."
    assert seen[0][1]["tool_calls"]  # the sampler gets the conversation as the user gave it
