"""Fitting a judge input into the model's context without ever cutting the prompt's end.

The reference package tokenizes with ``truncation=True, max_length=4096``,
which cuts from the right: the chat template's generation prompt goes first,
and the model continues the *user* message instead of answering. Here the
rendered input is measured whole, and when it is too long one of two
documented strategies applies:

- ``"shorten"``: cut the longest candidates, level by level (water-filling),
  each cut one ending with :data:`TRUNCATION_MARK`, until the input fits;
  each cut is reported as ``input_truncated: <name> <before>-><after> tokens``.
- ``"raise"``: raise :class:`~ra_guard.exceptions.JudgeInputTooLongError`
  naming the sizes.

Example:
    >>> count = lambda responses: 10 + sum(len(t) for t in responses.values())
    >>> fitted, notes = fit_responses({"a": "x" * 50, "b": "y" * 5}, limit=40, count=count,
    ...                               tokenize=list, detokenize="".join, mark_tokens=len(TRUNCATION_MARK))
    >>> {name: len(text) for name, text in fitted.items()}, notes
    ({'a': 25, 'b': 5}, ['input_truncated: a 50->13 tokens'])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from ra_guard.exceptions import JudgeInputTooLongError

__all__ = ["TRUNCATION_MARK", "fit_responses", "too_long_error"]

#: Appended to a candidate that was shortened to fit the judge's context.
TRUNCATION_MARK = "…[truncated]"

_ROUNDS = 6


def too_long_error(
    input_tokens: int, limit: int, *, reserved: int, sizes: Mapping[str, int], judge: str = ""
) -> JudgeInputTooLongError:
    """The error for an input that does not fit, with every size that matters.

    Example:
        >>> str(too_long_error(5000, 3000, reserved=1024, sizes={"a": 4000, "b": 200}))[:60]
        'the rendered judge input is 5000 tokens but at most 3000 fit'
    """
    biggest = ", ".join(f"{name}: {size}" for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:3])
    return JudgeInputTooLongError(
        f"the rendered judge input is {input_tokens} tokens but at most {limit} fit "
        f"(context minus {reserved} tokens reserved for the judge's output); largest candidates in tokens: "
        f"{biggest}. Shorten the candidates, lower max_new_tokens, raise context_length if the model allows, "
        "or pass on_too_long='shorten'",
        input_tokens=input_tokens,
        max_input_tokens=limit,
        judge=judge,
    )


def fit_responses(
    responses: Mapping[str, str],
    *,
    limit: int,
    count: Callable[[Mapping[str, str]], int],
    tokenize: Callable[[str], Sequence[int]],
    detokenize: Callable[[Sequence[int]], str],
    mark_tokens: int,
    judge: str = "",
    reserved: int = 0,
) -> tuple[dict[str, str], list[str]]:
    """Shorten the longest responses until ``count(responses) <= limit``.

    Args:
        responses: Name -> text (names as the caller knows them).
        limit: Tokens the whole rendered input may take.
        count: Tokens of the whole rendered input for a given set of responses.
        tokenize: Text -> token ids.
        detokenize: Token ids -> text.
        mark_tokens: Tokens of :data:`TRUNCATION_MARK`.
        judge: For error messages.
        reserved: Tokens kept for the output (for error messages).

    Returns:
        The responses (shortened ones end with :data:`TRUNCATION_MARK`) and one
        note per shortened response.

    Raises:
        JudgeInputTooLongError: Even empty responses would not fit (the
            principle or the prompt alone is too long).
    """
    original_total = count(responses)
    if original_total <= limit:
        return dict(responses), []
    tokens = {name: list(tokenize(text)) for name, text in responses.items()}
    sizes = {name: len(ids) for name, ids in tokens.items()}
    # A text costs more tokens inside the rendered input than alone (JSON escapes every
    # newline and quote): measure that inflation, so that cuts are sized in the text's own tokens.
    inside = original_total - count(dict.fromkeys(responses, ""))
    inflation = max(1.0, inside / max(1, sum(sizes.values())))
    excess = math.ceil((original_total - limit) / inflation)
    fitted = dict(responses)
    for _ in range(_ROUNDS):
        cap = _water_level(sizes, excess, mark_tokens)
        if cap is None:
            break
        fitted = {
            name: (detokenize(tokens[name][:cap]) + TRUNCATION_MARK if sizes[name] > cap else text)
            for name, text in responses.items()
        }
        total = count(fitted)
        if total <= limit:
            notes = [f"input_truncated: {name} {sizes[name]}->{cap} tokens" for name in responses if sizes[name] > cap]
            return fitted, notes
        # Re-tokenizing the cut texts inside JSON differs slightly: cut deeper.
        excess += math.ceil((total - limit) / inflation)
    raise too_long_error(original_total, limit, reserved=reserved, sizes=sizes, judge=judge)


def _water_level(sizes: Mapping[str, int], excess: int, mark_tokens: int) -> int | None:
    """The largest cap such that cutting every response above it saves ``excess`` tokens.

    Each cut response costs ``mark_tokens`` for its mark. ``None`` when even
    cutting everything to nothing does not save enough.
    """

    def saved(cap: int) -> int:
        return sum(size - cap - mark_tokens for size in sizes.values() if size > cap)

    if not sizes or saved(0) < excess:
        return None
    low, high = 0, max(sizes.values())
    while low < high:
        middle = (low + high + 1) // 2
        if saved(middle) >= excess:
            low = middle
        else:
            high = middle - 1
    return low
