"""LangChain integration: agent middleware, a guarded LCEL runnable, chat models as sampler and judge.

Needs the ``langchain`` extra (``pip install 'ra-guard[langchain]'``).

- :class:`RaGuardMiddleware`: for ``create_agent(..., middleware=[...])``;
- :class:`GuardedRunnable`: wraps any chat model or chain (``invoke``/``stream``/``batch``...);
- :class:`ChatModelSampler`, :class:`ChatModelJudge`: any ``BaseChatModel`` as a sampler or a judge.

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

from .judge import ChatModelJudge
from .middleware import DECISION_KEY, RaGuardMiddleware
from .runnable import GuardedRunnable, decision_of
from .sampler import ChatModelSampler

__all__ = [
    "DECISION_KEY",
    "ChatModelJudge",
    "ChatModelSampler",
    "GuardedRunnable",
    "RaGuardMiddleware",
    "decision_of",
]
