"""A pydantic-ai agent whose answer is judged by ra-guard and retried with the judge's critique.

``RaGuardOutputValidator`` is an output validator: a RewardAnything judge
scores the agent's answer against two shipped policies, and an answer that
falls short raises ``ModelRetry`` with the judge's critique, so the model tries
again knowing what to fix (up to the agent's ``retries``).

Run it against any OpenAI-compatible endpoint (Chat Completions)::

    export OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-...
    export RA_GUARD_MODEL=gpt-4o-mini
    export RA_GUARD_JUDGE=openai-compat:http://gpu-1:8000/v1   # vLLM serving RewardAnything
    python examples/pydantic_ai_validator.py "Write a one-line apology for a late delivery"
"""

from __future__ import annotations

import asyncio
import os
import sys

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from ra_guard import Guard
from ra_guard.integrations.pydantic_ai import RaGuardOutputValidator


async def main(request: str) -> None:
    provider = OpenAIProvider(
        base_url=os.environ.get("OPENAI_BASE_URL"), api_key=os.environ.get("OPENAI_API_KEY", "EMPTY")
    )
    model = OpenAIChatModel(os.environ.get("RA_GUARD_MODEL", "gpt-4o-mini"), provider=provider)
    judge = os.environ.get("RA_GUARD_JUDGE", "openai-compat:http://localhost:8000/v1")
    async with Guard(policies=["professional-tone", "concise"], judge=judge) as guard:
        agent = Agent(model, instructions="You write short customer-service messages.", retries=2)
        agent.output_validator(RaGuardOutputValidator(guard))
        async with agent:  # closes the model's HTTP client at the end
            result = await agent.run(request)
    print(result.output)
    summary = (result.response.metadata or {})["ra_guard"]
    retries = sum(1 for m in result.all_messages() if m.kind == "response") - 1
    print(f"-- ra-guard: passed={summary['passed']} scores={summary['scores']} retries={retries}")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "Write a one-line apology for a late delivery"))
