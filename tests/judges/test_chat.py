"""The render → chat → parse path (``ChatJudge``), written once and shared by the chat-model judges."""

from __future__ import annotations

import json
from types import SimpleNamespace as Obj
from typing import Any

import pytest

from ra_guard.exceptions import JudgeError, JudgeOutputError
from ra_guard.integrations.litellm import RouterJudge
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.chat import ChatAnswer, ChatJudge, answer_from_completion, verdict_from_answer
from ra_guard.judges.format import RenderedRequest, render_messages
from ra_guard.judges.litellm_judge import LiteLLMJudge
from ra_guard.judges.openai_compat import OpenAICompatJudge
from ra_guard.types import ChatMessage, Usage

REQUEST = JudgeRequest(principle="Be brief.", prompt="Hi", responses={"a": "Hello there, friend.", "b": "Hi."})


class Scripted(ChatJudge):
    """A chat judge whose model answers from a script, recording what it was asked."""

    name = "scripted"
    model = "scripted-model"

    def __init__(self, *answers: ChatAnswer) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[list[ChatMessage], int | None]] = []

    async def _chat(self, messages: list[ChatMessage], *, max_tokens: int | None) -> ChatAnswer:
        self.asked.append((messages, max_tokens))
        return self.answers.pop(0)


def _verdict_text(rendered: RenderedRequest, best: str) -> str:
    scores = {shown: 5 if caller == best else 2 for shown, caller in rendered.masked_to_caller.items()}
    return f"<think>model names stay masked</think>{json.dumps({'scores': scores})}"


async def test_the_path_renders_chats_and_parses() -> None:
    rendered = render_messages(REQUEST)
    judge = Scripted(ChatAnswer(text=_verdict_text(rendered, "b"), usage=Usage(prompt_tokens=9, completion_tokens=4)))

    verdict = await judge.ajudge(REQUEST)

    ((messages, max_tokens),) = judge.asked
    assert messages == rendered.messages and max_tokens == 4096  # the exact RewardAnything input
    assert (verdict.best, verdict.scores["a"]) == ("b", 2.0)
    assert verdict.model == "scripted-model"  # the judge's model where the answer names none
    assert verdict.usage == Usage(prompt_tokens=9, completion_tokens=4)


async def test_the_answering_model_wins_and_a_token_limit_can_be_given() -> None:
    rendered = render_messages(REQUEST)
    judge = Scripted(ChatAnswer(text=_verdict_text(rendered, "a"), model="served-as"))
    verdict = await judge.ajudge_rendered(rendered, max_tokens=64)
    assert (verdict.model, judge.asked[0][1]) == ("served-as", 64)


async def test_a_cut_off_answer_holds_no_verdict() -> None:
    rendered = render_messages(REQUEST)
    quoted = json.dumps({"scores": dict.fromkeys(rendered.masked_to_caller, 5)})
    judge = Scripted(ChatAnswer(text=f"<think>maybe {quoted} but", truncated=True))
    with pytest.raises(JudgeOutputError) as caught:
        await judge.ajudge(REQUEST)
    assert caught.value.reason == "truncated_thinking"


def test_notes_come_first_in_the_repairs() -> None:
    rendered = RenderedRequest(messages=[], masked_to_caller={"model-1": "a"})
    verdict = verdict_from_answer(
        ChatAnswer(text='{"scores": {"model-1": "4"}}'), rendered, judge="j", notes=["input_truncated: cut"]
    )
    assert verdict.repairs[0] == "input_truncated: cut"
    assert verdict.repairs[1].startswith("score_string")


def _completion(message: Any, *, finish: str = "stop", model: Any = "m", usage: Any = None) -> Any:
    return Obj(choices=[Obj(message=message, finish_reason=finish)], model=model, usage=usage)


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_separate_thinking_is_put_back(key: str) -> None:
    message = Obj(content='{"scores": {}}', **{key: "b is shorter"})
    answer = answer_from_completion(_completion(message), judge="j", source="the server's answer")
    assert answer.text == '<think>b is shorter</think>{"scores": {}}'


def test_thinking_kept_in_the_content_is_not_doubled() -> None:
    message = Obj(content="<think>x</think>{}", reasoning_content="x")
    assert answer_from_completion(_completion(message), judge="j", source="s").text == "<think>x</think>{}"


def test_completion_fields_are_read() -> None:
    usage = Obj(prompt_tokens=3, completion_tokens=2)
    answer = answer_from_completion(
        _completion(Obj(content="t"), finish="length", model="", usage=usage), judge="j", source="s"
    )
    assert answer == ChatAnswer(text="t", usage=Usage(prompt_tokens=3, completion_tokens=2), model=None, truncated=True)


@pytest.mark.parametrize("response", [Obj(choices=[]), Obj(choices={"0": 1}), {"error": "x"}, "garbage"])
def test_an_answer_without_a_message_is_an_output_error(response: Any) -> None:
    with pytest.raises(JudgeOutputError, match="litellm's answer is not a chat completion") as caught:
        answer_from_completion(response, judge="j", source="litellm's answer")
    assert caught.value.reason == "empty_output"


def test_the_chat_model_judges_share_the_path() -> None:
    # Each implements only the chat call; rendering and parsing are ChatJudge's.
    for judge in (OpenAICompatJudge, LiteLLMJudge, RouterJudge):
        assert issubclass(judge, ChatJudge)
        assert "_chat" in vars(judge)
        assert "ajudge_rendered" not in vars(judge)


async def test_a_failing_chat_call_propagates_its_judge_error() -> None:
    class Down(ChatJudge):
        async def _chat(self, messages: list[ChatMessage], *, max_tokens: int | None) -> ChatAnswer:
            raise JudgeError("HTTP 503 from the model", judge="down", retryable=True)

    with pytest.raises(JudgeError, match="HTTP 503") as caught:
        await Down().ajudge(REQUEST)
    assert caught.value.retryable
