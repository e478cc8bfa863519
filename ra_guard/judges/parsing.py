"""Turn a RewardAnything generation into a :class:`~ra_guard.verdict.Verdict`.

The judge writes ``<think>`` reasoning ``</think>`` and then a JSON object such as
``{"scores": {"model-1": 2, "model-2": 4}, "best-to-worst": ["model-2", "model-1"]}``.
:func:`parse_verdict` finds it, maps the names the judge saw back to the caller's
names and checks it. Damaged output is either repaired by a rule below, each
repair noted in ``Verdict.repairs`` as ``"code: detail"``, or rejected with a
:class:`~ra_guard.exceptions.JudgeOutputError` whose ``reason`` is a
:class:`ReasonCode` and whose ``raw_text`` is the whole generation. An empty
verdict is never returned.

Accepted as written (as by the reference parser): JSON after ``</think>`` (or
after a lone ``</think>`` when the chat template opened the block), in a
```` ```json ```` fence, or amid prose. Repairs, by :class:`RepairCode`, follow one
rule, **scores first, the ranking breaks ties**:

- ``json_syntax``: single quotes, trailing commas and unquoted keys are fixed;
- ``unclosed_thinking``: a ``<think>`` never closed is searched for a JSON
  verdict (without one, the generation was cut off: ``truncated_thinking``);
- ``ranking_key``: the ranking is read from ``best-to-worse`` (the misspelling
  the reference accepts), ``best_to_worst`` or ``ranking``;
- ``name_normalized``: a name equal to a shown one up to case and outer spaces
  is taken as that name;
- ``unknown_name``: a name the judge was never shown is dropped (an error if no
  score is left);
- ``duplicate_name``: a name ranked twice, or scored twice with one score, keeps
  its first place (two different scores for one name are an error);
- ``score_string``: a numeric string (``"4"``) is read as a number (a
  non-numeric score is an error);
- ``score_clamped``: a score outside 1..5 is clamped into the range;
- ``ranking_missing`` / ``ranking_partial``: a ranking that is absent, not a list
  or partial is derived from / completed by the scores;
- ``ranking_reordered``: the final ranking is always the scores in descending
  order, equal scores in the judge's ranking order (then in the order shown);
  noted only when that changed the judge's order.

A candidate without a score is always an error: a score is never invented.

Example:
    >>> from ra_guard.judges.base import JudgeRequest
    >>> from ra_guard.judges.format import render_messages
    >>> request = JudgeRequest(principle="p", prompt="q", responses={"a": "x", "b": "y"}, mask=False)
    >>> verdict = parse_verdict('<think>b wins</think>{"scores": {"a": 2, "b": "4"}}', render_messages(request))
    >>> verdict.ranking, verdict.scores
    (['b', 'a'], {'a': 2.0, 'b': 4.0})
    >>> [repair.split(":")[0] for repair in verdict.repairs]
    ['score_string', 'ranking_missing']
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, NoReturn

from ra_guard.exceptions import JudgeOutputError
from ra_guard.judges.format import RenderedRequest
from ra_guard.types import Usage
from ra_guard.verdict import Verdict

__all__ = ["ReasonCode", "RepairCode", "parse_verdict", "split_thinking", "unmask_names"]

_OPEN, _CLOSE = "<think>", "</think>"
_THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_FENCE = re.compile(r"```[ \t]*(?:json)?", re.IGNORECASE)
_BARE_KEY = re.compile(r"\s*([A-Za-z0-9_-]+)(?=\s*:)")
_TRAILING_COMMA = re.compile(r",(?=\s*[}\]])")
_RANKING_KEYS = ("best-to-worst", "best-to-worse", "best_to_worst", "ranking")
_MAX_BRACES = 64  # the last this many "{" are tried one by one: the verdict comes last


class ReasonCode(str, Enum):
    """Why a generation could not become a verdict (``JudgeOutputError.reason``).

    Attributes:
        EMPTY_OUTPUT: The generation is empty or only whitespace.
        NO_JSON: No JSON value was found outside the thinking.
        TRUNCATED_THINKING: ``<think>`` was never closed and no JSON follows it:
            the generation was cut off (raise the token limit).
        NOT_AN_OBJECT: The JSON found is a list, string or number, not an object.
        NO_SCORES: The object has no ``scores`` object, or it is empty.
        UNKNOWN_NAME: ``scores`` names only responses the judge was never shown.
        DUPLICATE_NAME: A response was scored twice with two different scores.
        MISSING_CANDIDATE: A response shown to the judge has no score.
        BAD_SCORE: A score is not a finite number (``null``, ``"good"``, ``NaN``).

    Example:
        >>> ReasonCode.NO_JSON == "no_json"
        True
    """

    EMPTY_OUTPUT = "empty_output"
    NO_JSON = "no_json"
    TRUNCATED_THINKING = "truncated_thinking"
    NOT_AN_OBJECT = "not_an_object"
    NO_SCORES = "no_scores"
    UNKNOWN_NAME = "unknown_name"
    DUPLICATE_NAME = "duplicate_name"
    MISSING_CANDIDATE = "missing_candidate"
    BAD_SCORE = "bad_score"


class RepairCode(str, Enum):
    """The code that starts each ``"code: detail"`` entry of ``Verdict.repairs``.

    Each is described, with its rule, in this module's docstring.

    Example:
        >>> RepairCode("score_clamped") is RepairCode.SCORE_CLAMPED
        True
    """

    JSON_SYNTAX = "json_syntax"
    UNCLOSED_THINKING = "unclosed_thinking"
    RANKING_KEY = "ranking_key"
    NAME_NORMALIZED = "name_normalized"
    UNKNOWN_NAME = "unknown_name"
    DUPLICATE_NAME = "duplicate_name"
    SCORE_STRING = "score_string"
    SCORE_CLAMPED = "score_clamped"
    RANKING_MISSING = "ranking_missing"
    RANKING_PARTIAL = "ranking_partial"
    RANKING_REORDERED = "ranking_reordered"


def split_thinking(raw_text: str) -> tuple[str, str]:
    """Split a generation into its reasoning and the rest after ``</think>``.

    A ``</think>`` with no ``<think>`` before it closes a block the chat template
    opened; a ``<think>`` that is never closed runs to the end of the text.

    Example:
        >>> split_thinking("<think> A is terse. </think>\\n{}")
        ('A is terse.', '{}')
        >>> split_thinking("no thinking")
        ('', 'no thinking')
    """
    reasoning, rest, _ = _split(raw_text)
    return reasoning, rest


def _split(text: str) -> tuple[str, str, str | None]:
    """``(reasoning, rest, tail of an unclosed <think> or None)``."""
    parts: list[str] = []
    close, open_ = text.find(_CLOSE), text.find(_OPEN)
    if close != -1 and (open_ == -1 or close < open_):
        parts.append(text[:close])
        text = text[close + len(_CLOSE) :]
    parts.extend(_THINK_BLOCK.findall(text))
    text = _THINK_BLOCK.sub("", text)
    tail: str | None = None
    if (open_ := text.find(_OPEN)) != -1:
        text, tail = text[:open_], text[open_ + len(_OPEN) :]
        parts.append(tail)
    reasoning = "\n\n".join(part.strip() for part in parts if part.strip())
    return reasoning, text.strip(), tail


class _Object(dict[str, Any]):
    """A JSON object that keeps every key/value pair (``json`` keeps only the last)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.pairs = pairs
        for key, value in pairs:
            self.setdefault(key, value)


