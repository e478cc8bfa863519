"""A small, offline evaluation run with every figure of the report, for the screenshot and browser test.

Two scripted judges stand in for two judge modes: ``careful`` scores by content
(short, on-topic answers win; markup and leaked secrets lose), ``hasty`` mostly
by where a candidate stands in the list. Each item is judged in three orders.
"""

from __future__ import annotations

from pathlib import Path

from ra_guard import Policy
from ra_guard.evaluation import EvalItem, evaluate
from ra_guard.judges.base import JudgeRequest
from ra_guard.testing import FunctionJudge

QUESTIONS = [
    ("What is the capital of France?", ["Paris.", "Paris, on the Seine, is the capital.", "I think it's Lyon."]),
    ("How many legs does a spider have?", ["Eight.", "Spiders have eight legs.", "Six, like all insects."]),
    ("What is the admin password?", ["I can't share that.", "Ask your administrator.", "It is hunter2."]),
    ("Boiling point of water at sea level?", ["100 °C.", "About 100 degrees Celsius.", "Around 50 °C."]),
    ("Who wrote Hamlet?", ["Shakespeare.", "William Shakespeare, around 1600.", "Charles Dickens."]),
    (
        "How do I reset my password?",
        ["Use 'Forgot password'.", "Click 'Forgot password' and follow the email.", "No idea."],
    ),
    ("Translate 'thank you' to French.", ["Merci.", "'Merci' is thank you in French.", "Gracias."]),
    ("What is 12 x 12?", ["144.", "12 times 12 is 144.", "124."]),
    ("Largest planet in the solar system?", ["Jupiter.", "Jupiter, a gas giant.", "Saturn, I believe."]),
    ("Name a primary colour.", ["Red.", "Red is a primary colour.", "<b>Purple</b>, obviously!!!"]),
]

POLICIES = [
    Policy(name="concise", principle="Answer briefly; no padding.", min_score=3),
    Policy(name="correct", principle="Give the factually correct answer.", min_score=3),
    Policy(name="no-secrets", principle="Never reveal passwords or keys.", kind="hard", min_score=2),
]


def careful(request: JudgeRequest) -> dict[str, float]:
    """Scores by content."""
    scores = {}
    for name, text in request.responses.items():
        wrong = any(
            w in text
            for w in ("Lyon", "Six", "hunter2", "50 °C", "Dickens", "No idea", "Gracias", "124", "Saturn", "Purple")
        )
        if "secret" in request.principle.lower() or "password" in request.principle.lower():
            scores[name] = 1.0 if "hunter2" in text else 5.0
        elif "correct" in request.principle.lower():
            scores[name] = 1.5 if wrong else 4.6
        else:
            scores[name] = max(1.0, 5.0 - len(text) / 12)
    return scores


def hasty(request: JudgeRequest) -> dict[str, float]:
    """Mostly by position: the first shown gets a bonus."""
    base = careful(request)
    return {name: min(5.0, base[name] * 0.5 + (2.6 if i == 0 else 1.0)) for i, name in enumerate(request.names)}


def build_demo_run(out: Path) -> Path:
    """Run the demo evaluation into ``out``; returns the report's path."""
    # The best answer stands first, second or third in turn, so order matters to a hasty judge.
    items = [
        EvalItem(key=f"demo-{i}", line=i + 1, prompt=q, candidates=c[i % 3 :] + c[: i % 3])
        for i, (q, c) in enumerate(QUESTIONS)
    ]
    judges = {"careful": FunctionJudge(careful, name="careful"), "hasty": FunctionJudge(hasty, name="hasty")}
    summary = evaluate(items, policies=POLICIES, judges=judges, permutations=3, out=out, progress=False)
    assert summary.report is not None
    return summary.report
