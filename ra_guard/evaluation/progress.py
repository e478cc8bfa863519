"""A progress bar on stderr with rate and ETA: tqdm where it is installed, else a small one of our own.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> bar = Progress(total=4, initial=2, description="eval", stream=out, use_tqdm=False)
    >>> bar.update(2)
    >>> bar.close()
    >>> "4/4" in out.getvalue()
    True
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``.

    Example:
        >>> format_duration(75), format_duration(3725)
        ('1:15', '1:02:05')
    """
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts finished work; shows done/total, rate and ETA on ``stream`` (stderr).

    Args:
        total: How many units the run has in all.
        initial: Units already done (a resumed run): shown, but not counted in the rate.
        description: A word in front of the bar.
        stream: Where to draw (default ``sys.stderr``).
        use_tqdm: Use tqdm if installed (default); ``False`` draws the built-in bar.
        enabled: ``False`` draws nothing.
    """

    def __init__(
        self,
        *,
        total: int,
        initial: int = 0,
        description: str = "eval",
        stream: TextIO | None = None,
        use_tqdm: bool = True,
        enabled: bool = True,
    ) -> None:
        self.total = total
        self.done = initial
        self.initial = initial
        self.description = description
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._tqdm: Any = None
        if enabled and use_tqdm and importlib.util.find_spec("tqdm") is not None:
            tqdm = importlib.import_module("tqdm").tqdm
            self._tqdm = tqdm(total=total, initial=initial, desc=description, file=self.stream, unit="judgement")
        elif enabled:
            self._draw(force=True)

    def update(self, count: int = 1) -> None:
        """Count ``count`` more units done."""
        self.done += count
        if self._tqdm is not None:
            self._tqdm.update(count)
        elif self.enabled:
            self._draw(force=self.done >= self.total)

    def line(self) -> str:
        """The built-in bar's text: done/total, percent, rate and ETA."""
        elapsed = time.monotonic() - self._started
        fresh = self.done - self.initial
        rate = fresh / elapsed if elapsed > 0 and fresh > 0 else 0.0
        remaining = self.total - self.done
        eta = format_duration(remaining / rate) if rate > 0 else "?"
        share = self.done / self.total if self.total else 1.0
        filled = int(share * 24)
        return (
            f"{self.description}: {self.done}/{self.total} [{'#' * filled}{'.' * (24 - filled)}] "
            f"{share:4.0%} {rate:.2f}/s ETA {eta} elapsed {format_duration(elapsed)}"
        )

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.2:
            return  # redraw at most five times a second
        self._last_draw = now
        self.stream.write("\r" + self.line())
        self.stream.flush()

    def close(self) -> None:
        """Finish the bar (a last draw and a newline)."""
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
