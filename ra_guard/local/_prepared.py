"""Judge inputs for a local model: render, apply the chat template, tokenize, fit the context.

:class:`JudgeInputs` turns a :class:`~ra_guard.judges.base.JudgeRequest` into the
token ids the model reads: the RewardAnything messages
(:func:`~ra_guard.judges.format.render_messages`) through the tokenizer's own chat
template with the generation prompt, plus, in ``fast`` mode, the forced JSON
skeleton. The template's own text is tokenized with control tokens, the
request's text (principle, prompt, candidates, the caller's names) never is
(:class:`~ra_guard.local._tokens.TokenEncoder`). An input that does not fit the context is shortened or refused (see
:mod:`ra_guard.local._truncation`); the end of the input is never cut.

Example:
    >>> inputs = JudgeInputs(tokenizer, mode="fast", context_length=8192, max_new_tokens=1,
    ...                      thinking_budget=1, on_too_long="shorten", judge="local")  # doctest: +SKIP
    >>> inputs.prepare(request).ids[-3:]  # ... '"model-1": '  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ra_guard.exceptions import LocalModelError
from ra_guard.judges.base import JudgeRequest
from ra_guard.judges.format import RenderedRequest, render_messages
from ra_guard.judges.scoring import EMPTY_THINKING, ForcedJsonReader
from ra_guard.local._tokens import TokenEncoder
from ra_guard.local._truncation import TRUNCATION_MARK, fit_responses, too_long_error
from ra_guard.types import ChatMessage

__all__ = ["JudgeInputs", "PreparedInput"]

_SENTINEL = "\x00ra-guard-user\x00"
_STEP_CACHE_SIZE = 4096


@dataclasses.dataclass
class PreparedInput:
    """One request ready for the model: its rendering, token ids and notes on shortened candidates.

    ``request`` is the request as given (before any shortening), kept so that
    a fallback can prepare it again for another mode.
    """

    rendered: RenderedRequest
    ids: list[int]
    notes: list[str]
    request: JudgeRequest


class JudgeInputs:
    """Builds model inputs for one tokenizer, mode and context length.

    Args:
        tokenizer: A transformers tokenizer with a chat template.
        mode: ``"reasoning"``, ``"fast"`` or ``"hybrid"`` (what follows the input).
        context_length: Tokens the model attends to (input plus output).
        max_new_tokens: Output budget in ``reasoning`` mode.
        thinking_budget: Thinking budget in ``hybrid`` mode.
        on_too_long: ``"shorten"`` or ``"raise"``.
        judge: The judge's name, for error messages.
        model_name: The model path or id, for error messages.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        mode: str,
        context_length: int,
        max_new_tokens: int,
        thinking_budget: int,
        on_too_long: str,
        judge: str,
        model_name: str = "",
    ) -> None:
        self.tokenizer = tokenizer
        self.mode = mode
        self.context_length = context_length
        self.max_new_tokens = max_new_tokens
        self.thinking_budget = thinking_budget
        self.on_too_long = on_too_long
        self.judge = judge
        self.model_name = model_name or judge
        self.encoder = TokenEncoder(tokenizer, model_name=self.model_name)
        self._step_cache: dict[str, list[int]] = {}
        self._scaffold_cache: dict[str, tuple[list[int], str]] = {}
        self._mark_tokens = len(self.encode(TRUNCATION_MARK))

    def encode(self, text: str) -> list[int]:
        """Token ids of our own text (control-token strings become control tokens), no special tokens added."""
        return self.encoder.trusted(text)

    def encode_untrusted(self, text: str) -> list[int]:
        """Token ids of the caller's text: never a control token, whatever it says."""
        return self.encoder.untrusted(text)

    def single_token_ids(self, texts: Sequence[str]) -> list[int]:
        """The one token id of each text; refuses a tokenizer that splits one of them."""
        ids = []
        for text in texts:
            encoded = self.encode(text)
            if len(encoded) != 1:
                raise LocalModelError(
                    self.model_name,
                    f"{text!r} is not a single token for this tokenizer ({encoded}); mode={self.mode!r} "
                    "needs the digits 1-5 (and </think> for hybrid) as single tokens, as in Qwen3; "
                    "use mode='reasoning'",
                )
            ids.append(encoded[0])
        return ids

    def template(self, rendered: RenderedRequest) -> str:
        """The chat template applied to the messages, generation prompt included."""
        text: str = self.tokenizer.apply_chat_template(rendered.messages, tokenize=False, add_generation_prompt=True)
        return text

    def prefix_ids(self) -> list[int] | None:
        """Token ids of everything before the user message's content (the system prompt), shared by every input."""
        probe = render_messages(JudgeRequest(principle="p", prompt="q", responses={"a": "x"}))
        return self._scaffold(probe.messages[0])[0] or None

    def step_ids(self, text: str) -> list[int]:
        """Token ids of a forced step (``4, "model-2": ``), memoised (bounded: names may be the caller's)."""
        ids = self._step_cache.get(text)
        if ids is None:
            ids = self.encode_untrusted(text)  # unmasked names are the caller's text
            if len(self._step_cache) < _STEP_CACHE_SIZE:
                self._step_cache[text] = ids
        return ids

    def suffix(self, rendered: RenderedRequest) -> str:
        """Text forced after the generation prompt (the JSON skeleton in fast mode)."""
        if self.mode == "fast":
            return ForcedJsonReader(rendered.shown_names).prefix
        return ""

    def reserved(self, rendered: RenderedRequest) -> int:
        """Tokens the output needs beyond the input."""
        if self.mode == "reasoning":
            return self.max_new_tokens
        keys = (f"5, {json.dumps(name, ensure_ascii=False)}: " for name in rendered.shown_names)
        steps = sum(len(self.step_ids(key)) for key in keys) + 1
        if self.mode == "hybrid":
            return self.thinking_budget + len(self.encode('\n</think>\n\n{"scores": {')) + steps
        return steps

    def _scaffold(self, system: ChatMessage) -> tuple[list[int], str]:
        """Token ids of the template before the user message's content, and its text after it."""
        key = str(system.get("content"))
        cached = self._scaffold_cache.get(key)
        if cached is None:
            user: ChatMessage = {"role": "user", "content": _SENTINEL}
            text = self.template(RenderedRequest(messages=[system, user], masked_to_caller={}))
            if text.count(_SENTINEL) != 1:
                raise LocalModelError(
                    self.model_name,
                    "the chat template does not render the user message exactly once; "
                    "ra-guard cannot keep the request's text apart from control tokens with it",
                )
            before, after = text.split(_SENTINEL)
            cached = (self.encode(before), after)
            if len(self._scaffold_cache) < 8:  # one system prompt in practice
                self._scaffold_cache[key] = cached
        return cached

    def _ids(self, rendered: RenderedRequest) -> list[int]:
        """Template scaffolding with control tokens; the user content and the caller's names without."""
        system, user = rendered.messages
        before, after = self._scaffold(system)
        suffix = self.suffix(rendered)
        forced = EMPTY_THINKING if suffix.startswith(EMPTY_THINKING) else ""
        parts = [(str(user["content"]), False), (after + forced, True), (suffix[len(forced) :], False)]
        return [*before, *self.encoder.parts(parts)]

    def prepare(self, request: JudgeRequest) -> PreparedInput:
        """Render, template and tokenize a request; fit it into the context or raise.

        Raises:
            JudgeInputTooLongError: It does not fit and ``on_too_long="raise"``, or
                even empty candidates would not fit.
        """
        rendered = render_messages(request)
        ids = self._ids(rendered)
        limit = self.context_length - self.reserved(rendered)
        if len(ids) <= limit:
            return PreparedInput(rendered=rendered, ids=ids, notes=[], request=request)
        reserved = self.context_length - limit
        if self.on_too_long == "raise":
            sizes = {name: len(self.encode_untrusted(text)) for name, text in request.responses.items()}
            raise too_long_error(len(ids), limit, reserved=reserved, sizes=sizes, judge=self.judge)

        def count(responses: Mapping[str, str]) -> int:
            return len(self._ids(render_messages(dataclasses.replace(request, responses=dict(responses)))))

        responses, notes = fit_responses(
            request.responses,
            limit=limit,
            count=count,
            tokenize=self.encode_untrusted,
            detokenize=lambda tokens: str(self.tokenizer.decode(list(tokens), skip_special_tokens=False)),
            mark_tokens=self._mark_tokens,
            judge=self.judge,
            reserved=reserved,
        )
        rendered = render_messages(dataclasses.replace(request, responses=responses))
        return PreparedInput(rendered=rendered, ids=self._ids(rendered), notes=notes, request=request)
