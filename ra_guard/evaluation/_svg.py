"""Inline SVG bar charts for the HTML report: no scripts, no external assets.

Example:
    >>> "<rect" in bar_chart([("1", 2), ("2", 5)], title="scores")
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["bar_chart"]


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 320,
    height: int = 140,
    colour: str = "#3b6ea5",
    value_format: str = "{:g}",
) -> str:
    """A labelled vertical bar chart as an ``<svg>`` element (each bar carries a ``<title>`` tooltip)."""
    top, bottom, left = 16, 22, 6
    plot_height = height - top - bottom
    highest = max((value for _, value in bars), default=0) or 1
    slot = (width - 2 * left) / max(1, len(bars))
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" y1="{top + plot_height}" x2="{width - left}" y2="{top + plot_height}" stroke="#999"/>',
    ]
    for position, (label, value) in enumerate(bars):
        bar_height = plot_height * value / highest
        x = left + position * slot + slot * 0.12
        y = top + plot_height - bar_height
        shown = escape(value_format.format(value))
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.76:.1f}" height="{bar_height:.1f}" fill="{colour}">'
            f"<title>{escape(label)}: {shown}</title></rect>"
        )
        if value:
            parts.append(f'<text x="{x + slot * 0.38:.1f}" y="{y - 3:.1f}" class="v">{shown}</text>')
        parts.append(f'<text x="{x + slot * 0.38:.1f}" y="{height - 6}" class="l">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
