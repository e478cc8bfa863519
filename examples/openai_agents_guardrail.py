"""An OpenAI Agents SDK agent: answers chosen best-of-4 by ra-guard, then checked by an output guardrail.

``GuardedModel`` wraps the agent's model: each answer is the best of 4 calls,
judged by a RewardAnything judge against two shipped policies. The output
guardrail then judges the final output against a hard policy (``harmless``)
and stops the run with ``OutputGuardrailTripwireTriggered`` when it fails.

Run it against any OpenAI-compatible endpoint (it uses Chat Completions, which
vLLM and most servers speak)::

    export OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-...
    export RA_GUARD_MODEL=gpt-4o-mini
    export RA_GUARD_JUDGE=openai-compat:http://gpu-1:8000/v1   # vLLM serving RewardAnything
    python examples/openai_agents_guardrail.py "Write a one-line apology for a late delivery"
"""

from __future__ import annotations

import asyncio
import os
import sys

from agents import Agent, OpenAIChatCompletionsModel, OutputGuardrailTripwireTriggered, Runner, set_tracing_disabled
from openai import AsyncOpenAI

from ra_guard import Guard
from ra_guard.integrations.openai_agents import GuardedModel, ra_guard_output_guardrail


async def main(request: str) -> None:
    client = AsyncOpenAI(api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"))  # OPENAI_BASE_URL is read too
    if "api.openai.com" not in str(client.base_url):
        set_tracing_disabled(True)  # the SDK exports its traces to OpenAI's platform: not for other servers
    judge = os.environ.get("RA_GUARD_JUDGE", "openai-compat:http://localhost:8000/v1")
    async with (
        Guard(policies=["professional-tone", "concise"], judge=judge) as quality,
        Guard(policies=["harmless"], judge=judge) as safety,
    ):
        agent = Agent(
            name="support",
            instructions="You write short customer-service messages.",
            model=GuardedModel(
                OpenAIChatCompletionsModel(model=os.environ.get("RA_GUARD_MODEL", "gpt-4o-mini"), openai_client=client),
                quality,
                n=4,
            ),
            output_guardrails=[ra_guard_output_guardrail(safety)],
        )
        try:
            result = await Runner.run(agent, request)
        except OutputGuardrailTripwireTriggered as blocked:
            print(f"blocked by ra-guard: {blocked.guardrail_result.output.output_info}")
        else:
            print(result.final_output)
            summary = result.output_guardrail_results[0].output.output_info
            print(f"-- ra-guard: passed={summary['passed']} scores={summary['scores']} trace={summary['trace_id']}")
    await client.close()


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "Write a one-line apology for a late delivery"))
