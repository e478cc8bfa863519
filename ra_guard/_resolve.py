"""Resolve ``"prefix:target"`` strings to backends, in one place.

Judges and samplers share the mechanism: a table of prefixes, each naming a
module and a factory that takes the target. Modules are imported lazily, so a
missing optional dependency is reported only for the backend that needs it.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import Any

from ra_guard.exceptions import ConfigurationError, UnknownBackendError

__all__ = ["resolve_spec"]


def resolve_spec(what: str, spec: str, table: Mapping[str, tuple[str, str]], example: str) -> Any:
    """Build the backend that ``spec`` names, from ``table[prefix] = (module, factory)``.

    Example:
        >>> resolve_spec("judge", "nope:x", {"openai-compat": ("m", "f")}, "openai-compat:URL")
        Traceback (most recent call last):
        ...
        ra_guard.exceptions.UnknownBackendError: unknown judge 'nope:x'; ... write it as 'openai-compat:URL'
    """
    prefix, sep, target = spec.partition(":")
    if not sep or prefix not in table:
        close = difflib.get_close_matches(prefix, list(table), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"write it as {example!r}"
        raise UnknownBackendError(what, spec, list(table), hint)
    if not target:
        raise UnknownBackendError(
            what, spec, list(table), f"{prefix!r} needs a target after the colon, e.g. {example!r}"
        )
    module_name, factory = table[prefix]
    module = importlib.import_module(module_name)
    try:
        return getattr(module, factory)(target)
    except ConfigurationError as exc:
        if type(exc) is not ConfigurationError:
            raise  # a subclass carries its own fields (file, extra...)
        # Name the spec the user wrote; the backend's message says what to change.
        raise ConfigurationError(f"{what} {_shown(spec)!r}: {exc}") from exc


def _shown(spec: str) -> str:
    from ra_guard._redact import redact_secrets

    return redact_secrets(spec)
