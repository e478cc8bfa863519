"""Tokenizing a chat so that message text never becomes a control token.

Candidates, prompts and principles are untrusted input: :class:`TokenEncoder`
keeps them apart from the chat template's own control tokens. Used by the local
judge (:mod:`ra_guard.local._prepared`) and the transformers sampler.

Example:
    >>> TokenEncoder  # doctest: +ELLIPSIS
    <class 'ra_guard.local._tokens.TokenEncoder'>
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ra_guard.exceptions import LocalModelError

__all__ = ["TokenEncoder"]


class TokenEncoder:
    """Tokenizes chat-template scaffolding and untrusted text apart, so text never becomes a control token.

    A tokenizer maps the text ``<|im_start|>`` to the control token of that name
    wherever it occurs. Tokenizing a rendered chat template as one string would
    therefore let a candidate (or prompt, or principle) that contains
    ``<|im_end|>\\n<|im_start|>system ...`` open a turn of its own in the model's
    input. Here only the template's own text is tokenized with control tokens
    (:meth:`trusted`); message contents go through :meth:`untrusted` or
    :meth:`parts`, which spell every control-token string out as ordinary text
    and then check that no control id came from them.

    Control tokens are the tokenizer's added tokens (special or not, e.g. Qwen3's
    ``<think>``), except those that are only whitespace.

    Args:
        tokenizer: A transformers tokenizer.
        model_name: For error messages.

    Example:
        >>> encoder = TokenEncoder(tokenizer)  # doctest: +SKIP
        >>> encoder.untrusted("<|im_start|>") == encoder.trusted("<|im_start|>")  # doctest: +SKIP
        False
    """

    def __init__(self, tokenizer: Any, *, model_name: str = "") -> None:
        self.tokenizer = tokenizer
        self.model_name = model_name
        decoder: dict[int, Any] = dict(getattr(tokenizer, "added_tokens_decoder", {}) or {})
        controls = {int(i): str(getattr(t, "content", t)) for i, t in decoder.items()}
        controls = {i: text for i, text in controls.items() if text.strip()}
        self.control_ids: frozenset[int] = frozenset(controls)
        # Longest first: where one control string contains another, the longer one is spelled out.
        texts = sorted(set(controls.values()), key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(t) for t in texts)) if texts else None

    def trusted(self, text: str) -> list[int]:
        """Token ids of our own text (template scaffolding): control-token strings become control tokens."""
        if not text:
            return []
        # verbose=False: measuring an over-long input is expected here, not worth a log warning.
        ids: list[int] = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return ids

    def untrusted(self, text: str) -> list[int]:
        """Token ids of untrusted text, with no control token whatever the text says.

        Raises:
            LocalModelError: The tokenizer still produced a control id.
        """
        return self.parts([(text, False)])

    def parts(self, parts: Sequence[tuple[str, bool]]) -> list[int]:
        """Token ids of ``(text, trusted)`` parts, read as one text where nothing is at stake.

        The parts are tokenized as one string (so benign input gets exactly the
        ids of the whole rendered template), cut only where an untrusted part
        holds a control-token string: that string is split after its first
        character, which the tokenizer cannot read as the control token. The
        text is unchanged when decoded. Afterwards the control ids are counted:
        exactly as many as the trusted parts spell.

        Raises:
            LocalModelError: A control id came from untrusted text (a tokenizer
                this method does not know how to handle).
        """
        ids: list[int] = []
        pending = ""
        expected = 0
        for text, trusted in parts:
            if trusted or self._pattern is None:
                pending += text
                expected += len(self._pattern.findall(text)) if trusted and self._pattern is not None else 0
                continue
            start = 0
            for match in self._pattern.finditer(text):
                ids += self.trusted(pending + text[start : match.start()] + match.group()[0])
                pending, start = match.group()[1:], match.end()
            pending += text[start:]
        ids += self.trusted(pending)
        found = sum(1 for token in ids if token in self.control_ids)
        if found != expected:
            raise LocalModelError(
                self.model_name,
                f"cannot tokenize untrusted text without control tokens ({found} found, {expected} expected); "
                "this tokenizer is not supported for untrusted input",
            )
        return ids

    def chat(self, messages: Sequence[Mapping[str, Any]], **template_kwargs: Any) -> list[int]:
        """Token ids of ``messages`` through the chat template, contents tokenized as untrusted text.

        Each string content is replaced by a placeholder while the template is
        rendered; the scaffolding around the placeholders is tokenized with
        control tokens, each content without. A content that is not a string
        (``None``, a list of parts) is left for the template to render.

        Raises:
            LocalModelError: The template does not render each content exactly
                once (it would be unsafe to guess where the content went).
        """
        placeholders: dict[str, str] = {}
        rendered: list[dict[str, Any]] = []
        for i, message in enumerate(messages):
            copy = dict(message)
            content = copy.get("content")
            if isinstance(content, str):
                placeholder = f"\x00ra-guard-content-{i}\x00"
                placeholders[placeholder] = content
                copy["content"] = placeholder
            rendered.append(copy)
        text: str = self.tokenizer.apply_chat_template(rendered, tokenize=False, **template_kwargs)
        parts: list[tuple[str, bool]] = []
        start = 0
        for placeholder, content in placeholders.items():
            at = text.find(placeholder, start)
            if at < 0 or text.count(placeholder) != 1:
                raise LocalModelError(
                    self.model_name,
                    "the chat template does not render each message content exactly once; "
                    "ra-guard cannot keep message text apart from control tokens with it",
                )
            parts += [(text[start:at], True), (content, False)]
            start = at + len(placeholder)
        return self.parts([*parts, (text[start:], True)])
