"""Preference pairs from decisions: chosen/rejected per principle, as TRL's DPO trainer reads them.

Every judged decision ranks its candidates once per policy. For each policy,
:func:`decision_pairs` (a :class:`~ra_guard.decision.Decision` and its prompt)
and :func:`audit_log_pairs` (an audit log written with ``include_text=True``)
turn that ranking into rows for preference training:

- by default one row per decision and policy: the best-scored candidate
  (``chosen``; never one the policy vetoes) against the worst (``rejected``),
  where their scores differ by at least ``min_margin`` points on the 1–5 scale;
  ``all_pairs=True`` gives every such pair instead;
- a candidate the policy could not judge (a judge error) is left out, and so
  is a candidate that repeats another's text.

Rows use TRL's preference columns, ``prompt``, ``chosen`` and ``rejected``: in
the *standard* format (strings) when the prompt is a string (the audit log
holds the judge's prompt, a string), in the *conversational* format when it is
a list of chat messages (``chosen``/``rejected`` are then one assistant
message each). The scores stay in extra columns: ``policy``,
``score_chosen``, ``score_rejected``, ``margin``, ``decision_id``,
``chosen_index``, ``rejected_index``, ``rejected_vetoed``. One JSON object per
line (:func:`write_pairs`) loads with ``datasets.load_dataset("json", data_files=...)``.

Command line::

    python -m ra_guard pairs decisions.jsonl -o pairs.jsonl [--policy NAME] [--min-margin 1] [--all-pairs]

Example:
    >>> from ra_guard import Guard
    >>> from ra_guard.testing import FunctionJudge
    >>> judge = FunctionJudge(lambda r: {k: 6 - len(t) for k, t in r.responses.items()})
    >>> decision = Guard(policies=["concise"], judge=judge).rerank("Say hi", ["hi", "hello", "hiya"])
    >>> rows = decision_pairs(decision, "Say hi")
    >>> [(p["chosen"], p["rejected"], p["score_chosen"], p["score_rejected"]) for p in rows]
    [('hi', 'hello', 4.0, 1.0)]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ra_guard.audit import decisions_with_text
from ra_guard.exceptions import ConfigurationError, InputError

if TYPE_CHECKING:
    from ra_guard.decision import Decision
    from ra_guard.types import Messages

__all__ = ["audit_log_pairs", "decision_pairs", "write_pairs"]


@dataclass(frozen=True)
class _Scored:
    index: int
    text: str
    score: float
    vetoed: bool


def _checked_margin(min_margin: float) -> float:
    if not min_margin >= 0:
        raise ConfigurationError(f"min_margin must be a number >= 0, got {min_margin!r}")
    return float(min_margin)


def _prefers(chosen: _Scored, rejected: _Scored, min_margin: float) -> bool:
    """A tie is no preference, whatever the margin asked."""
    return chosen.score > rejected.score and chosen.score - rejected.score >= min_margin


def _pairs(ranked: Sequence[_Scored], *, all_pairs: bool, min_margin: float) -> Iterator[tuple[_Scored, _Scored]]:
    """(chosen, rejected) for one policy's scores, best first; chosen never vetoed."""
    best_first = sorted(ranked, key=lambda c: (-c.score, c.index))
    if not all_pairs:
        chosen = next((c for c in best_first if not c.vetoed), None)
        worst = best_first[-1] if best_first else None
        if chosen is not None and worst is not None and _prefers(chosen, worst, min_margin):
            yield chosen, worst
        return
    for i, chosen in enumerate(best_first):
        if chosen.vetoed:
            continue
        for rejected in best_first[i + 1 :]:
            if _prefers(chosen, rejected, min_margin):
                yield chosen, rejected


def _rows(
    prompt: str | list[Any],
    decision_id: str,
    per_policy: Mapping[str, list[_Scored]],
    *,
    policies: Sequence[str] | None,
    all_pairs: bool,
    min_margin: float,
) -> Iterator[dict[str, Any]]:
    conversational = isinstance(prompt, list)
    for policy, ranked in per_policy.items():
        if policies is not None and policy not in policies:
            continue
        for chosen, rejected in _pairs(ranked, all_pairs=all_pairs, min_margin=min_margin):
            yield {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": chosen.text}] if conversational else chosen.text,
                "rejected": [{"role": "assistant", "content": rejected.text}] if conversational else rejected.text,
                "policy": policy,
                "score_chosen": chosen.score,
                "score_rejected": rejected.score,
                "margin": chosen.score - rejected.score,
                "decision_id": decision_id,
                "chosen_index": chosen.index,
                "rejected_index": rejected.index,
                "rejected_vetoed": rejected.vetoed,
            }


