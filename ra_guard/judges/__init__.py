"""Judges: backends that score candidates with a RewardAnything-format model.

Spec strings resolve here, in one place:

====================================  ==============================================
``openai-compat:http://gpu:8000/v1``  an OpenAI-compatible server (vLLM, SGLang)
``vllm:http://gpu:8000/v1``           the same, by its most common name
``rewardanything:http://gpu:8000``    the reference ``rewardanything serve`` API
``litellm:gpt-4o-mini``               any chat model through litellm, same prompt
``local:/models/RewardAnything-8B``   transformers + torch in this process
====================================  ==============================================

Example:
    >>> from ra_guard.testing import FunctionJudge
    >>> j = FunctionJudge(lambda r: {})
    >>> resolve_judge(j) is j
    True
"""

from __future__ import annotations

from ra_guard._resolve import resolve_spec
from ra_guard.judges.base import Judge, JudgeRequest, WrapperJudge

__all__ = ["Judge", "JudgeRequest", "WrapperJudge", "resolve_judge"]

_JUDGES: dict[str, tuple[str, str]] = {
    "openai-compat": ("ra_guard.judges.openai_compat", "OpenAICompatJudge"),
    "vllm": ("ra_guard.judges.openai_compat", "OpenAICompatJudge"),
    "rewardanything": ("ra_guard.judges.rewardanything_server", "RewardAnythingServerJudge"),
    "litellm": ("ra_guard.judges.litellm_judge", "LiteLLMJudge"),
    "local": ("ra_guard.local", "LocalJudge"),
}


def resolve_judge(spec: Judge | str) -> Judge:
    """A :class:`Judge` from an instance (returned as is) or a spec string.

    Raises:
        UnknownBackendError: The prefix is unknown (with a "did you mean").
        MissingDependencyError: The backend's optional extra is not installed.
    """
    if isinstance(spec, Judge):
        return spec
    judge: Judge = resolve_spec("judge", spec, _JUDGES, "openai-compat:http://localhost:8000/v1")
    return judge