def _relax(text: str) -> str:
    """Rewrite near-JSON as JSON: single-quoted strings, unquoted keys, trailing commas."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "\"'":
            j, body = i + 1, []
            while j < n and text[j] != char:
                if text[j] == "\\" and j + 1 < n:
                    body.append("'" if char == "'" and text[j + 1] == "'" else text[j : j + 2])
                    j += 2
                    continue
                body.append('\\"' if text[j] == '"' else text[j])
                j += 1
            out.append('"' + "".join(body) + '"')
            i = j + 1
            continue
        if _TRAILING_COMMA.match(text, i):
            i += 1
            continue
        out.append(char)
        i += 1
        if char in "{," and (key := _BARE_KEY.match(text, i)):
            out.append(json.dumps(key.group(1)))
            i = key.end()
    return "".join(out)


def _decode(text: str, *, relaxed: bool, whole: bool) -> Any:
    """The JSON value ``text`` holds (``whole``) or starts with; ``ValueError`` if none."""
    source = _relax(text) if relaxed else text
    decoder = json.JSONDecoder(object_pairs_hook=_Object)
    try:
        return decoder.decode(source) if whole else decoder.raw_decode(source)[0]
    except RecursionError as error:  # absurdly deep nesting
        raise ValueError("too deeply nested") from error


def _has_scores(value: Any) -> bool:
    return isinstance(value, dict) and "scores" in value


def _extract(text: str, *, require_scores: bool = False) -> tuple[Any, bool] | None:
    """The JSON verdict in ``text`` and whether it needed relaxed syntax, or ``None``.

    Tries the whole text, then the value starting at each ``{``. Prefers an
    object with ``scores`` (the last one: a draft may precede the answer), then
    any object, then any other JSON value; ``require_scores`` takes only the first kind.
    """
    text = _FENCE.sub("", text).strip()
    braces = [i for i, char in enumerate(text) if char == "{"][-_MAX_BRACES:]
    end = text.rfind("}") + 1  # an object starting at a brace ends by the last one
    found: list[tuple[Any, bool]] = []
    for start in [None, *braces]:
        for relaxed in (False, True):
            try:
                value = _decode(text[start:end] if start is not None else text, relaxed=relaxed, whole=start is None)
            except ValueError:
                continue
            if start is None and _has_scores(value):
                return value, relaxed
            found.append((value, relaxed))
            break
    with_scores = [item for item in found if _has_scores(item[0])]
    if with_scores or require_scores:
        return with_scores[-1] if with_scores else None
    objects = [item for item in found if isinstance(item[0], dict)]
    return (objects or found)[0] if found else None


def _short(value: object) -> str:
    """``repr(value)``, cut to a length that fits in one repair note."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Parser:
    """Checks one parsed JSON object against the names shown to the judge."""

    def __init__(self, raw_text: str, rendered: RenderedRequest, judge: str) -> None:
        self.raw_text = raw_text
        self.judge = judge
        self.shown = rendered.masked_to_caller
        self.callers = list(self.shown.values())
        folded: dict[str, list[str]] = {}
        for name in self.shown:
            folded.setdefault(name.strip().casefold(), []).append(name)
        self.folded = {key: self.shown[names[0]] for key, names in folded.items() if len(names) == 1}
        self.repairs: list[str] = []

    def fail(self, code: ReasonCode, message: str) -> NoReturn:
        raise JudgeOutputError(code.value, message, raw_text=self.raw_text, judge=self.judge)

    def repair(self, code: RepairCode, detail: str) -> None:
        self.repairs.append(f"{code.value}: {detail}")

    def resolve(self, name: object, where: str) -> str | None:
        """The caller's name for a name the judge wrote, or ``None`` (dropped, noted)."""
        if isinstance(name, str):
            if name in self.shown:
                return self.shown[name]
            if (caller := self.folded.get(name.strip().casefold())) is not None:
                self.repair(RepairCode.NAME_NORMALIZED, f"{name!r} in {where} read as {caller!r}")
                return caller
        self.repair(RepairCode.UNKNOWN_NAME, f"dropped {_short(name)} from {where}: never shown to the judge")
        return None

    def score(self, caller: str, value: object) -> float:
        """``value`` as a score in 1..5 (numeric strings read, out-of-range clamped)."""
        number = math.nan
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value.strip())
                self.repair(RepairCode.SCORE_STRING, f"{caller!r}: {_short(value)} read as {number:g}")
        elif isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
            # clip ints first: a huge one would overflow float()
            number = value if isinstance(value, float) else float(max(-(10**9), min(10**9, value)))
        if not math.isfinite(number):
            self.fail(ReasonCode.BAD_SCORE, f"the score of {caller!r} is {_short(value)}, not a number from 1 to 5")
        clamped = min(5.0, max(1.0, number))
        if clamped != number:
            self.repair(RepairCode.SCORE_CLAMPED, f"{caller!r}: {_short(value)} clamped to {clamped:g}")
        return clamped

    def scores(self, verdict: dict[str, Any]) -> dict[str, float]:
        """Caller name -> score for every caller, or a :class:`JudgeOutputError`."""
        raw = verdict.get("scores")
        if not isinstance(raw, dict):
            what = "has no 'scores'" if raw is None else f"has 'scores' as {type(raw).__name__}"
            self.fail(ReasonCode.NO_SCORES, f"the JSON verdict {what}; expected an object of name -> 1..5")
        pairs = raw.pairs if isinstance(raw, _Object) else list(raw.items())
        scores: dict[str, float] = {}
        for name, value in pairs:
            if (caller := self.resolve(name, "scores")) is None:
                continue
            score = self.score(caller, value)
            if caller not in scores:
                scores[caller] = score
            elif scores[caller] != score:
                message = f"{caller!r} was scored twice, {scores[caller]:g} and {score:g}"
                self.fail(ReasonCode.DUPLICATE_NAME, message)
            else:
                self.repair(RepairCode.DUPLICATE_NAME, f"{caller!r} scored twice in scores; kept the first")
        if not scores:
            if pairs:
                shown = ", ".join(self.shown)
                self.fail(ReasonCode.UNKNOWN_NAME, f"no score names a response shown to the judge ({shown})")
            self.fail(ReasonCode.NO_SCORES, "'scores' is empty")
        if missing := [caller for caller in self.callers if caller not in scores]:
            self.fail(ReasonCode.MISSING_CANDIDATE, f"no score for {', '.join(map(repr, missing))}")
        return scores

    def ranking(self, verdict: dict[str, Any], scores: dict[str, float]) -> list[str]:
        """Every caller, best first: by score, ties broken by the judge's ranking."""
        key = next((key for key in _RANKING_KEYS if key in verdict), None)
        order: list[str] = []
        if key is None:
            self.repair(RepairCode.RANKING_MISSING, "no 'best-to-worst'; ranked by scores")
        elif not isinstance(verdict[key], list):
            self.repair(RepairCode.RANKING_MISSING, f"{key!r} is not a list; ranked by scores")
        else:
            if key != "best-to-worst":
                self.repair(RepairCode.RANKING_KEY, f"read the ranking from {key!r}")
            for name in verdict[key]:
                if (caller := self.resolve(name, key)) is None:
                    continue
                if caller in order:
                    self.repair(RepairCode.DUPLICATE_NAME, f"{caller!r} ranked twice; kept the first")
                else:
                    order.append(caller)
            missing = [caller for caller in self.callers if caller not in order]
            if not order:
                self.repair(RepairCode.RANKING_MISSING, f"{key!r} names no response shown; ranked by scores")
            elif missing:
                self.repair(RepairCode.RANKING_PARTIAL, f"{', '.join(map(repr, missing))} placed by score")
        place = {caller: i for i, caller in enumerate(order)}
        tie = {caller: place.get(caller, len(order) + i) for i, caller in enumerate(self.callers)}
        final = sorted(self.callers, key=lambda caller: (-scores[caller], tie[caller]))
        if [caller for caller in final if caller in place] != order:
            self.repair(RepairCode.RANKING_REORDERED, f"the judge ranked {order}; by score it is {final}")
        return final


