"""ra-guard: best-of-N and retry-with-feedback for LLM outputs, judged by RewardAnything.

Example:
    >>> from ra_guard import Guard, BestOfN
    >>> from ra_guard.testing import FunctionJudge, FunctionSampler
    >>> shorter_is_better = FunctionJudge(lambda r: {n: 6 - len(t) for n, t in r.responses.items()})
    >>> guard = Guard(policies=["concise"], judge=shorter_is_better, strategy=BestOfN(n=3))
    >>> guard.run([{"role": "user", "content": "Pick"}], sampler=FunctionSampler(lambda m, i: "x" * (3 - i))).text
    'x'
"""

from __future__ import annotations

from ra_guard.audit import AuditLog, AuditTextMissingError
from ra_guard.decision import Candidate, Decision, Fallback, PolicyScore
from ra_guard.exceptions import (
    AllCandidatesRejected,
    ConfigurationError,
    DeadlineExceeded,
    InputError,
    JudgeError,
    JudgeInputTooLongError,
    JudgeOutputError,
    JudgeTimeoutError,
    LocalModelError,
    LocalOutOfMemoryError,
    MissingDependencyError,
    PolicyError,
    RaGuardError,
    RuntimeFailure,
    SamplerError,
    SamplerOutOfMemoryError,
    UnknownBackendError,
)
from ra_guard.guard import Budget, Guard
from ra_guard.judges import Judge, JudgeRequest, resolve_judge
from ra_guard.pairs import audit_log_pairs, decision_pairs
from ra_guard.policy import Policy, PolicyKind, list_policies, load_policy, policy_json_schema
from ra_guard.replay import ReplayReport, areplay, replay
from ra_guard.samplers import FunctionSampler, Sampler, resolve_sampler
from ra_guard.shadow import ShadowGuard
from ra_guard.strategies import BestOfN, RetryWithFeedback, Strategy
from ra_guard.types import ChatMessage, Sample, Usage
from ra_guard.verdict import Verdict

__version__ = "0.1.0"

__all__ = [
    "AllCandidatesRejected",
    "AuditLog",
    "AuditTextMissingError",
    "BestOfN",
    "Budget",
    "Candidate",
    "ChatMessage",
    "ConfigurationError",
    "DeadlineExceeded",
    "Decision",
    "Fallback",
    "FunctionSampler",
    "Guard",
    "InputError",
    "Judge",
    "JudgeError",
    "JudgeInputTooLongError",
    "JudgeOutputError",
    "JudgeRequest",
    "JudgeTimeoutError",
    "LocalModelError",
    "LocalOutOfMemoryError",
    "MissingDependencyError",
    "Policy",
    "PolicyError",
    "PolicyKind",
    "PolicyScore",
    "RaGuardError",
    "ReplayReport",
    "RetryWithFeedback",
    "RuntimeFailure",
    "Sample",
    "Sampler",
    "SamplerError",
    "SamplerOutOfMemoryError",
    "ShadowGuard",
    "Strategy",
    "UnknownBackendError",
    "Usage",
    "Verdict",
    "__version__",
    "areplay",
    "audit_log_pairs",
    "decision_pairs",
    "list_policies",
    "load_policy",
    "policy_json_schema",
    "replay",
    "resolve_judge",
    "resolve_sampler",
]
