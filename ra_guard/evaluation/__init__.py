"""Evaluation: run a dataset through guards, report on it, and measure a judge on labelled rankings.

- :func:`evaluate` / :func:`aevaluate`: judge every line of a dataset with
  bounded concurrency, resumably (``results.jsonl`` in a run directory), and
  write a self-contained HTML report (:func:`write_report`).
- :func:`judge_quality`: pairwise accuracy, Kendall's tau and NDCG of a judge
  on labelled rankings (the RABench layout), with bootstrap intervals.

The same from the command line: ``python -m ra_guard eval`` and
``python -m ra_guard quality`` (see :mod:`ra_guard.evaluation.cli`).

Example:
    >>> import tempfile
    >>> from ra_guard.testing import FunctionJudge
    >>> judge = FunctionJudge(lambda r: {n: 5 - len(t) / 10 for n, t in r.responses.items()})
    >>> items = [EvalItem(key="q1", line=1, prompt="Capital of France?", candidates=["Paris.", "It is Paris."])]
    >>> summary = evaluate(items, policies=["concise"], judges=[judge], out=tempfile.mkdtemp(), progress=False)
    >>> summary.report.name
    'report.html'
"""

from __future__ import annotations

from ra_guard.evaluation.analysis import Analysis, analyse
from ra_guard.evaluation.dataset import DatasetError, EvalItem, read_dataset
from ra_guard.evaluation.quality import (
    LabelledItem,
    QualityResult,
    ajudge_quality,
    judge_quality,
    read_labelled,
    shipped_labelled_set,
)
from ra_guard.evaluation.report import render_report, write_report
from ra_guard.evaluation.run import RunSummary, aevaluate, evaluate

__all__ = [
    "Analysis",
    "DatasetError",
    "EvalItem",
    "LabelledItem",
    "QualityResult",
    "RunSummary",
    "aevaluate",
    "ajudge_quality",
    "analyse",
    "evaluate",
    "judge_quality",
    "read_dataset",
    "read_labelled",
    "render_report",
    "shipped_labelled_set",
    "write_report",
]
