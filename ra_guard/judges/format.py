"""Render judge requests in the RewardAnything input format.

RewardAnything was trained on one exact layout (see ``docs/concepts.md``): a
fixed system prompt and a user message holding
``json.dumps({"principle", "prompt", "responses"}, ensure_ascii=False)``, where
``responses`` maps *masked* names (``model-1``, ``model-2``...) to texts. For
the same inputs, :func:`render_messages` produces the same bytes as the
reference package's ``prepare_chat_messages``.

Example:
    >>> from ra_guard.judges.base import JudgeRequest
    >>> rendered = render_messages(JudgeRequest(principle="Be brief", prompt="Hi",
    ...                                         responses={"a": "Hello!", "b": "Hi"}))
    >>> [m["role"] for m in rendered.messages]
    ['system', 'user']
    >>> sorted(rendered.masked_to_caller.values())
    ['a', 'b']
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources

from ra_guard.judges.base import JudgeRequest
from ra_guard.types import ChatMessage

__all__ = [
    "REFERENCE_SEED",
    "RenderedRequest",
    "masked_order",
    "presentation_order",
    "render_messages",
    "system_prompt",
]

#: The seed of the reference package's shuffle before masking.
REFERENCE_SEED = 42


@cache
def system_prompt() -> str:
    """The RewardAnything system prompt, exactly as the model was trained on it.

    Shipped as package data (``ra_guard/data/rewardanything_system_prompt.txt``);
    see NOTICE for its attribution.

    Example:
        >>> system_prompt().startswith("\\nYou are an evaluator")
        True
    """
    data = resources.files("ra_guard").joinpath("data/rewardanything_system_prompt.txt")
    return data.read_bytes().decode("utf-8")


@dataclass(frozen=True)
class RenderedRequest:
    """Chat messages for a judge, and how to map its answer back.

    Attributes:
        messages: The ``system`` and ``user`` messages to send.
        masked_to_caller: Name shown to the judge -> the caller's name.
    """

    messages: list[ChatMessage]
    masked_to_caller: dict[str, str]

    @property
    def shown_names(self) -> list[str]:
        """Names as the judge sees them, in the order presented."""
        return list(self.masked_to_caller)


def masked_order(names: list[str]) -> list[str]:
    """The caller's names in the order the reference presents them when masking.

    The reference shuffles ``(name, text)`` pairs with a Mersenne Twister seeded
    with 42; a private ``random.Random`` gives the same order without touching
    the global ``random`` state.

    Example:
        >>> masked_order(["a", "b", "c"]) == masked_order(["a", "b", "c"])
        True
    """
    order = list(names)
    random.Random(REFERENCE_SEED).shuffle(order)
    return order


def presentation_order(request: JudgeRequest) -> list[str]:
    """The caller's names in the order the judge sees them.

    ``request.permutation`` where given; else the reference's shuffled order when
    masking; else the caller's own order.

    Example:
        >>> presentation_order(JudgeRequest(principle="p", prompt="q", responses={"a": "x", "b": "y"}, mask=False))
        ['a', 'b']
    """
    if request.permutation is not None:
        return list(request.permutation)
    if request.mask:
        return masked_order(request.names)
    return request.names


def render_messages(request: JudgeRequest) -> RenderedRequest:
    """Render ``request`` as the two chat messages a RewardAnything judge expects.

    With ``request.mask`` (the default), names are hidden as ``model-1``...
    in the reference's shuffled order, or in ``request.permutation`` where
    given. Without masking, the caller's names are shown as they are.
    """
    order = presentation_order(request)
    if request.mask:
        masked_to_caller = {f"model-{i + 1}": name for i, name in enumerate(order)}
    else:
        masked_to_caller = {name: name for name in order}
    shown = {shown_name: request.responses[caller] for shown_name, caller in masked_to_caller.items()}
    user_content = json.dumps(
        {"principle": request.principle, "prompt": request.prompt, "responses": shown},
        ensure_ascii=False,
    )
    messages: list[ChatMessage] = [
        {"role": "system", "content": system_prompt()},
        {"role": "user", "content": user_content},
    ]
    return RenderedRequest(messages=messages, masked_to_caller=masked_to_caller)
