"""litellm integration: guarded completions, a judge behind a ``Router``, a proxy guardrail.

Needs the ``litellm`` extra (``pip install 'ra-guard[litellm]'``); the proxy
guardrail runs inside the litellm proxy, whose server dependencies come with
``pip install 'ra-guard[litellm-proxy]'`` (litellm's own ``litellm[proxy]``
extra pins a ``litellm-proxy`` release missing from PyPI for recent litellm).

- :func:`guarded_completion` / :func:`guarded_acompletion`: best-of-N ``completion`` returning a ``ModelResponse``;
- :class:`RouterJudge`, :func:`router_judge`: RewardAnything on several endpoints, load balanced with failover;
- ``ra_guard.integrations.litellm.guardrail.RaGuardGuardrail``: the proxy guardrail (imported on its own,
  as the proxy config names it, since it needs the proxy's dependencies).

Example:
    >>> from ra_guard.integrations.litellm import guarded_completion, router_judge
    >>> callable(guarded_completion) and callable(router_judge)
    True
"""

from __future__ import annotations

try:
    import litellm  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from ra_guard.exceptions import MissingDependencyError

    raise MissingDependencyError("litellm", extra="litellm") from exc

from ._sampler import DECISION_ATTRIBUTE, CompletionSampler
from .completion import guarded_acompletion, guarded_completion
from .router import RouterJudge, router_judge

__all__ = [
    "DECISION_ATTRIBUTE",
    "CompletionSampler",
    "RouterJudge",
    "guarded_acompletion",
    "guarded_completion",
    "router_judge",
]
