"""Samplers: produce the candidate responses a guard chooses from.

``litellm:<model>`` resolves to :class:`~ra_guard.samplers.litellm.LiteLLMSampler`;
``transformers:<path>`` to a local transformers sampler. Your own code plugs in
through :class:`FunctionSampler` or a :class:`Sampler` subclass.

Example:
    >>> s = FunctionSampler(lambda m, i: "x")
    >>> resolve_sampler(s) is s
    True
"""

from __future__ import annotations

from ra_guard._resolve import resolve_spec
from ra_guard.samplers.base import Sampler, WrapperSampler
from ra_guard.samplers.function import FunctionSampler

__all__ = ["FunctionSampler", "Sampler", "WrapperSampler", "resolve_sampler"]

_SAMPLERS: dict[str, tuple[str, str]] = {
    "litellm": ("ra_guard.samplers.litellm", "LiteLLMSampler"),
    "transformers": ("ra_guard.local", "TransformersSampler"),
}


def resolve_sampler(spec: Sampler | str) -> Sampler:
    """A :class:`Sampler` from an instance (returned as is) or a spec string."""
    if isinstance(spec, Sampler):
        return spec
    sampler: Sampler = resolve_spec("sampler", spec, _SAMPLERS, "litellm:gpt-4o-mini")
    return sampler
