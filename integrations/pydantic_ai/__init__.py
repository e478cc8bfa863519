"""pydantic-ai integration: an output validator that retries with the judge's critique, and a best-of-N model.

Needs the ``pydantic-ai`` extra (``pip install 'ra-guard[pydantic-ai]'``).

- :class:`RaGuardOutputValidator`: for ``agent.output_validator(...)``; raises
  ``ModelRetry`` with the judge's critique when the output fails the policies;
- :class:`GuardedModel`: a ``WrapperModel`` whose answers are the judged best
  of ``n`` requests (or retried with the critique);
- :func:`decision_summary`, :func:`critique`: the summary kept in
  ``response.metadata["ra_guard"]`` and the retry message.

Example:
    >>> from ra_guard.integrations.pydantic_ai import GuardedModel, RaGuardOutputValidator
    >>> GuardedModel.__name__, RaGuardOutputValidator.__name__
    ('GuardedModel', 'RaGuardOutputValidator')
"""

from __future__ import annotations

try:
    import pydantic_ai  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from ra_guard.exceptions import MissingDependencyError

    raise MissingDependencyError("pydantic-ai-slim", extra="pydantic-ai") from exc

from ra_guard.decision import decision_summary

from .model import GuardedModel
from .validator import DEFAULT_CRITIQUE, METADATA_KEY, RaGuardOutputValidator, RetryOn, critique

__all__ = [
    "DEFAULT_CRITIQUE",
    "METADATA_KEY",
    "GuardedModel",
    "RaGuardOutputValidator",
    "RetryOn",
    "critique",
    "decision_summary",
]
