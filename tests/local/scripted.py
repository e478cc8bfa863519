"""A test-only wrapper around the real tiny model that makes it write a given script.

The judge runs its real code path (batching, caches, digit reading, parsing);
only what the model writes is chosen, so that a test can plant an exact
generation (a verdict, thinking cut off by ``max_new_tokens``) deterministically.
"""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["Scripted"]

torch = pytest.importorskip("torch")


class Scripted(torch.nn.Module):
    """A test-only wrapper that makes the real model write ``script`` (then end of text), greedily."""

    def __init__(self, inner: Any, script: list[int], eos: int) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.generation_config = inner.generation_config
        self.script = [*script, eos]
        self.step = 0

    @property
    def device(self) -> Any:
        return self.inner.device

    def forward(
        self,
        input_ids: Any,
        attention_mask: Any,
        position_ids: Any,
        cache: Any = None,
        use_cache: bool = True,
        logits_to_keep: int = 0,
    ) -> Any:
        out = self.inner(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
        )
        self.step = 0 if input_ids.shape[1] > 1 else self.step + 1
        forced = torch.full_like(out.logits[:, -1, :], -1e9)
        forced[:, self.script[min(self.step, len(self.script) - 1)]] = 0.0
        out.logits[:, -1, :] = forced
        return out
