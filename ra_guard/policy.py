"""Policies: declared natural-language principles the judge scores against.

A policy is one judge call: its ``principle`` (which may list several weighted
criteria in prose) goes to the judge with all candidates. ``kind: hard`` vetoes
any candidate scoring below ``min_score``; ``kind: soft`` adds ``weight`` times
its score to the ranking. ``on_judge_error`` says what a failed judge call means.

Example:
    >>> p = load_policy("concise")
    >>> p.kind.value, 1 <= p.min_score <= 5
    ('soft', True)
    >>> Policy(name="polite", principle="Be polite.").on_judge_error
    'fail_open'
"""

from __future__ import annotations

import difflib
import hashlib
import json
from enum import Enum
from functools import cached_property
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ra_guard.exceptions import PolicyError

__all__ = [
    "OnJudgeError",
    "Policy",
    "PolicyKind",
    "list_policies",
    "load_policy",
    "policy_json_schema",
]


class PolicyKind(str, Enum):
    """``hard``: veto below ``min_score``. ``soft``: weighted contribution to the ranking."""

    SOFT = "soft"
    HARD = "hard"


OnJudgeError = Literal["fail_open", "fail_closed"]


class Policy(BaseModel):
    """One principle for the judge, and how its scores count.

    Attributes:
        name: Identifier used in decisions, traces and metrics (letters, digits, ``-_.``).
        description: One line for people reading dashboards.
        principle: The text given to the judge.
        kind: ``soft`` (default) or ``hard``.
        min_score: Passing score, 1–5. Hard policies veto below it; both kinds
            trigger retry-with-feedback below it.
        weight: How much a soft policy counts in the combined score (> 0).
        on_judge_error: ``fail_open`` (ignore this policy for the decision, and
            record why) or ``fail_closed`` (treat every candidate as failing it).

    Example:
        >>> Policy(name="no-pii", principle="Never reveal personal data.", kind="hard", min_score=4).kind
        <PolicyKind.HARD: 'hard'>
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    principle: str = Field(min_length=1)
    kind: PolicyKind = PolicyKind.SOFT
    min_score: float = Field(default=3, ge=1, le=5)
    weight: float = Field(default=1.0, gt=0)
    on_judge_error: OnJudgeError = "fail_open"

    @field_validator("principle")
    @classmethod
    def _principle_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("principle is blank: write the rule the judge should apply")
        return value

    @property
    def is_hard(self) -> bool:
        """Whether this policy vetoes candidates below ``min_score``."""
        return self.kind is PolicyKind.HARD

    @cached_property
    def content_hash(self) -> str:
        """A short sha256 of the policy's content, for audit records.

        Example:
            >>> len(Policy(name="a", principle="b").content_hash)
            16
        """
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    @classmethod
    def from_yaml(cls, text: str, *, file: str = "<string>") -> Policy:
        """Parse one policy from YAML text; errors name ``file``.

        Example:
            >>> Policy.from_yaml("name: x\\nprinciple: Be kind.").name
            'x'
        """
        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            line = mark.line + 1 if mark is not None else None
            raise PolicyError(f"YAML syntax error: {exc.problem}", file=file, line=line) from exc
        except yaml.YAMLError as exc:
            raise PolicyError(f"YAML syntax error: {exc}", file=file) from exc
        if data is None:
            raise PolicyError("the file is empty: a policy needs at least 'name' and 'principle'", file=file)
        if not isinstance(data, dict):
            raise PolicyError(f"expected a mapping of policy fields, got {type(data).__name__}", file=file)
        return cls.from_dict(data, file=file)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, file: str = "<dict>") -> Policy:
        """Validate a mapping of policy fields; errors name ``file`` and the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _policy_error(exc, file) from None


def _policy_error(exc: ValidationError, file: str) -> PolicyError:
    """Turn pydantic's first error into a PolicyError that says what is allowed."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    kind = err["type"]
    allowed_keys = ", ".join(Policy.model_fields)
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(field), list(Policy.model_fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        message = f"unknown key{hint}; allowed keys: {allowed_keys}"
    elif kind == "missing":
        message = "is required" + (": write the rule the judge should apply" if field == "principle" else "")
    elif field == "min_score":
        message = f"must be a number from 1 to 5, got {err.get('input')!r}"
    elif field == "kind":
        message = f"must be one of: soft, hard; got {err.get('input')!r}"
    elif field == "on_judge_error":
        message = f"must be one of: fail_open, fail_closed; got {err.get('input')!r}"
    elif field == "weight":
        message = f"must be a number greater than 0, got {err.get('input')!r}"
    elif field == "name" and kind == "string_pattern_mismatch":
        message = f"must use letters, digits, '-', '_' or '.', got {err.get('input')!r}"
    else:
        message = str(err["msg"])
    return PolicyError(message, file=file, field=field)


def _shipped_dir() -> Traversable:
    """Where the shipped policies live: inside the wheel, or the checkout's ``policies/``."""
    packaged = resources.files("ra_guard").joinpath("policies")
    if packaged.is_dir():
        return packaged
    return resources.files("ra_guard").joinpath("..", "policies")


def list_policies() -> list[str]:
    """Names of the policies shipped with ra-guard.

    Example:
        >>> "concise" in list_policies()
        True
    """
    return sorted(p.name[: -len(".yaml")] for p in _shipped_dir().iterdir() if p.name.endswith(".yaml"))


def load_policy(name_or_path: str | Path) -> Policy:
    """Load a shipped policy by name, or a policy file by path.

    Args:
        name_or_path: A shipped policy's name (``"concise"``) or a path to a
            ``.yaml``/``.yml`` file.

    Raises:
        PolicyError: The file is missing or invalid, or no shipped policy has that name.

    Example:
        >>> load_policy("harmless").is_hard
        True
    """
    text = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text
    if looks_like_path:
        path = Path(text)
        try:
            content = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError("file not found", file=text) from None
        except OSError as exc:
            raise PolicyError(f"cannot read the file: {exc.strerror}", file=text) from None
        return Policy.from_yaml(content, file=text)
    shipped = _shipped_dir().joinpath(f"{text}.yaml")
    if not shipped.is_file():
        names = list_policies()
        close = difflib.get_close_matches(text, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise PolicyError(f"no shipped policy named {text!r}; {hint}shipped: {', '.join(names)}")
    return Policy.from_yaml(shipped.read_text(encoding="utf-8"), file=f"<shipped>/{text}.yaml")


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file, for editor completion and validation.

    Example:
        >>> "principle" in policy_json_schema()["properties"]
        True
    """
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ra-guard policy"
    return schema
