"""The package's public face: exactly these names are exported."""

from __future__ import annotations

import ra_guard

EXPECTED = {
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
}


def test_exported_names() -> None:
    assert set(ra_guard.__all__) == EXPECTED
    for name in ra_guard.__all__:
        assert hasattr(ra_guard, name), name


def test_one_exception_tree() -> None:
    errors = [
        getattr(ra_guard, n) for n in ra_guard.__all__ if n.endswith(("Error", "Rejected", "Exceeded", "Failure"))
    ]
    for error in errors:
        assert issubclass(error, ra_guard.RaGuardError), error
    assert issubclass(ra_guard.PolicyError, ra_guard.ConfigurationError)
    assert issubclass(ra_guard.JudgeOutputError, ra_guard.RuntimeFailure)
    assert not issubclass(ra_guard.JudgeError, ra_guard.ConfigurationError)
