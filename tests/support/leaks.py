"""What a test left unclosed: the ``ResourceWarning`` s a garbage collection raises now."""

from __future__ import annotations

import gc
import sys
import warnings
from typing import Any

__all__ = ["unclosed_after_collection"]


def unclosed_after_collection() -> list[str]:
    """Collect garbage now and return the ``ResourceWarning: unclosed ...`` messages it produces.

    The warnings are turned into errors for the collection: a finaliser's warning then reaches
    ``sys.unraisablehook`` (where it is caught), where a shown warning would only be printed.
    """
    found: list[str] = []
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, ResourceWarning):
            found.append(str(unraisable.exc_value))
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            gc.collect()
    finally:
        sys.unraisablehook = previous
    return found
