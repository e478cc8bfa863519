"""Framework adapters, as ``ra_guard.integrations``: LangChain, litellm, the OpenAI Agents SDK, pydantic-ai."""
