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
    "redact_capped",
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

# Every pattern runs in time linear in the text: each starts with a literal (or a
# look-behind that allows only the start of a run), and no quantifier can be
# retried from every position of a long run. A pattern runs only when its
# trigger, a lowercase substring it cannot match without, occurs in the text.
_KEY_NAMES = (
    r"(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token|id[_-]?token|session[_-]?token"
    r"|secret[_-]?key|secret|password|passwd|client[_-]?secret|token)"
)
# Query parameters that carry a credential in URLs (signed URLs, key-in-URL APIs).
_QUERY_NAMES = (
    r"(?:key|sig|signature|code|auth|credential|x-amz-signature|x-amz-credential|x-amz-security-token"
    r"|x-goog-signature|x-goog-credential|x[_-]api[_-]key|sv|se)"
)
_VALUE = r"""[^\s"',;}&)]+"""
_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str], str], ...] = (
    # Header lines and dict reprs: "Authorization: Bearer x", "'authorization': 'Basic x'", "x-api-key: x".
    (
        ("authorization",),
        re.compile(
            r"""(?i)(["']?(?:proxy-)?authorization["']?[ \t]{0,16}[:=][ \t]{0,16}["']?)"""
            r"""(?:(?:bearer|basic|token|digest)[ \t]{1,16})?[^\s"',;})]+"""
        ),
        r"\1" + REDACTED,
    ),
    (
        ("api-key",),
        re.compile(
            r"""(?i)(["']?(?:x-api-key|api-key|x-goog-api-key|openai-api-key)["']?[ \t]{0,16}[:=][ \t]{0,16}["']?)"""
            r"""[^\s"',;}&)]+"""
        ),
        r"\1" + REDACTED,
    ),
    # key=value and "key": "value" pairs, in URLs, reprs and JSON.
    (
        ("key", "token", "secret", "passw"),
        re.compile(rf"""(?i)(\b{_KEY_NAMES}["']?[ \t]{{0,16}}[:=][ \t]{{0,16}}["']?)(?!\[REDACTED\]){_VALUE}"""),
        r"\1" + REDACTED,
    ),
    # Credential-carrying query parameters: ?key=..., &sig=...
    (
        ("?", "&"),
        re.compile(rf"""(?i)([?&]{_QUERY_NAMES}=)(?!\[REDACTED\])[^&#\s"'<>]+"""),
        r"\1" + REDACTED,
    ),
    # Bare bearer tokens.
    (("bearer",), re.compile(r"(?i)\bbearer[ \t]{1,16}(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{8,}"), "Bearer " + REDACTED),
    # Well-known key shapes, wherever they appear.
    (("sk-", "pk-", "rk-"), re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"), REDACTED),
    (
        ("ghp_", "gho_", "ghs_", "ghu_", "github_pat_", "glpat", "xox", "hf_"),
        re.compile(r"\b(?:ghp|gho|ghs|ghu|github_pat|glpat|xox[abposr]|hf)_[A-Za-z0-9_-]{16,}"),
        REDACTED,
    ),
    (("akia",), re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
    (("aiza",), re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), REDACTED),
    (
        ("eyj",),
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        REDACTED,
    ),
    # Credentials in URLs: the whole userinfo of scheme://user:password@host (or scheme://token@host).
    (
        ("://",),
        re.compile(r"(?i)((?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,31}://)[^/\s@?#\\\"'<>]+@"),
        r"\1" + REDACTED + "@",
    ),
)

# What ends a ``user:password`` run before an ``@`` (looking backwards from the ``@``).
_USERINFO_STOPS = frozenset("/?#@ \t\r\n'\"<>()[]{},;=")


def redact_secrets(text: str) -> str:
    """Replace API keys, auth headers and tokens in ``text`` by ``[REDACTED]``.

    This is the default redactor of traces, the audit log and annotations. It
    is pattern based: it catches the shapes keys travel in (headers, URL
    userinfo and credential query parameters, ``user:password@host`` written
    without a scheme, ``api_key=`` in reprs, ``sk-...`` style keys, JWTs), not
    arbitrary personal data; add your own
    :data:`Redactor` for that. It runs in time linear in ``text``.

    Args:
        text: Any text: a message, an exception message, a URL.

    Returns:
        The text with every match replaced.

    Example:
        >>> redact_secrets("key sk-proj-abcdefghijklmnop1234 and {'x-api-key': 'k1234567'}")
        "key [REDACTED] and {'x-api-key': '[REDACTED]'}"
        >>> redact_secrets("http://bob:hunter2@gpu:8000/v1?alt=json&sig=Zm9vYmFy")
        'http://[REDACTED]@gpu:8000/v1?alt=json&sig=[REDACTED]'
    """
    if not text:
        return text
    lowered = text.lower()
    for triggers, pattern, replacement in _PATTERNS:
        if any(trigger in lowered for trigger in triggers):
            text = pattern.sub(replacement, text)
    return _bare_userinfo(text) if "@" in text and ":" in text else text


def _bare_userinfo(text: str) -> str:
    """Blank the password of ``user:password@host`` written without a scheme.

    A spec like ``openai-compat:alice:pw@gpu:8000`` has no ``://`` to anchor on.
    Each ``@`` is looked at once, walking back at most 512 characters and never
    past the last replacement, so the work stays linear in the text (a regex
    scanning ahead from every position would not).

    Example:
        >>> _bare_userinfo("openai-compat:alice:pw@gpu:8000, mail bob@example.com")
        'openai-compat:alice:[REDACTED]@gpu:8000, mail bob@example.com'
    """
    pieces: list[str] = []
    done = 0
    at = text.find("@")
    while at != -1:
        start = at
        limit = max(done, at - 512)
        while start > limit and text[start - 1] not in _USERINFO_STOPS:
            start -= 1
        colon = text.rfind(":", start, at)
        if colon != -1 and colon + 1 < at:
            pieces.append(text[done : colon + 1])
            pieces.append(REDACTED)
            done = at
        at = text.find("@", at + 1)
    pieces.append(text[done:])
    return "".join(pieces)


def redact_capped(text: str, max_chars: int | None) -> str:
    """:func:`redact_secrets` of at most ``max_chars`` characters (and a margin), then :func:`truncate`.

    Capping first bounds the work whatever the text's length; the margin lets a
    secret that straddles the cut still be recognised and replaced.

    Example:
        >>> redact_capped("token=abc12345 " + "x" * 100, 20)
        'token=[REDACTED] xxx…[truncated 97 chars]'
        >>> redact_capped("x" * 10_000, 4)
        'xxxx…[truncated 9996 chars]'
    """
    return _capped(text, max_chars, redact_secrets)


def _capped(text: str, max_chars: int | None, clean: Redactor) -> str:
    """``clean`` the first ``max_chars`` (plus a margin) characters of ``text``, then cut at ``max_chars``."""
    cut = 0
    if max_chars is not None and len(text) > max_chars + _MARGIN:
        cut = len(text) - (max_chars + _MARGIN)
        text = text[: max_chars + _MARGIN]
    text = clean(text)
    if max_chars is None or (len(text) <= max_chars and not cut):
        return text
    return f"{text[:max_chars]}…[truncated {len(text) - max_chars + cut} chars]"


_MARGIN = 256  # characters past a cap still redacted, so that a key cut in two is caught whole


@lru_cache(maxsize=512)
def redact_name(name: str) -> str:
    """:func:`redact_secrets` of a backend or model name, remembered for the last 512 names seen.

    The judge, sampler and guard names recur on every decision's spans, and
    redaction runs a dozen patterns: an LRU cache (``functools.lru_cache``)
    keeps the answer for each of the last 512 distinct names.

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
        # Cap before redacting: the work is bounded by max_length, whatever the text's length.
        return _capped(text, self.max_length, self._clean)

    def _clean(self, text: str) -> str:
        text = redact_secrets(text)
        return text if self.redact is None else self.redact(text)


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
