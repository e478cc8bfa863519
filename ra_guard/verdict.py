"""The judge's answer: a :class:`Verdict` for one listwise judge call.

Example:
    >>> v = Verdict(scores={"a": 4.0, "b": 2.0}, ranking=["a", "b"])
    >>> v.best
    'a'
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ra_guard.exceptions import JudgeOutputError
from ra_guard.types import Usage

__all__ = ["Verdict"]


class Verdict(BaseModel):
    """Scores and ranking of N candidates under one principle, keyed by caller names.

    Attributes:
        scores: Score per candidate name, 1.0 (poor) to 5.0 (perfect). Integers in
            ``reasoning`` mode; expected values in ``fast``/``hybrid`` modes.
        ranking: Every candidate name, best first (ties in ``scores`` broken here).
        reasoning: The judge's thinking, with masked names mapped back to caller names.
        raw_text: The judge's raw generation (empty where the mode has none).
        distributions: Per name, probabilities of the scores 1..5 (fast/hybrid modes).
        repairs: Each repair applied to damaged output, as ``"code: detail"``.
        usage: Tokens the judge call used.
        model: The judge model that answered.
        mode: ``reasoning``, ``fast`` or ``hybrid``.

    Raises:
        JudgeOutputError: A score is a bool (reason ``score_not_a_number``): pydantic
            would otherwise read ``True`` as 1.0.

    Example:
        >>> Verdict(scores={"x": 5.0}, ranking=["x"], mode="fast").mode
        'fast'
    """

    model_config = ConfigDict(frozen=True)

    scores: dict[str, float]
    ranking: list[str]
    reasoning: str = ""
    raw_text: str = ""
    distributions: dict[str, list[float]] | None = None
    repairs: list[str] = Field(default_factory=list)
    usage: Usage = Usage()
    model: str | None = None
    mode: str = "reasoning"

    @field_validator("scores", mode="before")
    @classmethod
    def _no_bool_scores(cls, scores: Any) -> Any:
        # pydantic would read True as 1.0: a judge that answers yes/no has not scored anything.
        # A JudgeOutputError (not a ValueError) passes through validation as it is, so the
        # engine handles it like the other impossible scores (the policy's on_judge_error).
        if isinstance(scores, dict):
            for name, score in scores.items():
                if isinstance(score, bool):
                    raise JudgeOutputError(
                        "score_not_a_number", f"{name} scored {score!r}: a bool is not a score from 1 to 5", raw_text=""
                    )
        return scores

    @property
    def best(self) -> str:
        """The name ranked first."""
        return self.ranking[0]

    @cached_property
    def ranks(self) -> dict[str, int]:
        """Name -> 0-based position in the ranking (built once per verdict).

        Example:
            >>> Verdict(scores={"a": 4.0, "b": 2.0}, ranking=["a", "b"]).ranks
            {'a': 0, 'b': 1}
        """
        return {name: position for position, name in enumerate(self.ranking)}

    def rank_of(self, name: str) -> int:
        """0-based position of ``name`` in the ranking (``ValueError`` if it is not ranked)."""
        try:
            return self.ranks[name]
        except KeyError:
            raise ValueError(f"{name!r} is not in the verdict's ranking") from None
