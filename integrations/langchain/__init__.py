"""LangChain integration: agent middleware, a guarded LCEL runnable, chat models as sampler and judge.

Needs the ``langchain`` extra (``pip install 'ra-guard[langchain]'``).

- :class:`RaGuardMiddleware`: for ``create_agent(..., middleware=[...])``;
- :class:`GuardedRunnable`: wraps any chat model or chain (``invoke``/``stream``/``batch``...);
- :class:`ChatModelSampler`, :class:`ChatModelJudge`: any ``BaseChatModel`` as a sampler or a judge;
- :func:`summary_of`: the :class:`DecisionSummary` a guarded message carries.

Example:
    >>> from ra_guard.integrations.langchain import GuardedRunnable, RaGuardMiddleware
    >>> GuardedRunnable.__name__, RaGuardMiddleware.__name__
    ('GuardedRunnable', 'RaGuardMiddleware')
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
    from langchain.agents import middleware as _middleware  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from ra_guard.exceptions import MissingDependencyError

    raise MissingDependencyError("langchain", extra="langchain") from exc

from ._calls import CANDIDATE_TAG
from ._summary import DECISION_KEY, DecisionSummary, summary_of
from .judge import ChatModelJudge
from .middleware import DECISION_EVENT, RaGuardMiddleware
from .runnable import GuardedRunnable
from .sampler import ChatModelSampler, accepts_temperature

__all__ = [
    "CANDIDATE_TAG",
    "DECISION_EVENT",
    "DECISION_KEY",
    "ChatModelJudge",
    "ChatModelSampler",
    "DecisionSummary",
    "GuardedRunnable",
    "RaGuardMiddleware",
    "accepts_temperature",
    "summary_of",
]
