"""Secret scrubbing, content capture and length capping for everything ra-guard writes down.

Traces, the audit log and Phoenix annotations pass every free-form string
through :func:`redact_secrets` before it leaves the process: API keys,
``Authorization`` headers, bearer tokens and ``api_key=...`` pairs in URLs or
exception messages are replaced by ``[REDACTED]``. Content capture adds the
user's own redaction hook on top, then :func:`truncate` caps the length.

Example:
    >>> redact_secrets("401 from http://gpu/v1?api_key=abc123xyz (Authorization: Bearer sk-live-1234567890abcdef)")
    '401 from http://gpu/v1?api_key=[REDACTED] (Authorization: [REDACTED])'
    >>> truncate("abcdefgh", 4)
    'abcd…[truncated 4 chars]'
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ra_guard.types import ChatMessage

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "REDACTED",
    "ContentFilter",
    "Redactor",
    "capture_content_from_env",
    "messages_json",
    "redact_name",
    "redact_secrets",
    "truncate",
]

#: The standard switch for GenAI content capture, read when ``capture_content`` is not given.
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CONTENT_ON = {"true", "1", "yes", "on", "span_only", "span_and_event"}

#: What a secret is replaced with.
REDACTED = "[REDACTED]"

#: A function that takes text and returns it with sensitive parts removed.
Redactor = Callable[[str], str]

_KEY_NAMES = r"(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|secret|password|passwd|client[_-]?secret|token)"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Header lines and dict reprs: "Authorization: Bearer x", "'authorization': 'Basic x'", "x-api-key: x".
    (
        re.compile(
            r"""(?i)(["']?(?:proxy-)?authorization["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token|digest)\s+)?[^\s"',;})]+"""
        ),
        r"\1" + REDACTED,
    ),
    (
        re.compile(
            r"""(?i)(["']?(?:x-api-key|api-key|x-goog-api-key|openai-api-key)["']?\s*[:=]\s*["']?)[^\s"',;}&)]+"""
        ),
        r"\1" + REDACTED,
    ),
    # key=value and "key": "value" pairs, in URLs, reprs and JSON.
    (
        re.compile(rf"""(?i)(\b{_KEY_NAMES}["']?\s*[:=]\s*["']?)(?!\[REDACTED\])[^\s"',;}}&)]+"""),
        r"\1" + REDACTED,
    ),
    # Bare bearer tokens.
    (re.compile(r"(?i)\bbearer\s+(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{8,}"), "Bearer " + REDACTED),
    # Well-known key shapes, wherever they appear.
    (re.compile(r"\b(?:sk|pk|rk)-(?:[A-Za-z0-9_-]{2,32}-)*[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"\b(?:ghp|gho|ghs|ghu|github_pat|glpat|xox[abposr]|hf)_[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), REDACTED),
    # Credentials in URLs: scheme://user:password@host
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@"), r"\1" + REDACTED + "@"),
)


def redact_secrets(text: str) -> str:
    """Replace API keys, auth headers and tokens in ``text`` by ``[REDACTED]``.

    This is the default redactor of traces, the audit log and annotations. It
    is pattern based: it catches the shapes keys travel in (headers, URL
    parameters, ``api_key=`` in reprs, ``sk-...`` style keys, JWTs), not
    arbitrary personal data; add your own :data:`Redactor` for that.

    Args:
        text: Any text: a message, an exception message, a URL.

    Returns:
        The text with every match replaced.

    Example:
        >>> redact_secrets("key sk-proj-abcdefghijklmnop1234 and {'x-api-key': 'k1234567'}")
        "key [REDACTED] and {'x-api-key': '[REDACTED]'}"
    """
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@lru_cache(maxsize=512)
def redact_name(name: str) -> str:
    """:func:`redact_secrets` with a cache, for the few names that recur (judge, sampler, guard).

    Example:
        >>> redact_name("openai-compat:http://gpu:8000/v1?api_key=abc12345")
        'openai-compat:http://gpu:8000/v1?api_key=[REDACTED]'
    """
    return redact_secrets(name)


def truncate(text: str, max_chars: int | None) -> str:
    """Cap ``text`` at ``max_chars`` characters, saying how much was cut.

    Args:
        text: The text to cap.
        max_chars: The most characters kept; ``None`` keeps everything.

    Example:
        >>> truncate("hello", 10)
        'hello'
        >>> truncate("hello world", 5)
        'hello…[truncated 6 chars]'
    """
    if max_chars is None or len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}…[truncated {len(text) - max_chars} chars]"


def capture_content_from_env() -> bool:
    """Whether ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for content on spans.

    ``true``, ``SPAN_ONLY`` and ``SPAN_AND_EVENT`` turn it on; anything else
    (unset, ``false``, ``NO_CONTENT``, ``EVENT_ONLY``: ra-guard emits no log
    events) leaves it off.

    Example:
        >>> os.environ[CAPTURE_CONTENT_ENV] = "SPAN_ONLY"
        >>> capture_content_from_env()
        True
        >>> del os.environ[CAPTURE_CONTENT_ENV]
        >>> capture_content_from_env()
        False
    """
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _CONTENT_ON


@dataclass(frozen=True)
class ContentFilter:
    """What captured content goes through: the secret redactor, your hook, a length cap.

    Attributes:
        redact: Your hook (PII, ...), run after :func:`redact_secrets`.
        max_length: Characters kept (``None``: all).

    Example:
        >>> clean = ContentFilter(redact=str.upper, max_length=12)
        >>> clean("token=abc12345 hello")
        'TOKEN=[REDAC…[truncated 10 chars]'
    """

    redact: Redactor | None = None
    max_length: int | None = 4096

    def __call__(self, text: str) -> str:
        text = redact_secrets(text)
        if self.redact is not None:
            text = self.redact(text)
        return truncate(text, self.max_length)


def messages_json(messages: Sequence[ChatMessage], clean: Callable[[str], str]) -> str:
    """Chat messages as the GenAI conventions' ``gen_ai.input.messages`` JSON, each text cleaned.

    Example:
        >>> messages_json([{"role": "user", "content": "hi"}], ContentFilter())
        '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]'
    """
    return json.dumps(
        [{"role": m["role"], "parts": [{"type": "text", "content": clean(str(m["content"]))}]} for m in messages],
        ensure_ascii=False,
    )
