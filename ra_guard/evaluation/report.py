"""The HTML report of an evaluation run: one self-contained file, inline CSS and SVG, no scripts.

Sections, each figure with the examples behind it (in ``<details>``):

- **Scores**: per judge and policy, the score distribution, mean, pass and veto rates;
- **Decisions**: per judge, decisions that passed, degraded ones, failures;
- **Agreement** (with several judges or modes): same winner, Kendall's tau;
- **Position bias** (judged in several orders): same winner in every order,
  tau between orders, where in the shown order the winner stood.

All text from the dataset and the judges is escaped: it is untrusted.

Example:
    >>> import tempfile
    >>> from ra_guard.testing import FunctionJudge
    >>> from ra_guard.evaluation.dataset import EvalItem
    >>> from ra_guard.evaluation.run import evaluate
    >>> judge = FunctionJudge(lambda r: {n: 5 - len(t) / 10 for n, t in r.responses.items()})
    >>> out = tempfile.mkdtemp()
    >>> summary = evaluate([EvalItem(key="q", line=1, prompt="Hi", candidates=["a", "bb"])],
    ...                    policies=["concise"], judges=[judge], out=out, progress=False)
    >>> summary.report.read_text().startswith("<!DOCTYPE html>")
    True
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from ra_guard.evaluation._svg import bar_chart
from ra_guard.evaluation.analysis import Agreement, Analysis, JudgeStats, PolicyStats, PositionBias, analyse, score_bins

__all__ = ["REPORT_FILE", "render_report", "write_report"]

#: Name of the report in a run directory.
REPORT_FILE = "report.html"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d232b}
body{margin:24px auto;max-width:1180px;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}
h2{font-size:18px;border-bottom:1px solid #d5dbe3;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin:0 0 6px}
.muted{color:#5b6673}
.grid{display:flex;flex-wrap:wrap;gap:14px}
.figure{border:1px solid #d5dbe3;border-radius:6px;padding:10px 12px;background:#fafbfc;width:350px}
.figure.wide{width:100%;box-sizing:border-box}
table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #d5dbe3;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}
.num{text-align:right;font-variant-numeric:tabular-nums}
.chart text{font-size:10px;text-anchor:middle;fill:#333}
details{margin-top:6px}
summary{cursor:pointer;color:#2a5d8f}
.ex{border-left:3px solid #c8d3df;padding:2px 8px;margin:6px 0;font-size:13px}
.ex{white-space:pre-wrap;word-break:break-word}
.ex .p{color:#5b6673}
.warn{color:#9a3b00}
"""


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.0%}"


def _num(value: float, digits: int = 2) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def _clip(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more characters]"


def _examples(title: str, examples: list[dict[str, Any]], render: Any) -> str:
    if not examples:
        return ""
    body = "".join(
        f'<div class="ex"><div class="p">line {escape(str(e.get("line")))} · '
        f"{escape(_clip(str(e.get('prompt', '')), 200))}</div>"
        f"{render(e)}</div>"
        for e in examples
    )
    return f"<details><summary>{escape(title)} ({len(examples)})</summary>{body}</details>"


def _candidate(example: dict[str, Any]) -> str:
    score = example.get("score")
    shown = "no score" if score is None else f"score {score:.2f}"
    extra = f" — {escape(_clip(example['reasoning'], 300))}" if example.get("reasoning") else ""
    error = f' <span class="warn">{escape(str(example["error"]))}</span>' if example.get("error") else ""
    return f"<b>{shown}</b>{error}: {escape(_clip(str(example.get('text', ''))))}<span class='p'>{extra}</span>"


def _policy_figure(stats: PolicyStats) -> str:
    chart = bar_chart(score_bins(stats.scores), title=f"{stats.judge} · {stats.policy}: score distribution")
    rates = (
        f"<table><tr><th>candidates</th><th>mean</th><th>pass</th><th>veto</th><th>unscored</th></tr>"
        f'<tr><td class="num">{stats.candidates}</td><td class="num">{_num(stats.mean)}</td>'
        f'<td class="num">{_pct(stats.pass_rate)}</td><td class="num">{_pct(stats.veto_rate)}</td>'
        f'<td class="num">{stats.unscored}</td></tr></table>'
    )
    return (
        f'<div class="figure" data-figure="scores"><h3>{escape(stats.policy)} '
        f'<span class="muted">· {escape(stats.judge)}</span></h3>'
        f"{chart}{rates}"
        f"{_examples('lowest scored', stats.lowest, _candidate)}"
        f"{_examples('highest scored', stats.highest, _candidate)}"
        f"{_examples('vetoed', stats.vetoed_examples, _candidate)}</div>"
    )


