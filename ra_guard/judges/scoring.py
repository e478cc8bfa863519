"""Scores from digit probabilities: forced JSON, expected scores, position-bias averaging.

In the ``fast`` and ``hybrid`` modes the judge does not write its verdict; it
is *given* the verdict's skeleton and asked for one digit at a time::

    <think>\\n\\n</think>\\n\\n{"scores": {"model-1": ▮          read P(1..5), feed the likeliest
    <think>\\n\\n</think>\\n\\n{"scores": {"model-1": 4, "model-2": ▮   read again, ...

Each candidate's score is the expected value of its digit distribution, so
scores are continuous, never unparseable, and rank finely. This module is the
pure part of that procedure (no torch): :class:`ForcedJsonReader` is a sans-IO
state machine that says what text to feed next and collects the distributions.
The local judge drives it with token chunks on a KV cache; an OpenAI-compatible
endpoint drives it with ``continue_final_message`` requests and
``top_logprobs`` (:func:`distribution_from_top_logprobs`).

Example:
    >>> reader = ForcedJsonReader(["model-1", "model-2"])
    >>> reader.prefix
    '<think>\\n\\n</think>\\n\\n{"scores": {"model-1": '
    >>> reader.feed([0.0, 0.1, 0.2, 0.6, 0.1])
    '4, "model-2": '
    >>> reader.feed([0.5, 0.5, 0.0, 0.0, 0.0]) is None
    True
    >>> round(expected_score(reader.distributions["model-1"]), 2)
    3.7
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ra_guard.exceptions import ConfigurationError
from ra_guard.judges.format import RenderedRequest
from ra_guard.types import ChatMessage, Usage
from ra_guard.verdict import Verdict

__all__ = [
    "DIGITS",
    "EMPTY_THINKING",
    "LOW_DIGIT_MASS",
    "LowDigitMass",
    "check_digit_mass_settings",
    "low_digit_mass_detail",
    "ForcedJsonReader",
    "average_verdicts",
    "ENDPOINT_STEP_PARAMS",
    "distribution_from_top_logprobs",
    "endpoint_step_messages",
    "expected_score",
    "normalise",
    "permutation_orders",
    "verdict_from_distributions",
]

#: The score digits, in the order of every distribution.
DIGITS = ("1", "2", "3", "4", "5")

#: What ``fast``/``hybrid`` do where the digits hold too little probability: parse a generation, or raise.
LowDigitMass = Literal["parse", "raise"]

#: The reason code of a low digit mass (``JudgeOutputError.reason``, the note's code in ``Verdict.repairs``).
LOW_DIGIT_MASS = "low_digit_mass"


def check_digit_mass_settings(min_digit_mass: float, on_low_digit_mass: str) -> None:
    """Refuse a digit-mass threshold outside 0..1 or an unknown ``on_low_digit_mass``.

    Raises:
        ConfigurationError: Naming the setting and the value given.

    Example:
        >>> check_digit_mass_settings(0.1, "parse")
    """
    if not 0.0 <= min_digit_mass <= 1.0:
        raise ConfigurationError(f"min_digit_mass must be between 0 and 1, got {min_digit_mass}")
    if on_low_digit_mass not in ("parse", "raise"):
        raise ConfigurationError(f"on_low_digit_mass must be 'parse' or 'raise', got {on_low_digit_mass!r}")


def low_digit_mass_detail(mass: float, name: str, min_digit_mass: float) -> str:
    """What a ``low_digit_mass`` note or error says, ``name`` being the candidate's own name.

    Example:
        >>> low_digit_mass_detail(0.005, "short", 0.1)
        "the digits 1-5 held 0.5% of the probability where short's score was expected (min_digit_mass=0.1)"
    """
    return (
        f"the digits 1-5 held {mass:.1%} of the probability where {name}'s score was expected "
        f"(min_digit_mass={min_digit_mass:g})"
    )


#: What Qwen3's template inserts with ``enable_thinking=False``: an empty thinking block.
EMPTY_THINKING = "<think>\n\n</think>\n\n"


def normalise(probabilities: Sequence[float]) -> list[float]:
    """Scale non-negative weights to sum to 1 (uniform when they are all zero).

    Example:
        >>> normalise([1.0, 1.0, 2.0, 0.0, 0.0])
        [0.25, 0.25, 0.5, 0.0, 0.0]
    """
    total = float(sum(probabilities))
    if total <= 0 or not math.isfinite(total):
        return [1.0 / len(probabilities)] * len(probabilities)
    return [float(p) / total for p in probabilities]


def expected_score(distribution: Sequence[float]) -> float:
    """The expected score of a distribution over 1..5.

    Example:
        >>> expected_score([0.0, 0.0, 0.5, 0.5, 0.0])
        3.5
    """
    return float(sum((i + 1) * p for i, p in enumerate(distribution)))


class ForcedJsonReader:
    """Sans-IO state machine of forced-JSON digit scoring.

    Args:
        shown_names: The names the judge sees, in the order to score them.
        open_thinking: Start with an empty ``<think>`` block (``fast`` mode).
            ``hybrid`` mode passes ``False`` and closes its own thinking.

    Attributes:
        prefix: The assistant text so far (what an endpoint continues from).
        distributions: Shown name -> probabilities of 1..5, filled by :meth:`feed`.

    Example:
        >>> reader = ForcedJsonReader(["a"], open_thinking=False)
        >>> reader.prefix
        '{"scores": {"a": '
    """

    def __init__(self, shown_names: Sequence[str], *, open_thinking: bool = True) -> None:
        if not shown_names:
            raise ValueError("ForcedJsonReader needs at least one name")
        self.names = list(shown_names)
        self.distributions: dict[str, list[float]] = {}
        self.chosen: list[int] = []
        self.prefix = (EMPTY_THINKING if open_thinking else "") + self.head

    @property
    def head(self) -> str:
        """The JSON up to the first score: ``{"scores": {"<first name>": ``."""
        return '{"scores": {' + _key(self.names[0])

    @property
    def done(self) -> bool:
        """Whether every name has a distribution."""
        return len(self.distributions) == len(self.names)

    def feed(self, digit_probabilities: Sequence[float]) -> str | None:
        """Record P(1..5) for the current name; return the text to append next, or ``None`` at the end.

        The likeliest digit is written into the JSON (so later scores are read
        in the context of earlier ones, as when the judge writes them itself).
        """
        if self.done:
            raise RuntimeError("every name already has a distribution")
        if len(digit_probabilities) != len(DIGITS):
            raise ValueError(f"expected {len(DIGITS)} probabilities, got {len(digit_probabilities)}")
        distribution = normalise(digit_probabilities)
        index = len(self.distributions)
        self.distributions[self.names[index]] = distribution
        digit = max(range(len(distribution)), key=distribution.__getitem__) + 1
        self.chosen.append(digit)
        if self.done:
            self.prefix += str(digit)
            return None
        step = f"{digit}, {_key(self.names[index + 1])}"
        self.prefix += step
        return step


def _key(name: str) -> str:
    return json.dumps(name, ensure_ascii=False) + ": "


def distribution_from_top_logprobs(top_logprobs: Sequence[Any]) -> tuple[list[float], float] | None:
    """P(1..5) from OpenAI-style ``top_logprobs`` of one generated position.

    Accepts dicts (``{"token": "4", "logprob": -0.2}``) or the OpenAI SDK's
    objects (``.token``, ``.logprob``). Tokens are matched after stripping
    whitespace, so ``" 4"`` counts as ``4``.

    Returns:
        ``(distribution, mass)``: probabilities of 1..5 renormalised to sum to 1,
        and the probability mass the digits had before renormalising; ``None``
        when no digit 1..5 is among the alternatives (ask for more
        ``top_logprobs``).

    Example:
        >>> dist, mass = distribution_from_top_logprobs(
        ...     [{"token": "4", "logprob": math.log(0.6)}, {"token": " 5", "logprob": math.log(0.2)},
        ...      {"token": "x", "logprob": math.log(0.2)}])
        >>> [round(p, 2) for p in dist], round(mass, 2)
        ([0.0, 0.0, 0.0, 0.75, 0.25], 0.8)
    """
    weights = [0.0] * len(DIGITS)
    for entry in top_logprobs:
        token = entry.get("token") if isinstance(entry, Mapping) else getattr(entry, "token", None)
        logprob = entry.get("logprob") if isinstance(entry, Mapping) else getattr(entry, "logprob", None)
        if token is None or logprob is None:
            continue
        text = str(token).strip()
        if text in DIGITS:
            weights[DIGITS.index(text)] += math.exp(float(logprob))
    mass = sum(weights)
    if mass <= 0:
        return None
    return normalise(weights), mass


#: Chat-completion parameters of one digit-reading step on an OpenAI-compatible server
#: (vLLM, SGLang): one token, its top alternatives, continuing the assistant prefix.
ENDPOINT_STEP_PARAMS: dict[str, Any] = {
    "max_tokens": 1,
    "temperature": 0.0,
    "logprobs": True,
    "top_logprobs": 20,
    "extra_body": {"continue_final_message": True, "add_generation_prompt": False},
}


def endpoint_step_messages(rendered: RenderedRequest, reader: ForcedJsonReader) -> list[ChatMessage]:
    """Messages for the next digit-reading step on an endpoint: the judge input plus the forced prefix.

    Send them with :data:`ENDPOINT_STEP_PARAMS`, read the answer's first
    ``top_logprobs`` with :func:`distribution_from_top_logprobs`, ``feed`` the
    reader, and repeat until ``reader.done`` (one request per candidate).

    Example:
        >>> shown = RenderedRequest(messages=[{"role": "user", "content": "q"}], masked_to_caller={"model-1": "a"})
        >>> endpoint_step_messages(shown, ForcedJsonReader(["model-1"]))[-1]["role"]
        'assistant'
    """
    return [*rendered.messages, {"role": "assistant", "content": reader.prefix}]


def verdict_from_distributions(
    rendered: RenderedRequest,
    distributions: Mapping[str, Sequence[float]],
    *,
    mode: str,
    reasoning: str = "",
    raw_text: str = "",
    usage: Usage | None = None,
    model: str | None = None,
    repairs: Sequence[str] = (),
) -> Verdict:
    """A verdict keyed by caller names, from P(1..5) per shown name.

    Scores are expected values; the ranking follows them, ties in the order shown.

    Example:
        >>> shown = RenderedRequest(messages=[], masked_to_caller={"model-1": "b", "model-2": "a"})
        >>> v = verdict_from_distributions(shown, {"model-1": [0, 0, 1, 0, 0], "model-2": [0, 0, 0, 0, 1]}, mode="fast")
        >>> v.ranking, v.scores
        (['a', 'b'], {'b': 3.0, 'a': 5.0})
    """
    mapping = rendered.masked_to_caller
    missing = [name for name in mapping if name not in distributions]
    if missing:
        raise ValueError(f"no distribution for {missing}")
    dists = {mapping[shown]: normalise(list(distributions[shown])) for shown in mapping}
    scores = {caller: expected_score(d) for caller, d in dists.items()}
    order = list(dists)
    ranking = sorted(order, key=lambda c: (-scores[c], order.index(c)))
    return Verdict(
        scores=scores,
        ranking=ranking,
        reasoning=reasoning,
        raw_text=raw_text,
        distributions=dists,
        repairs=list(repairs),
        usage=usage or Usage(),
        model=model,
        mode=mode,
    )


def permutation_orders(names: Sequence[str], count: int, *, seed: int = 0) -> list[list[str]]:
    """``count`` presentation orders that spread every name over the positions.

    The first order is ``names`` itself; then cyclic shifts (with ``count ==
    len(names)`` every name sits in every position exactly once); beyond that,
    shuffles from a private seeded generator.

    Example:
        >>> permutation_orders(["a", "b", "c"], 3)
        [['a', 'b', 'c'], ['b', 'c', 'a'], ['c', 'a', 'b']]
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    base = list(names)
    orders = [base[i:] + base[:i] for i in range(min(count, len(base)))]
    rng = random.Random(seed)
    while len(orders) < count:
        shuffled = list(base)
        rng.shuffle(shuffled)
        orders.append(shuffled)
    return orders


def average_verdicts(verdicts: Sequence[Verdict]) -> Verdict:
    """One verdict from several verdicts on the same candidates (e.g. in different orders).

    Scores (and distributions, where every verdict has them) are averaged; the
    ranking follows the mean score, ties broken by the mean ranking position.
    Usage adds up; reasoning and raw texts are kept, one block per verdict.

    Example:
        >>> a = Verdict(scores={"x": 5.0, "y": 3.0}, ranking=["x", "y"])
        >>> b = Verdict(scores={"x": 3.0, "y": 3.0}, ranking=["y", "x"])
        >>> average_verdicts([a, b]).scores
        {'x': 4.0, 'y': 3.0}
    """
    if not verdicts:
        raise ValueError("average_verdicts needs at least one verdict")
    if len(verdicts) == 1:
        return verdicts[0]
    names = list(verdicts[0].scores)
    count = len(verdicts)
    scores = {n: sum(v.scores[n] for v in verdicts) / count for n in names}
    mean_rank = {n: sum(v.rank_of(n) for v in verdicts) / count for n in names}
    ranking = sorted(names, key=lambda n: (-scores[n], mean_rank[n], names.index(n)))
    distributions: dict[str, list[float]] | None = None
    if all(v.distributions for v in verdicts):
        distributions = {
            n: [sum((v.distributions or {})[n][i] for v in verdicts) / count for i in range(len(DIGITS))] for n in names
        }
    repairs: list[str] = []
    for v in verdicts:
        repairs.extend(r for r in v.repairs if r not in repairs)

    def blocks(texts: list[str]) -> str:
        return "\n\n".join(f"[order {i + 1}] {t}" for i, t in enumerate(texts) if t)

    return Verdict(
        scores=scores,
        ranking=ranking,
        reasoning=blocks([v.reasoning for v in verdicts]),
        raw_text=blocks([v.raw_text for v in verdicts]),
        distributions=distributions,
        repairs=repairs,
        usage=sum((v.usage for v in verdicts), Usage()),
        model=verdicts[0].model,
        mode=verdicts[0].mode,
    )
