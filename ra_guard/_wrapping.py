"""What a wrapper forwards of the backend it wraps: its ``name`` and ``model``, read live.

Shared by :class:`~ra_guard.judges.base.WrapperJudge` and
:class:`~ra_guard.samplers.base.WrapperSampler`: a model the wrapped backend
discovers later shows through, and a wrapper may name itself without renaming
what it wraps.

Example:
    >>> from types import SimpleNamespace
    >>> class Wrapper(Forwarding):
    ...     def __init__(self, wrapped):
    ...         self.wrapped, self._own_name = wrapped, None
    >>> inner = SimpleNamespace(name="inner", model=None)
    >>> wrapper = Wrapper(inner)
    >>> inner.model = "discovered-later"
    >>> wrapper.name = "cached:inner"
    >>> wrapper.name, wrapper.model, inner.name
    ('cached:inner', 'discovered-later', 'inner')
"""

from __future__ import annotations

from typing import Any

__all__ = ["Forwarding"]


class Forwarding:
    """Forwards ``name`` (unless the wrapper named itself) and ``model`` to ``self.wrapped``."""

    wrapped: Any
    _own_name: str | None

    @property  # a live view of the wrapped backend's attribute
    def name(self) -> str:
        return self._own_name if self._own_name is not None else str(self.wrapped.name)

    @name.setter
    def name(self, value: str) -> None:
        # A subclass may name itself (``traced:<inner>``) without renaming the backend it wraps.
        self._own_name = value

    @property
    def model(self) -> str | None:
        model: str | None = self.wrapped.model
        return model

    @model.setter
    def model(self, value: str | None) -> None:
        self.wrapped.model = value