def _decisions_table(judges: list[JudgeStats]) -> str:
    rows = "".join(
        f'<tr><td>{escape(j.label)}</td><td class="num">{j.decisions}</td>'
        f'<td class="num">{_pct(j.decisions_passed / j.decisions if j.decisions else math.nan)}</td>'
        f'<td class="num">{j.degraded}</td><td class="num">{j.failed}</td></tr>'
        for j in judges
    )
    failures = "".join(
        _examples(f"{j.label}: failures", j.failures, lambda e: f'<span class="warn">{escape(str(e["error"]))}</span>')
        for j in judges
    )
    return (
        '<div class="figure wide" data-figure="decisions"><table><tr><th>judge</th><th>decisions</th>'
        f"<th>winner passed</th><th>degraded</th><th>failed</th></tr>{rows}</table>{failures}</div>"
    )


def _winners(example: dict[str, Any]) -> str:
    winners = example["winners"]
    items = winners.items() if isinstance(winners, dict) else enumerate(winners)
    lines = "".join(f"<li>{escape(str(k))}: {escape(_clip(str(v), 240))}</li>" for k, v in items)
    return f"<ul>{lines}</ul>"


def _agreement_figure(agreement: Agreement) -> str:
    chart = bar_chart(
        [("same winner", agreement.same_winner), ("different", agreement.items - agreement.same_winner)],
        title=f"{agreement.first} vs {agreement.second}: winners",
        colour="#4f8a5b",
    )
    return (
        f'<div class="figure" data-figure="agreement"><h3>{escape(agreement.first)} <span class="muted">vs</span> '
        f"{escape(agreement.second)}</h3>{chart}"
        "<table><tr><th>items</th><th>same winner</th><th>mean Kendall τ</th></tr>"
        f'<tr><td class="num">{agreement.items}</td><td class="num">{_pct(agreement.winner_agreement)}</td>'
        f'<td class="num">{_num(agreement.mean_tau)}</td></tr></table>'
        f"{_examples('different winners', agreement.disagreements, _winners)}</div>"
    )


def _bias_figure(bias: PositionBias) -> str:
    positions = sorted(bias.winner_positions)
    chart = bar_chart(
        [(f"#{p + 1}", bias.winner_positions[p]) for p in positions],
        title=f"{bias.judge}: position of the winner in the list the guard was given",
        colour="#a5683b",
    )
    return (
        f'<div class="figure" data-figure="position-bias"><h3>{escape(bias.judge)} '
        f'<span class="muted">· {bias.orders} orders</span></h3>'
        f"{chart}<table><tr><th>items</th><th>same winner in every order</th><th>mean τ between orders</th></tr>"
        f'<tr><td class="num">{bias.items}</td><td class="num">{_pct(bias.consistency)}</td>'
        f'<td class="num">{_num(bias.mean_tau)}</td></tr></table>'
        f"{_examples('winner changed with the order', bias.inconsistent, _winners)}</div>"
    )


def render_report(analysis: Analysis, *, title: str = "ra-guard evaluation") -> str:
    """The report of an :class:`Analysis` as one HTML document."""
    settings = analysis.settings
    policies = ", ".join(escape(str(p.get("name"))) for p in settings.get("policies", []))
    judges = ", ".join(escape(j.label) for j in analysis.judges)
    summary = (
        f'<p class="muted">{analysis.items} items · judges: {judges} · policies: {policies} · '
        f"orders per judge: {escape(str(settings.get('permutations', 1)))}"
        + (f" · sampler: {escape(str(settings['sampler']))} (n={settings.get('n')})" if settings.get("sampler") else "")
        + "</p>"
    )
    scores = "".join(_policy_figure(p) for j in analysis.judges for p in j.policies)
    sections = [
        '<section id="scores"><h2>Scores per policy</h2><p class="muted">Every candidate\'s score, in the order '
        "given (pass: reaches the policy's min_score; veto: a hard policy rejects it).</p>"
        f'<div class="grid">{scores}</div></section>',
        f'<section id="decisions"><h2>Decisions</h2>{_decisions_table(analysis.judges)}</section>',
    ]
    if analysis.agreements:
        body = "".join(_agreement_figure(a) for a in analysis.agreements)
        sections.append(
            '<section id="agreement"><h2>Agreement between judges</h2><p class="muted">Same items, same candidates: '
            "how often two judges choose the same winner, and Kendall's τ between their combined scores.</p>"
            f'<div class="grid">{body}</div></section>'
        )
    if analysis.position_bias:
        body = "".join(_bias_figure(b) for b in analysis.position_bias)
        sections.append(
            '<section id="position-bias"><h2>Position-bias consistency</h2><p class="muted">Each item judged with the '
            "candidates in several orders (cyclic shifts): an unbiased judge picks the same winner in every order.</p>"
            f'<div class="grid">{body}</div></section>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>{summary}{''.join(sections)}</body></html>\n"
    )


def write_report(run_dir: str | Path, path: str | Path | None = None) -> Path:
    """Analyse ``run_dir`` and write its report (default ``run_dir/report.html``); returns the path."""
    target = Path(path) if path is not None else Path(run_dir) / REPORT_FILE
    target.write_text(render_report(analyse(run_dir)), encoding="utf-8")
    return target
