"""The one exception tree of ra-guard.

Every error ra-guard raises derives from :class:`RaGuardError`. Usage and
configuration mistakes (fix your code or your files) are kept apart from
runtime failures (a judge or a model misbehaved)::

    RaGuardError
    ├── ConfigurationError            usage: fix the call, the file or the install
    │   ├── InputError                an argument to a guard call is malformed (names the argument)
    │   ├── PolicyError               a policy file is wrong (file, field, allowed)
    │   ├── UnknownBackendError       a judge/sampler string names nothing known
    │   ├── MissingDependencyError    an optional extra is not installed
    │   ├── LocalModelError           a local model can't be used (files, architecture, template)
    │   └── AuditTextMissingError     an audit log kept no texts to replay (ra_guard.audit)
    └── RuntimeFailure                something failed while deciding
        ├── JudgeError                a judge call failed (transport, status, ...)
        │   ├── JudgeTimeoutError     it did not answer in time
        │   ├── JudgeOutputError      it answered, but the verdict is unusable
        │   ├── JudgeInputTooLongError  the rendered input exceeds the context
        │   └── LocalOutOfMemoryError  the local judge ran out of memory, even for one request
        ├── SamplerError              sampling candidates failed
        │   └── SamplerOutOfMemoryError  the local sampler ran out of memory
        ├── DeadlineExceeded          the decision's deadline passed with nothing to return
        └── AllCandidatesRejected     every candidate was vetoed by a hard policy

Example:
    >>> from ra_guard.exceptions import PolicyError, RaGuardError
    >>> issubclass(PolicyError, RaGuardError)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ra_guard.decision import Candidate, Decision

__all__ = [
    "AllCandidatesRejected",
    "ConfigurationError",
    "DeadlineExceeded",
    "InputError",
    "JudgeError",
    "JudgeInputTooLongError",
    "JudgeOutputError",
    "JudgeTimeoutError",
    "LocalModelError",
    "LocalOutOfMemoryError",
    "MissingDependencyError",
    "PolicyError",
    "RaGuardError",
    "RuntimeFailure",
    "SamplerError",
    "SamplerOutOfMemoryError",
    "UnknownBackendError",
]


class RaGuardError(Exception):
    """Base class of every error raised by ra-guard."""


class ConfigurationError(RaGuardError):
    """A usage or configuration mistake: the message says what to change."""


class InputError(ConfigurationError):
    """An argument given to a guard call (or a field inside it) is malformed.

    Attributes:
        argument: The argument, with the path to the bad item where there is one
            (``candidates``, ``candidates[1]``, ``messages[0].content``, ``n``).

    Example:
        >>> err = InputError("candidates", "must be a list of strings, got a str")
        >>> str(err), err.argument
        ('candidates: must be a list of strings, got a str', 'candidates')
    """

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class PolicyError(ConfigurationError):
    """A policy file or policy definition is invalid.

    Attributes:
        file: The policy file, or ``None`` for a policy built in code.
        field: The offending field (dotted path), or ``None`` for file-level errors.
        line: The 1-based line number where known (YAML syntax errors).

    Example:
        >>> err = PolicyError("must be between 1 and 5", file="p.yaml", field="min_score")
        >>> str(err)
        'p.yaml: field min_score: must be between 1 and 5'
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file = file
        self.field = field
        self.line = line
        self.reason = message
        where = file or "<policy>"
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"{where}: field {field}: " if field else f"{where}: "
        super().__init__(prefix + message)


