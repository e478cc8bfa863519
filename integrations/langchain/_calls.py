"""How ra-guard's own LangChain calls run: their tags, and which client (sync or async) serves them.

Tags: every candidate and judge call carries LangGraph's ``nostream`` tag, so
that ``stream_mode="messages"`` never forwards their tokens to a user, and
``ra_guard`` with ``ra_guard:candidate`` or ``ra_guard:judge``, that callback
handlers and ``astream_events`` (``exclude_tags=["ra_guard"]``) can filter on.

Clients: a sync caller's decision runs on ra-guard's shared background loop.
LangChain chat models keep async HTTP clients that outlive event loops
(``ChatOpenAI`` shares one per process and base URL): once the user's own
``asyncio.run(...)`` has closed the loop their connections were made on, an
async call from another loop fails with "Event loop is closed". Sync callers
therefore get the model's sync ``invoke``, in worker threads, as LangChain's own
sync path would use; async callers keep ``ainvoke`` on their loop.

Example:
    >>> with_tags({"tags": ["mine"]}, NOSTREAM_TAG)["tags"]
    ['mine', 'nostream']
"""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig

from ra_guard._sync import on_background_loop

__all__ = ["CANDIDATE_TAG", "GUARD_TAG", "JUDGE_TAG", "NOSTREAM_TAG", "for_sync_caller", "with_tags"]

#: LangGraph's tag for chat model runs whose tokens ``stream_mode="messages"`` must not forward.
NOSTREAM_TAG = "nostream"
#: Tag of every LangChain call ra-guard makes (candidates and judge calls alike).
GUARD_TAG = "ra_guard"
#: Tag of every candidate call ra-guard makes (agent middleware, ChatModelSampler).
CANDIDATE_TAG = "ra_guard:candidate"
#: Tag of every judge call made through a LangChain model (ChatModelJudge).
JUDGE_TAG = "ra_guard:judge"


def with_tags(config: RunnableConfig | None, *tags: str) -> RunnableConfig:
    """A copy of ``config`` with ``tags`` added (once each)."""
    out: RunnableConfig = {**(config or {})}
    known = list(out.get("tags") or [])
    out["tags"] = known + [t for t in tags if t not in known]
    return out


def for_sync_caller() -> bool:
    """Whether this coroutine serves a sync caller: it runs on ra-guard's shared background loop."""
    return on_background_loop()
