"""Judge URLs: validated when a judge is built, credentials kept out of names, errors and logs.

A judge URL may carry credentials: userinfo (``http://user:secret@host/v1``)
or key-like query parameters (``?api_key=...``, ``token``, ``key``, ``sig``).
:func:`parse_judge_url` splits such a URL into what is safe to show (scheme,
host, port, path: the judge's ``base_url`` and ``name``) and what is sent but
never shown (HTTP basic auth built from the userinfo, the query parameters).

httpx logs every request URL at INFO (``HTTP Request: POST http://...``); the
query parameters are part of that URL, so :func:`install_log_redaction` adds a
filter to the HTTP client loggers that blanks key-like values in those lines
(with :func:`ra_guard._redact.redact_secrets`, the one redactor of the package).

Example:
    >>> url = parse_judge_url("http://bob:s3cret@gpu-1:8000/v1?api_key=k&x=1", example="openai-compat:URL")
    >>> url.base_url, url.host, url.basic_auth, sorted(url.query)
    ('http://gpu-1:8000/v1', 'gpu-1:8000', ('bob', 's3cret'), ['api_key', 'x'])
    >>> redact_secrets("GET http://bob:pw@h/v1?token=abc&n=2")
    'GET http://[REDACTED]@h/v1?token=[REDACTED]&n=2'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from ra_guard._redact import redact_secrets
from ra_guard.exceptions import ConfigurationError

__all__ = ["JudgeURL", "install_log_redaction", "parse_judge_url"]


@dataclass(frozen=True)
class JudgeURL:
    """A validated judge URL, split into the part to show and the credentials to send.

    Attributes:
        base_url: ``scheme://host[:port][/path]``: no userinfo, no query (safe to show).
        host: ``host[:port]``, for judge names.
        basic_auth: ``(user, password)`` from the userinfo, or ``None``.
        query: Query parameters to send with every request (never shown).
    """

    base_url: str
    host: str
    basic_auth: tuple[str, str] | None = None
    query: dict[str, str] = field(default_factory=dict)


def parse_judge_url(url: str, *, example: str, path_hint: str = "") -> JudgeURL:
    """Validate ``url`` and split off its credentials.

    Args:
        url: What the user gave, e.g. ``http://gpu-1:8000/v1``.
        example: How a correct spec looks for this backend, used in the error
            with ``URL`` replaced by a fixed-up version of ``url``.
        path_hint: A path to add to the fixed-up URL when it has none (``/v1``).

    Raises:
        ConfigurationError: No ``http``/``https`` scheme, or no host.

    Example:
        >>> parse_judge_url("localhost:8000", example="openai-compat:URL")
        Traceback (most recent call last):
        ...
        ra_guard.exceptions.ConfigurationError: judge URL 'localhost:8000' has no http:// or https:// scheme; ...
    """
    text = url.strip()
    shown = redact_secrets(text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"judge URL {shown!r} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        if "://" in text:
            problem = f"uses the scheme {parts.scheme!r}; a judge speaks HTTP"
            fixed = "http://" + text.split("://", 1)[1]
        else:
            problem = "has no http:// or https:// scheme"
            fixed = "http://" + text.lstrip("/")
        if path_hint and urlsplit(fixed).path in ("", "/"):
            fixed = fixed.rstrip("/") + path_hint
        raise ConfigurationError(
            f"judge URL {shown!r} {problem}; write it as {example.replace('URL', redact_secrets(fixed))!r}"
        )
    if not parts.hostname:
        raise ConfigurationError(
            f"judge URL {shown!r} names no host; "
            f"write it as {example.replace('URL', 'http://localhost:8000' + path_hint)!r}"
        )
    hostname = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"  # IPv6 literal
    host = f"{hostname}:{port}" if port is not None else hostname
    path = parts.path.rstrip("/")
    auth = None
    if parts.username is not None or parts.password is not None:
        auth = (unquote(parts.username or ""), unquote(parts.password or ""))
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return JudgeURL(base_url=f"{parts.scheme.lower()}://{host}{path}", host=host, basic_auth=auth, query=query)


class _RedactURLs(logging.Filter):
    """Blanks URL credentials in the arguments of HTTP client log records (they log full URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact_secrets(str(a)) if _looks_like_url(a) else a for a in record.args)
        elif isinstance(record.msg, str) and "://" in record.msg:
            record.msg = redact_secrets(record.msg)
        return True


def _looks_like_url(value: object) -> bool:
    # httpx passes ``httpx.URL`` objects; anything whose text holds "://" is worth a look.
    return "://" in str(value) if not isinstance(value, (int, float)) else False


_FILTER = _RedactURLs()
_HTTP_LOGGERS = ("httpx", "httpx2", "openai", "openai._base_client", "LiteLLM")


def install_log_redaction() -> None:
    """Add the URL-credential filter to the HTTP client loggers (idempotent).

    Example:
        >>> install_log_redaction(); install_log_redaction()
        >>> sum(isinstance(f, _RedactURLs) for f in logging.getLogger("httpx").filters)
        1
    """
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
