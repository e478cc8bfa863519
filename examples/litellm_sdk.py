"""Best-of-N completions with litellm: ``guarded_completion`` returns a normal ``ModelResponse``.

Run it against any OpenAI-compatible endpoint (or any provider litellm knows:
set RA_GUARD_MODEL to ``anthropic/claude-...`` and that provider's key)::

    export OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-...
    export RA_GUARD_MODEL=gpt-4o-mini
    export RA_GUARD_JUDGE=openai-compat:http://gpu-1:8000/v1
    python examples/litellm_sdk.py "Write a one-line apology for a late delivery"
"""

from __future__ import annotations

import os
import sys

from ra_guard import Guard
from ra_guard.integrations.litellm import guarded_completion


def main(request: str) -> None:
    guard = Guard(
        policies=["professional-tone", "concise"],
        judge=os.environ.get("RA_GUARD_JUDGE", "openai-compat:http://localhost:8000/v1"),
    )
    model = os.environ.get("RA_GUARD_MODEL", "gpt-4o-mini")
    base_url = os.environ.get("OPENAI_BASE_URL")
    if base_url and not model.startswith("openai/"):
        model = f"openai/{model}"  # litellm's prefix for "an OpenAI-compatible server at api_base"
    response = guarded_completion(
        guard,
        n=4,
        model=model,
        api_base=base_url,
        api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"),
        messages=[{"role": "user", "content": request}],
        max_tokens=200,
    )
    print(response.choices[0].message.content)
    decision = response.ra_guard
    print(f"-- ra-guard: {decision['why']} (passed={decision['passed']})")


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "Write a one-line apology for a late delivery")