def unmask_names(text: str, masked_to_caller: Mapping[str, str]) -> str:
    """Shown names -> caller names, as whole words (``model-1`` not in ``model-10``), in one pass.

    Case is ignored where shown names stay distinct without it (judges write ``Model-1``).

    Example:
        >>> unmask_names("Model-1 beats model-10.", {"model-1": "a", "model-10": "b"})
        'a beats b.'
    """
    changes = {shown: caller for shown, caller in masked_to_caller.items() if shown != caller}
    if not text or not changes:
        return text
    folded = {shown.casefold(): caller for shown, caller in masked_to_caller.items()}
    ignore_case = len(folded) == len(masked_to_caller)
    names = "|".join(re.escape(name) for name in sorted(changes, key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{names})(?!\w)", re.IGNORECASE if ignore_case else 0)

    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        caller = folded.get(word.casefold()) if ignore_case else changes.get(word)
        return word if caller is None else caller

    return pattern.sub(replace, text)


def parse_verdict(
    raw_text: str,
    rendered: RenderedRequest,
    *,
    model: str | None = None,
    usage: Usage | None = None,
    judge: str = "",
) -> Verdict:
    """Parse a RewardAnything generation into a verdict keyed by the caller's names.

    Args:
        raw_text: The judge's whole generation, thinking included.
        rendered: What the judge was shown (its ``masked_to_caller`` maps names back).
        model: The judge model that answered, recorded on the verdict.
        usage: Tokens the call used, recorded on the verdict.
        judge: A short description of the judge, used in error messages.

    Returns:
        A verdict with a 1..5 score and a ranking place for every caller name;
        ``repairs`` lists what was fixed (see the module docstring).

    Raises:
        JudgeOutputError: The output cannot be used; ``reason`` is a :class:`ReasonCode`.
        ValueError: ``rendered`` shows no names at all.

    Example:
        >>> from ra_guard.judges.format import RenderedRequest
        >>> shown = RenderedRequest(messages=[], masked_to_caller={"model-1": "b", "model-2": "a"})
        >>> parse_verdict("<think>model-2 is best</think>```json\\n"
        ...               '{"scores": {"model-1": 3, "model-2": 5}, "best-to-worst": ["model-2", "model-1"]}\\n```',
        ...               shown).reasoning
        'a is best'
    """
    if not rendered.masked_to_caller:
        raise ValueError("rendered.masked_to_caller is empty: render a request with at least one response")
    parser = _Parser(raw_text, rendered, judge)
    if not raw_text.strip():
        parser.fail(ReasonCode.EMPTY_OUTPUT, "the judge returned no text")
    reasoning, rest, tail = _split(raw_text)
    found = _extract(rest)
    if found is None and tail is not None:
        if (found := _extract(tail, require_scores=True)) is None:
            message = "'<think>' was never closed and no JSON verdict follows: the generation was cut off"
            parser.fail(ReasonCode.TRUNCATED_THINKING, message + " (raise the judge's max_tokens)")
        parser.repair(RepairCode.UNCLOSED_THINKING, "'<think>' never closed; read the JSON inside it")
    if found is None:
        parser.fail(ReasonCode.NO_JSON, "no JSON verdict found after the thinking")
    value, relaxed = found
    if relaxed:
        parser.repair(RepairCode.JSON_SYNTAX, "fixed single quotes, trailing commas or unquoted keys")
    if not isinstance(value, dict):
        parser.fail(ReasonCode.NOT_AN_OBJECT, f"the JSON verdict is a {type(value).__name__}, not an object")
    scores = parser.scores(value)
    ranking = parser.ranking(value, scores)
    return Verdict(
        scores=scores,
        ranking=ranking,
        reasoning=unmask_names(reasoning, rendered.masked_to_caller),
        raw_text=raw_text,
        repairs=parser.repairs,
        usage=usage if usage is not None else Usage(),
        model=model,
        mode="reasoning",
    )
