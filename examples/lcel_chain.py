"""An LCEL chain (prompt | model | parser) guarded by ra-guard, streamed.

``GuardedRunnable`` runs the chain 4 times, has a RewardAnything judge score
the answers against the policies, and returns the best. ``stream`` buffers
until the answer is judged, then streams the chosen one.

Run it against any OpenAI-compatible endpoint::

    export OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-...
    export RA_GUARD_MODEL=gpt-4o-mini
    export RA_GUARD_JUDGE=openai-compat:http://gpu-1:8000/v1
    python examples/lcel_chain.py "Explain what a reward model is"
"""

from __future__ import annotations

import os
import sys

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from ra_guard import Guard
from ra_guard.integrations.langchain import GuardedRunnable


def main(topic: str) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a patient teacher. Two sentences at most."), ("user", "{topic}")]
    )
    model = ChatOpenAI(
        model=os.environ.get("RA_GUARD_MODEL", "gpt-4o-mini"),
        base_url=os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"),
        temperature=0.9,
    )
    guard = Guard(
        policies=["concise", "honest-about-uncertainty"],
        judge=os.environ.get("RA_GUARD_JUDGE", "openai-compat:http://localhost:8000/v1"),
    )
    chain = GuardedRunnable(prompt | model | StrOutputParser(), guard, n=4)
    for chunk in chain.stream({"topic": topic}):
        print(chunk, end="", flush=True)
    print()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "Explain what a reward model is")