def decision_pairs(
    decision: Decision,
    prompt: str | Messages,
    *,
    policies: Sequence[str] | None = None,
    min_margin: float = 1.0,
    all_pairs: bool = False,
) -> list[dict[str, Any]]:
    """Preference rows from one decision, per policy (see the module docstring for the columns).

    Args:
        decision: A judged decision (``err.decision`` of a rejected one too).
        prompt: What the candidates answer: a string (standard format rows) or
            the chat messages (conversational rows).
        policies: Only these policies' pairs (default: every policy of the decision).
        min_margin: Least score difference between chosen and rejected.
        all_pairs: Every pair that differs enough, not only best against worst.

    Raises:
        InputError: ``prompt`` is neither a string nor a list of messages.

    Example:
        >>> from ra_guard import Candidate, Decision, PolicyScore
        >>> d = Decision(chosen_index=0, candidates=[
        ...     Candidate(index=0, text="Paris.", scores={"brief": PolicyScore(score=5)}),
        ...     Candidate(index=1, text="It is Paris, I think.", scores={"brief": PolicyScore(score=2)})])
        >>> row = decision_pairs(d, [{"role": "user", "content": "Capital of France?"}])[0]
        >>> row["chosen"], row["margin"]
        ([{'role': 'assistant', 'content': 'Paris.'}], 3.0)
    """
    if isinstance(prompt, str):
        shown: str | list[Any] = prompt
    elif isinstance(prompt, Sequence) and all(isinstance(m, Mapping) for m in prompt):
        shown = [dict(m) for m in prompt]  # type: ignore[arg-type]  # each checked to be a Mapping
    else:
        raise InputError("prompt", "must be a string or a list of chat messages like [{'role': 'user', ...}]")
    per_policy: dict[str, list[_Scored]] = {name: [] for name in decision.policies}
    seen: set[str] = set()
    for candidate in decision.candidates:
        if candidate.text in seen:
            continue
        seen.add(candidate.text)
        for name, score in candidate.scores.items():
            if score.score is not None and score.error is None:
                per_policy.setdefault(name, []).append(
                    _Scored(candidate.index, candidate.text, score.score, score.vetoed)
                )
    return list(
        _rows(
            shown,
            decision.decision_id,
            per_policy,
            policies=policies,
            all_pairs=all_pairs,
            min_margin=_checked_margin(min_margin),
        )
    )


def audit_log_pairs(
    path: str | os.PathLike[str],
    *,
    policies: Sequence[str] | None = None,
    min_margin: float = 1.0,
    all_pairs: bool = False,
) -> Iterator[dict[str, Any]]:
    """Preference rows (standard format) from every decision of an audit log written with ``include_text=True``.

    Args:
        path: The audit log (rotated files are read too, oldest first).
        policies: Only these policies' pairs (default: all).
        min_margin: Least score difference between chosen and rejected.
        all_pairs: Every pair that differs enough, not only best against worst.

    Raises:
        AuditTextMissingError: The log holds no texts; names the file and ``include_text=True``.

    Example:
        >>> # rows = list(audit_log_pairs("decisions.jsonl", min_margin=1.5))
    """
    margin = _checked_margin(min_margin)
    for record in decisions_with_text(path):
        per_policy: dict[str, list[_Scored]] = {str(p["name"]): [] for p in record.get("policies") or []}
        seen: set[str] = set()
        for position, candidate in enumerate(record["candidates"]):
            text = candidate["text"]
            if text in seen:
                continue
            seen.add(text)
            for name, score in (candidate.get("scores") or {}).items():
                value = score.get("score")
                if isinstance(value, (int, float)) and not score.get("error"):
                    index = int(candidate.get("index", position))
                    per_policy.setdefault(name, []).append(
                        _Scored(index, text, float(value), bool(score.get("vetoed")))
                    )
        yield from _rows(
            record["prompt"],
            str(record.get("decision_id", "?")),
            per_policy,
            policies=policies,
            all_pairs=all_pairs,
            min_margin=margin,
        )


def write_pairs(pairs: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write rows as JSON Lines (UTF-8, one object per line); returns how many were written.

    The rows go to ``<path>.partial`` first, renamed to ``path`` once all are
    written: a source that fails half-way (a record without texts) leaves no
    half-written file behind.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "pairs.jsonl"
        >>> write_pairs([{"prompt": "q", "chosen": "a", "rejected": "b"}], out)
        1
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    count = 0
    try:
        with partial.open("w", encoding="utf-8") as handle:
            for row in pairs:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return count
