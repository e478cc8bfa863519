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
import math
import os
import stat
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
    "MAX_POLICY_BYTES",
    "OnJudgeError",
    "Policy",
    "PolicyKind",
    "list_policies",
    "load_policy",
    "policy_json_schema",
    "validate_policy_file",
]

#: The largest policy file (or YAML text) read, in bytes: a principle is a paragraph, not a book.
MAX_POLICY_BYTES = 1024 * 1024
#: The largest ``weight`` a soft policy may have.
MAX_WEIGHT = 1000.0


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
    weight: float = Field(default=1.0, gt=0, le=MAX_WEIGHT)
    on_judge_error: OnJudgeError = "fail_open"

    @field_validator("min_score", "weight", mode="before")
    @classmethod
    def _real_number(cls, value: Any) -> Any:
        # YAML turns `true`, `.inf` and `1e308` into values pydantic would take as numbers.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number, got {value!r}")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            raise ValueError(f"must be a finite number, got {value!r}")
        return value

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
        if len(text) > MAX_POLICY_BYTES:
            raise PolicyError(f"is {len(text)} characters; a policy file holds at most {MAX_POLICY_BYTES}", file=file)
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
    """Pydantic's first error as a PolicyError that says what is allowed (and how many more there are)."""
    errors = _policy_errors(exc, file)
    first = errors[0]
    if len(errors) == 1:
        return first
    more = f" (and {len(errors) - 1} more: run `python -m ra_guard validate` to list them)"
    return PolicyError(first.reason + more, file=first.file, field=first.field)


def _policy_errors(exc: ValidationError, file: str) -> list[PolicyError]:
    """Every pydantic error as a PolicyError that names the field and says what is allowed."""
    allowed_keys = ", ".join(Policy.model_fields)
    errors: list[PolicyError] = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or None
        kind = err["type"]
        if kind == "extra_forbidden":
            close = difflib.get_close_matches(str(field), list(Policy.model_fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message = f"unknown key{hint}; allowed keys: {allowed_keys}"
        elif kind == "missing":
            message = "is required" + (": write the rule the judge should apply" if field == "principle" else "")
        elif field == "min_score":
            message = f"must be a number from 1 to 5, got {_shown(err.get('input'))}"
        elif field == "kind":
            message = f"must be one of: soft, hard; got {_shown(err.get('input'))}"
        elif field == "on_judge_error":
            message = f"must be one of: fail_open, fail_closed; got {_shown(err.get('input'))}"
        elif field == "weight":
            message = f"must be a number greater than 0 and at most {MAX_WEIGHT:g}, got {_shown(err.get('input'))}"
        elif field == "name" and kind == "string_pattern_mismatch":
            message = f"must use letters, digits, '-', '_' or '.', got {_shown(err.get('input'))}"
        else:
            message = str(err["msg"])
        errors.append(PolicyError(message, file=file, field=field))
    return errors


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _shipped_dir() -> Traversable:
    """Where the shipped policies live: the package's ``policies`` folder.

    In a checkout ``ra_guard/policies`` is a link to the repository's ``policies/``;
    the wheel carries the files themselves, so both read them the same way.
    """
    return resources.files("ra_guard").joinpath("policies")


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
        return Policy.from_yaml(_read_policy_file(Path(text), text), file=text)
    shipped = _shipped_dir().joinpath(f"{text}.yaml")
    if not shipped.is_file():
        names = list_policies()
        close = difflib.get_close_matches(text, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise PolicyError(f"no shipped policy named {text!r}; {hint}shipped: {', '.join(names)}")
    return Policy.from_yaml(shipped.read_text(encoding="utf-8"), file=f"<shipped>/{text}.yaml")


def _read_policy_file(path: Path, file: str) -> str:
    """The text of a policy file: a regular file of at most :data:`MAX_POLICY_BYTES` bytes, in UTF-8."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise PolicyError("file not found", file=file) from None
    except OSError as exc:
        raise PolicyError(f"cannot read the file: {exc.strerror}", file=file) from None
    if not stat.S_ISREG(info.st_mode):
        raise PolicyError("is not a regular file (a device, pipe or folder); give a .yaml file", file=file)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)  # never more, whatever the file claims to be
    except OSError as exc:
        raise PolicyError(f"cannot read the file: {exc.strerror}", file=file) from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"is larger than {MAX_POLICY_BYTES} bytes; a policy file is a few lines of YAML", file=file)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise PolicyError("is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8", file=file)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"is not valid UTF-8 (byte {exc.start} is 0x{data[exc.start]:02x}); save it as UTF-8"
        raise PolicyError(message, file=file) from None


def validate_policy_file(path: str | os.PathLike[str]) -> list[PolicyError]:
    """Every problem of one policy file (empty: it is valid), for ``python -m ra_guard validate``.

    A file that cannot be read or parsed has one error; a parsed file has one per bad field.

    Example:
        >>> import tempfile, pathlib
        >>> bad = pathlib.Path(tempfile.mkdtemp()) / "p.yaml"
        >>> _ = bad.write_text("name: x\\nprinciple: Be kind.\\nweight: .inf\\nmin_score: true\\n")
        >>> [error.field for error in validate_policy_file(bad)]
        ['min_score', 'weight']
    """
    file = os.fspath(path)
    try:
        text = _read_policy_file(Path(file), file)
        Policy.from_yaml(text, file=file)
    except PolicyError as error:
        if error.field is None:
            return [error]
        data = yaml.safe_load(text)
        try:
            Policy.model_validate(data)
        except ValidationError as exc:
            return _policy_errors(exc, file)
        return [error]
    return []


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