class UnknownBackendError(ConfigurationError):
    """A judge or sampler spec string could not be resolved.

    Example:
        >>> str(UnknownBackendError("judge", "opnai-compat:x", ["openai-compat"], "did you mean 'openai-compat'?"))
        "unknown judge 'opnai-compat:x'; known prefixes: openai-compat. did you mean 'openai-compat'?"
    """

    def __init__(self, what: str, spec: str, known: Sequence[str], hint: str = "") -> None:
        self.spec = spec
        self.known = list(known)
        message = f"unknown {what} {spec!r}; known prefixes: {', '.join(self.known)}"
        if hint:
            message += f". {hint}"
        super().__init__(message)


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional dependency is needed; the message names the extra to install.

    Example:
        >>> str(MissingDependencyError("litellm", extra="litellm"))
        "this feature needs 'litellm': pip install 'ra-guard[litellm]'"
    """

    def __init__(self, package: str, *, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f"this feature needs {package!r}: pip install 'ra-guard[{extra}]'")


class LocalModelError(ConfigurationError):
    """A local model cannot be used: missing files, wrong architecture, no chat template.

    Attributes:
        path: The model path or hub id that was given.

    Example:
        >>> str(LocalModelError("/m", "no config.json"))
        '/m: no config.json'
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class RuntimeFailure(RaGuardError):
    """Something failed while a decision was being made."""


class JudgeError(RuntimeFailure):
    """A judge call failed.

    Attributes:
        judge: A short description of the judge (backend and model).
        retryable: Whether retrying the same call could succeed.
    """

    def __init__(self, message: str, *, judge: str = "", retryable: bool = False) -> None:
        self.judge = judge
        self.retryable = retryable
        super().__init__(f"{judge}: {message}" if judge else message)


class JudgeTimeoutError(JudgeError):
    """The judge did not answer within its timeout or the decision's deadline."""


class JudgeOutputError(JudgeError):
    """The judge answered, but its output cannot be turned into a verdict.

    Attributes:
        reason: A stable reason code (see ``ra_guard.judges.parsing.ReasonCode``).
        raw_text: The judge's raw generation, kept for debugging.

    Example:
        >>> err = JudgeOutputError("no_json", "no JSON object found", raw_text="<think>...")
        >>> err.reason, err.raw_text
        ('no_json', '<think>...')
    """

    def __init__(self, reason: str, message: str, *, raw_text: str, judge: str = "") -> None:
        self.reason = reason
        self.raw_text = raw_text
        super().__init__(f"[{reason}] {message}", judge=judge)


class JudgeInputTooLongError(JudgeError):
    """The rendered judge input does not fit the model's context.

    Attributes:
        input_tokens: Tokens in the rendered input.
        max_input_tokens: Tokens the model can take for the input.
    """

    def __init__(self, message: str, *, input_tokens: int, max_input_tokens: int, judge: str = "") -> None:
        self.input_tokens = input_tokens
        self.max_input_tokens = max_input_tokens
        super().__init__(message, judge=judge)


class LocalOutOfMemoryError(JudgeError):
    """The local model ran out of (GPU or CPU) memory, even for a single request.

    Example:
        >>> LocalOutOfMemoryError("out of memory", judge="local:/m").retryable
        True
    """

    def __init__(self, message: str, *, judge: str = "") -> None:
        super().__init__(message, judge=judge, retryable=True)


class SamplerError(RuntimeFailure):
    """Sampling candidates failed."""


class SamplerOutOfMemoryError(SamplerError):
    """The local sampler's model ran out of memory; reduce ``n`` or ``max_new_tokens``."""


class DeadlineExceeded(RuntimeFailure):
    """The decision's deadline passed before any candidate could be returned."""


class AllCandidatesRejected(RuntimeFailure):
    """Every candidate was vetoed by at least one hard policy.

    Attributes:
        decision: The full decision (candidates, per-policy scores, fallbacks).

    Example:
        >>> # try: guard.run(messages)
        >>> # except AllCandidatesRejected as err: print(err.candidates[0].scores)
    """

    def __init__(self, message: str, *, decision: Decision) -> None:
        self.decision = decision
        super().__init__(message)

    @property
    def candidates(self) -> list[Candidate]:
        """Every candidate that was judged, with its scores."""
        return list(self.decision.candidates)

    @property
    def scores(self) -> list[dict[str, Any]]:
        """Per candidate, the score under each policy (``None`` where not judged)."""
        return [{name: s.score for name, s in c.scores.items()} for c in self.decision.candidates]
