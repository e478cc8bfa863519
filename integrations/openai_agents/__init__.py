"""OpenAI Agents SDK integration: an output guardrail and a best-of-N/retry model wrapper.

Needs the ``openai-agents`` extra (``pip install 'ra-guard[openai-agents]'``).

- :func:`ra_guard_output_guardrail`: an ``OutputGuardrail`` that judges the
  agent's final output and trips the wire when it fails the policies;
- :class:`GuardedModel`: wraps any ``agents.Model`` so that each answer is the
  judged best of ``n`` calls (or retried with the judge's critique);
- :func:`decision_summary`: the compact, text-free summary both put in results and traces.

Example:
    >>> from ra_guard.integrations.openai_agents import GuardedModel, ra_guard_output_guardrail
    >>> GuardedModel.__name__, ra_guard_output_guardrail.__name__
    ('GuardedModel', 'ra_guard_output_guardrail')
"""

from __future__ import annotations

try:
    import agents  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from ra_guard.exceptions import MissingDependencyError

    raise MissingDependencyError("openai-agents", extra="openai-agents") from exc

from ra_guard.decision import decision_summary

from .guardrail import TripOn, ra_guard_output_guardrail
from .model import GuardedModel

__all__ = ["GuardedModel", "TripOn", "decision_summary", "ra_guard_output_guardrail"]
