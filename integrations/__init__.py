"""Framework adapters, installed as ``ra_guard.integrations``: LangChain and litellm."""
