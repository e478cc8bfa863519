"""A LangChain agent whose answers are chosen best-of-N by ra-guard.

The agent (``create_agent`` with one tool) runs as usual; ``RaGuardMiddleware``
samples each final answer 4 times, has a RewardAnything judge score them
against two shipped policies, and hands the best one back to the agent. Turns
that only call tools pass through unjudged.

Run it against any OpenAI-compatible endpoint::

    export OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-...
    export RA_GUARD_MODEL=gpt-4o-mini
    export RA_GUARD_JUDGE=openai-compat:http://gpu-1:8000/v1   # vLLM serving RewardAnything
    python examples/langchain_agent.py "What's the weather in Paris?"
"""

from __future__ import annotations

import os
import sys

from langchain.agents import create_agent
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from ra_guard import Guard
from ra_guard.integrations.langchain import RaGuardMiddleware, summary_of


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"Sunny in {city}, 21C, light wind."


def main(question: str) -> None:
    model = ChatOpenAI(
        model=os.environ.get("RA_GUARD_MODEL", "gpt-4o-mini"),
        base_url=os.environ.get("OPENAI_BASE_URL"),
        api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"),
        temperature=0.8,  # candidates should differ
    )
    guard = Guard(
        policies=["concise", "professional-tone"],
        judge=os.environ.get("RA_GUARD_JUDGE", "openai-compat:http://localhost:8000/v1"),
    )
    agent = create_agent(
        model,
        tools=[get_weather],
        system_prompt="You answer questions about the weather. Use the tool.",
        middleware=[RaGuardMiddleware(guard, n=4)],
    )
    result = agent.invoke({"messages": [{"role": "user", "content": question}]})
    answer = result["messages"][-1]
    print(answer.content)
    # The message carries a compact summary; the whole decision is in the traces (summary.trace_id).
    summary = summary_of(answer)
    if summary is not None:
        print(f"-- ra-guard: scores {summary.scores} (passed={summary.passed}, {summary.candidates} candidates)")


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "What's the weather in Paris?")
