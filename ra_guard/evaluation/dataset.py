"""Evaluation datasets: one JSON object a line, a prompt with candidates (or a prompt alone).

Each line is ``{"prompt": ..., "candidates": [...]}`` (judged as given) or
``{"prompt": ...}`` alone (a sampler produces the candidates). ``prompt`` is a
string or a list of OpenAI-style messages. An optional ``"id"`` names the line;
without one the line is keyed by a hash of its prompt and candidates, so the
same content gets the same key on every run, whatever line it is on. Other
fields are kept as ``meta`` and shown in the report.

Example:
    >>> item = item_from_json({"prompt": "Hi", "candidates": ["Hello", "Hey"]}, line=1)
    >>> item.candidates, len(item.key)
    (['Hello', 'Hey'], 16)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ra_guard.exceptions import ConfigurationError

__all__ = ["DatasetError", "EvalItem", "item_from_json", "json_lines", "read_dataset"]


class DatasetError(ConfigurationError):
    """A dataset or results file is malformed: names the file, the line and what to change.

    Example:
        >>> str(DatasetError("data.jsonl", 3, "no 'prompt'"))
        "data.jsonl, line 3: no 'prompt'"
    """

    def __init__(self, file: str | Path, line: int, message: str) -> None:
        self.file = str(file)
        self.line = line
        super().__init__(f"{file}, line {line}: {message}")


@dataclass(frozen=True)
class EvalItem:
    """One line of an evaluation dataset.

    Attributes:
        key: Stable key of the line (its ``id``, else a hash of prompt and candidates).
        line: 1-based line number in the dataset file.
        prompt: A string or a list of chat messages.
        candidates: The responses to judge, or ``None`` where a sampler makes them.
        meta: Every other field of the line.
    """

    key: str
    line: int
    prompt: str | list[dict[str, Any]]
    candidates: list[str] | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """The prompt as one string, for the report (the last user message of a conversation)."""
        if isinstance(self.prompt, str):
            return self.prompt
        users = [m for m in self.prompt if m.get("role") == "user"]
        content = (users or self.prompt)[-1].get("content", "")
        return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def content_key(prompt: object, candidates: object) -> str:
    """A 16-hex-digit hash of a prompt and its candidates (canonical JSON), stable across runs.

    Example:
        >>> content_key("Hi", ["a"]) == content_key("Hi", ["a"]) != content_key("Hi", ["b"])
        True
    """
    canonical = json.dumps([prompt, candidates], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def item_from_json(data: object, *, line: int, file: str | Path = "<dataset>") -> EvalItem:
    """Check one parsed line and build its :class:`EvalItem`.

    Raises:
        DatasetError: The line is not an object, has no usable ``prompt``, or its
            ``candidates`` are not a non-empty list of strings.
    """
    if not isinstance(data, dict):
        raise DatasetError(file, line, f"expected a JSON object, got {type(data).__name__}")
    prompt = data.get("prompt")
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(m, dict) and "role" in m for m in prompt):
            raise DatasetError(file, line, "'prompt' as a list must hold chat messages with a 'role' each")
    elif not isinstance(prompt, str) or not prompt.strip():
        raise DatasetError(file, line, "needs a 'prompt': a non-empty string or a list of chat messages")
    candidates = data.get("candidates")
    if candidates is not None and (
        not isinstance(candidates, list) or not candidates or not all(isinstance(c, str) for c in candidates)
    ):
        raise DatasetError(file, line, "'candidates' must be a non-empty list of strings (or absent, with a sampler)")
    raw_id = data.get("id")
    if raw_id is not None and not isinstance(raw_id, (str, int)):
        raise DatasetError(file, line, f"'id' must be a string or an integer, got {type(raw_id).__name__}")
    key = str(raw_id) if raw_id is not None else content_key(prompt, candidates)
    meta = {k: v for k, v in data.items() if k not in ("id", "prompt", "candidates")}
    return EvalItem(key=key, line=line, prompt=prompt, candidates=candidates, meta=meta)


def read_dataset(path: str | Path) -> Iterator[EvalItem]:
    """Yield the items of a JSONL dataset, line by line (blank lines are skipped).

    Raises:
        DatasetError: A line is not JSON or not a valid item (file and line named).
        FileNotFoundError: ``path`` does not exist.
    """
    for number, data in json_lines(path):
        yield item_from_json(data, line=number, file=path)


def json_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, parsed JSON)`` for each non-blank line of a JSONL file.

    Raises:
        DatasetError: A line is not JSON (file and line named).
        FileNotFoundError: ``path`` does not exist.
    """
    with Path(path).open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DatasetError(path, number, f"not JSON ({exc.msg} at column {exc.colno})") from None
            yield number, data
