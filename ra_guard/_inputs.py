"""Checks on what callers hand a guard: messages, candidates, an agent's output, ``n``.

Each mistake raises :class:`~ra_guard.exceptions.InputError` naming the
argument (and the item inside it), so that a wrong call fails at the call with
a message that says what to pass, never deep inside the engine.

Choices made here, and documented on :class:`~ra_guard.guard.Guard`:

- ``messages`` given as a string is one user message (as ``rerank``'s prompt);
- ``content`` may be a string, ``None`` (an assistant turn that only calls
  tools) or a list of OpenAI content parts; the judge reads the text parts and a
  marker for each other part, and the decision notes what was left out.

Example:
    >>> conversation("Say yes").prompt
    'Say yes'
    >>> checked_candidates(["a", "b"])
    ['a', 'b']
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ra_guard.exceptions import InputError
from ra_guard.types import ROLES, ChatMessage, content_text, messages_to_prompt

__all__ = ["Conversation", "checked_candidates", "checked_n", "checked_output", "conversation"]

logger = logging.getLogger("ra_guard")


@dataclass(frozen=True)
class Conversation:
    """A checked conversation: the messages as given (for samplers), the judge's prompt, and notes."""

    messages: list[ChatMessage]
    prompt: str
    notes: list[str] = field(default_factory=list)


def _type_name(value: object) -> str:
    return "None" if value is None else type(value).__name__


def conversation(messages: object, *, argument: str = "messages") -> Conversation:
    """Check ``messages`` and render the judge's prompt from them.

    Raises:
        InputError: ``messages`` is not a non-empty list of ``{"role": ..., "content": ...}``
            mappings, or a role is not one of :data:`~ra_guard.types.ROLES`; the error
            names the first bad message.
    """
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if isinstance(messages, (bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InputError(
            argument,
            f"must be a list of chat messages like [{{'role': 'user', 'content': 'hi'}}] or a string, "
            f"got {_type_name(messages)}",
        )
    if not messages:
        raise InputError(argument, "is empty: give at least one chat message")
    notes: list[str] = []
    for i, message in enumerate(messages):
        where = f"{argument}[{i}]"
        if not isinstance(message, Mapping):
            raise InputError(where, f"must be a mapping with 'role' and 'content', got {_type_name(message)}")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise InputError(where, f"has no 'role' (one of: {', '.join(ROLES)})")
        if role not in ROLES:
            # An unknown role would reach the judge's transcript as a speaker it cannot place.
            raise InputError(f"{where}.role", f"is {role[:40]!r}, not a chat role; use one of: {', '.join(ROLES)}")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list, tuple)):
            raise InputError(
                f"{where}.content", f"must be a string, a list of content parts or None, got {_type_name(content)}"
            )
        _, dropped = content_text(content)
        if dropped:
            note = f"{where}: the judge reads text only; left out {len(dropped)} part(s): {', '.join(dropped)}"
            notes.append(note)
            logger.info("ra-guard: %s", note)
    checked: list[ChatMessage] = list(messages)
    return Conversation(messages=checked, prompt=messages_to_prompt(checked), notes=notes)


def checked_candidates(candidates: object) -> list[str]:
    """``candidates`` as a list of strings, or an :class:`InputError` naming the bad one."""
    if isinstance(candidates, (str, bytes)):
        raise InputError(
            "candidates",
            f"must be a list of strings, got a {type(candidates).__name__}; "
            f"to score one text, pass [{candidates!r:.40}]",
        )
    if candidates is None or not isinstance(candidates, (Sequence, set, frozenset)) or isinstance(candidates, Mapping):
        raise InputError("candidates", f"must be a list of strings, got {_type_name(candidates)}")
    out = list(candidates)
    if not out:
        raise InputError("candidates", "is empty: give at least one candidate text")
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InputError(f"candidates[{i}]", f"must be a string, got {_type_name(text)}")
    return out


def checked_output(output: object) -> str:
    """An agent's ``output`` as a string, or an :class:`InputError`."""
    if not isinstance(output, str):
        raise InputError("output", f"must be the agent's answer as a string, got {_type_name(output)}")
    return output


def checked_n(n: Any) -> int | None:
    """``n`` unchanged when it is ``None`` or an integer >= 1; an :class:`InputError` otherwise."""
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError("n", f"must be an integer >= 1 (or None for the strategy's n), got {n!r}")
    return n
