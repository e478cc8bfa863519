"""Small shared types: chat messages, token usage and sampled candidates.

Example:
    >>> from ra_guard.types import Usage
    >>> (Usage(prompt_tokens=3, completion_tokens=2) + Usage(prompt_tokens=1)).total_tokens
    6
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypedDict

from pydantic import BaseModel, ConfigDict

__all__ = ["ChatMessage", "Messages", "Sample", "Usage", "messages_to_prompt"]

Role = Literal["system", "user", "assistant", "tool", "developer"]


class ChatMessage(TypedDict):
    """One OpenAI-style chat message (``{"role": "user", "content": "hi"}``)."""

    role: str
    content: str


Messages = Sequence[ChatMessage]


class Usage(BaseModel):
    """Token usage; adds up with ``+``.

    Example:
        >>> Usage(prompt_tokens=10, completion_tokens=5).total_tokens
        15
    """

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class Sample(BaseModel):
    """One sampled response, as a sampler returns it.

    Example:
        >>> Sample(text="Paris.", finish_reason="stop").text
        'Paris.'
    """

    model_config = ConfigDict(frozen=True)

    text: str
    finish_reason: str | None = None
    usage: Usage = Usage()
    model: str | None = None
    response_id: str | None = None


def messages_to_prompt(messages: Messages) -> str:
    """Render a conversation as the ``prompt`` string a RewardAnything judge reads.

    A single user message is passed as its bare text (the format the judge was
    trained on); a longer conversation becomes a role-tagged transcript so that
    the judge sees the system instructions and the earlier turns.

    Example:
        >>> messages_to_prompt([{"role": "user", "content": "Capital of France?"}])
        'Capital of France?'
        >>> print(messages_to_prompt([{"role": "system", "content": "Be brief."},
        ...                           {"role": "user", "content": "Hi"}]))
        [system]
        Be brief.
        <BLANKLINE>
        [user]
        Hi
    """
    if not messages:
        raise ValueError("messages is empty: give at least one chat message")
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
