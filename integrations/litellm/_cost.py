"""What a guarded litellm decision cost in dollars: every candidate call and every judge call, the winner apart.

litellm prices each call it makes and stamps the price on the response
(``response._hidden_params["response_cost"]``); a guarded response is built
from one of those responses, so without this module it would carry the
winner's price only, about 1/N of what was spent. :func:`decision_cost` adds
up the calls' own prices, as litellm computed them:

- every candidate call: the ``response_cost`` litellm stamped on it;
- the judge calls: litellm's price of the judge's tokens where the judge is a
  :class:`~ra_guard.judges.litellm_judge.LiteLLMJudge` (the same
  ``cost_per_token`` that litellm's logging applies to that call's usage).
  Any other judge (a RewardAnything server, a local model, a router's model
  group) has no litellm price: its cost is ``None`` and a line in
  ``unpriced`` says so, never a guess;
- the answer the guard checked, where the decision did not sample it (the
  proxy's original answer).

Each of those calls also went through litellm's own logging, so success
callbacks and spend logs already see each one with its own cost; the guarded
response is built after them and is not logged again (see
``docs/integrations.md``, "Usage and cost").

Example:
    >>> why = "judge openai-compat:gpu:8000: not a litellm call, its 180 tokens have no litellm price"
    >>> cost = DecisionCost(total=3e-05, winner=1e-05, candidates=3e-05, judge=None, unpriced=[why])
    >>> cost.as_dict()["total_cost"], cost.as_dict()["judge_cost"]
    (3e-05, None)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ra_guard.decision import Decision
from ra_guard.judges.base import Judge
from ra_guard.judges.litellm_judge import LiteLLMJudge

__all__ = ["SPEND_KEYS", "DecisionCost", "decision_cost", "response_cost"]

#: Keys of ``response.ra_guard`` that report spend (tokens and dollars), whole and the winner's.
SPEND_KEYS = (
    "total_usage",
    "winner_usage",
    "total_cost",
    "winner_cost",
    "candidates_cost",
    "judge_cost",
    "cost_unpriced",
)


@dataclass(frozen=True)
class DecisionCost:
    """Dollars spent by one decision, as litellm priced its calls.

    Attributes:
        total: Every priced part added up (candidates, judge, checked answer);
            ``None`` when no part has a price.
        winner: The price of the call that produced the winner (with
            ``use_n``, that one call made every candidate); ``None`` if unpriced.
        candidates: Every sampled call added up (``None`` when none is priced).
        judge: The judge calls' price; ``None`` when unknown (see ``unpriced``).
        unpriced: One line per part left out of ``total``, saying why.
    """

    total: float | None
    winner: float | None
    candidates: float | None
    judge: float | None
    unpriced: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-able form put in ``response.ra_guard``."""
        return {
            "total_cost": self.total,
            "winner_cost": self.winner,
            "candidates_cost": self.candidates,
            "judge_cost": self.judge,
            "cost_unpriced": list(self.unpriced),
        }


def response_cost(response: Any) -> float | None:
    """The price litellm stamped on ``response`` (``_hidden_params["response_cost"]``), if a finite number."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost):
        return None
    return float(cost)


def _sum(costs: Iterable[float | None]) -> float | None:
    known = [cost for cost in costs if cost is not None]
    return sum(known) if known else None


def _judge_cost(judge: Judge | None, decision: Decision) -> tuple[float | None, str | None]:
    """The judge calls' price, or ``None`` and why it is unknown."""
    tokens = decision.judge_usage
    if decision.judge_calls == 0 and tokens.total_tokens == 0:
        return 0.0, None
    name = getattr(judge, "name", "?")
    if not isinstance(judge, LiteLLMJudge):
        return None, f"judge {name}: not a litellm call, its {tokens.total_tokens} tokens have no litellm price"
    import litellm

    options = judge.litellm_kwargs
    custom = None
    if "input_cost_per_token" in options and "output_cost_per_token" in options:
        # litellm prices a call by the per-call prices it was given, before its price table
        custom = {
            "input_cost_per_token": float(options["input_cost_per_token"]),
            "output_cost_per_token": float(options["output_cost_per_token"]),
        }
    try:
        prompt, completion = litellm.cost_per_token(
            model=judge.model,
            prompt_tokens=tokens.prompt_tokens,
            completion_tokens=tokens.completion_tokens,
            custom_cost_per_token=custom,
        )
    except Exception as exc:  # litellm raises a bare Exception for a model it has no price for
        return None, f"judge {name}: litellm has no price for {judge.model!r} ({type(exc).__name__})"
    return prompt + completion, None


def decision_cost(
    decision: Decision,
    *,
    sampled: Iterable[Any] = (),
    winner: Any,
    checked: Any = None,
    judge: Judge | None = None,
) -> DecisionCost:
    """Add up what ``decision`` cost, from the responses of its calls.

    Args:
        decision: The decision (for the judge's tokens and calls).
        sampled: Every response the decision sampled (one per call, each once).
        winner: The response that holds the winning choice.
        checked: The answer the guard checked without sampling it, if any.
        judge: The guard's judge.

    Example:
        >>> from ra_guard.decision import Candidate, Decision
        >>> decision = Decision(chosen_index=0, candidates=[Candidate(index=0, text="Hi", source="original")])
        >>> decision_cost(decision, winner=None).total is None
        True
    """
    unpriced: list[str] = []
    sampled = list(sampled)
    candidate_costs = [response_cost(response) for response in sampled]
    missing = candidate_costs.count(None)
    if missing:
        unpriced.append(f"{missing} of {len(sampled)} candidate calls: litellm stamped no response_cost")
    checked_cost = response_cost(checked) if checked is not None else None
    if checked is not None and checked_cost is None:
        unpriced.append("the checked answer: litellm stamped no response_cost")
    judge_cost, why = _judge_cost(judge, decision)
    if why is not None:
        unpriced.append(why)
    candidates = _sum(candidate_costs)
    return DecisionCost(
        total=_sum([candidates, judge_cost if decision.judge_calls else None, checked_cost]),
        winner=response_cost(winner),
        candidates=candidates,
        judge=judge_cost,
        unpriced=unpriced,
    )
