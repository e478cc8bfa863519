"""Finding the judge's verdict in its answer: bounded JSON search, relaxed syntax, quotes refused.

The search half of :func:`~ra_guard.judges.parsing.parse_verdict` (whose
docstring states the rules): :func:`search` finds every JSON value the answer
holds in bounded work (the whole text and its last :data:`MAX_BRACES` ``{``,
decoded in C; relaxed syntax rewritten in Python for at most
:data:`RELAX_BUDGET` characters), and :func:`choose` picks the verdict: the last
top-level object with ``scores`` that is not copied from a text the judge was
shown (:func:`shown_texts`).

Example:
    >>> [(found.value, found.relaxed) for found in search("I think {'scores': {'a': 4},}")]
    [({'scores': {'a': 4}}, True), ({'a': 4}, True)]
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ra_guard.judges.format import RenderedRequest

__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_BRACES",
    "RELAX_BUDGET",
    "Found",
    "JSONObject",
    "choose",
    "has_scores",
    "search",
    "shown_texts",
]

FENCE = re.compile(r"```[ \t]*(?:json)?", re.IGNORECASE)
_BARE_KEY = re.compile(r"\s*([A-Za-z0-9_-]+)(?=\s*:)")
_TRAILING_COMMA = re.compile(r",(?=\s*[}\]])")
#: The last this many ``{`` are tried one by one: the verdict comes last.
MAX_BRACES = 64
#: The verdict is searched in at most the last this many characters after the thinking.
MAX_ANSWER_CHARS = 64 * 1024
#: Characters rewritten in Python per answer, at most (relaxed syntax).
RELAX_BUDGET = 2 * MAX_ANSWER_CHARS


class JSONObject(dict[str, Any]):
    """A JSON object that keeps every key/value pair (``json`` keeps only the last)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.pairs = pairs
        for key, value in pairs:
            self.setdefault(key, value)


_DECODER = json.JSONDecoder(object_pairs_hook=JSONObject)


def _relax(text: str, start: int, limit: int) -> tuple[str, int]:
    """Near-JSON from ``start`` rewritten as JSON, and how many characters it read.

    Fixes single-quoted strings, unquoted keys and trailing commas; stops where
    the value that opens at ``start`` closes, or after ``limit`` characters.
    """
    out: list[str] = []
    i, n = start, min(len(text), start + limit)
    depth = 0
    while i < n:
        char = text[i]
        if char in "\"'":
            j, body = i + 1, []
            while j < n and text[j] != char:
                if text[j] == "\\" and j + 1 < n:
                    body.append("'" if char == "'" and text[j + 1] == "'" else text[j : j + 2])
                    j += 2
                    continue
                body.append('\\"' if text[j] == '"' else text[j])
                j += 1
            out.append('"' + "".join(body) + '"')
            i = j + 1
            continue
        if _TRAILING_COMMA.match(text, i):
            i += 1
            continue
        out.append(char)
        i += 1
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth <= 0:
                break
        if char in "{," and (key := _BARE_KEY.match(text, i, n)):
            out.append(json.dumps(key.group(1)))
            i = key.end()
    return "".join(out), i - start


@dataclass(frozen=True)
class Found:
    """One JSON value in the answer: the value, whether it needed relaxed syntax, and where it lies."""

    value: Any
    relaxed: bool
    start: int
    end: int
    source: str  # the text searched; ``source[start:end]`` is the JSON as the judge wrote it

    @property
    def text(self) -> str:
        return self.source[self.start : self.end]

    def inside(self, other: Found) -> bool:
        return other is not self and other.start <= self.start and self.end <= other.end


def has_scores(value: Any) -> bool:
    return isinstance(value, dict) and "scores" in value


def search(text: str) -> list[Found]:
    """Every JSON value that the whole ``text``, or one of its last ``{``, holds; bounded work.

    The whole text is tried, then the value starting at each of the last
    :data:`MAX_BRACES` ``{`` (the verdict comes last). Strict JSON is decoded
    in C; relaxed syntax is rewritten in Python for at most :data:`RELAX_BUDGET`
    characters per answer, so a flood of braces costs linear time.
    """
    text = FENCE.sub("", text).strip()
    found: list[Found] = []
    budget = RELAX_BUDGET
    with contextlib.suppress(ValueError, RecursionError):
        found.append(Found(_DECODER.decode(text), False, 0, len(text), text))
    if not found and text[:1] in ("{", "[", "'") and len(text) <= budget:
        source, read = _relax(text, 0, len(text))
        budget -= read
        if read == len(text):  # the whole text, not a prefix
            with contextlib.suppress(ValueError, RecursionError):
                found.append(Found(_DECODER.decode(source), True, 0, len(text), text))
    if found and has_scores(found[0].value):
        return found
    braces: list[int] = []
    position = len(text)
    while len(braces) < MAX_BRACES and (position := text.rfind("{", 0, position)) != -1:
        braces.append(position)
    for start in reversed(braces):
        try:
            value, end = _DECODER.raw_decode(text, start)
            found.append(Found(value, False, start, end, text))
            continue
        except (ValueError, RecursionError):
            pass
        if budget <= 0:
            continue
        source, read = _relax(text, start, budget)
        budget -= read
        with contextlib.suppress(ValueError, RecursionError):
            found.append(Found(_DECODER.raw_decode(source)[0], True, start, start + read, text))
    return found


def _squeeze(text: str) -> str:
    """``text`` without code fences or whitespace: how a quote is compared with what the judge was shown."""
    return "".join(FENCE.sub("", text).split())


def shown_texts(rendered: RenderedRequest, candidates: Iterable[str] | None) -> list[str]:
    """The texts the judge was shown that an attacker may write: candidates, prompt, principle.

    Read from the rendered user message (the RewardAnything JSON), plus ``candidates``.
    """
    texts = [text for text in candidates or () if isinstance(text, str)]
    for message in rendered.messages:
        content = message.get("content")
        if message.get("role") == "system" or not isinstance(content, str):
            continue
        try:
            texts.extend(_strings(json.loads(content)))
        except (ValueError, RecursionError):
            texts.append(content)
    return [squeezed for text in texts if "{" in text and (squeezed := _squeeze(text))]


def _strings(value: Any) -> Iterator[str]:
    """Every string leaf of a decoded JSON value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def choose(found: list[Found], shown: list[str]) -> tuple[Found | None, int]:
    """The verdict among ``found`` and how many verdict-shaped objects were quoted from the input.

    The verdict is the last object with ``scores`` that is neither nested in
    another such object nor found (up to whitespace) in a text the judge was
    shown. Without one, the first object, or the first value, stands (for the
    error it will raise).
    """
    with_scores = [item for item in found if has_scores(item.value)]
    quoted = 0
    genuine: list[Found] = []
    for item in with_scores:
        needle = _squeeze(item.text)
        if any(needle in text for text in shown):
            quoted += 1
        else:
            genuine.append(item)
    outer = [item for item in genuine if not any(item.inside(other) for other in genuine)]
    if outer:
        return outer[-1], quoted
    if with_scores:
        return None, quoted
    objects = [item for item in found if isinstance(item.value, dict)]
    return ((objects or found)[0] if found else None), quoted
