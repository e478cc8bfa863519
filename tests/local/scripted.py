"""Test-only instruments for the local judge: model wrappers, and a record of the rows it runs.

With :class:`Scripted` the judge runs its real code path (batching, caches, digit
reading, parsing); only what the model writes is chosen, so that a test can plant an
exact generation (a verdict, thinking cut off by ``max_new_tokens``) deterministically.
"""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["ModelWrapper", "Scripted", "recording_starts"]

torch = pytest.importorskip("torch")


class ModelWrapper(torch.nn.Module):
    """A test-only stand-in for a causal LM that forwards to the real one; subclasses change one step.

    ``before`` sees each forward's input ids (to count or refuse a batch), ``after`` may change the
    output (to force what the model writes).
    """

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.generation_config = inner.generation_config

    @property
    def device(self) -> Any:
        return self.inner.device

    def before(self, input_ids: Any) -> None:
        """Called with each forward's input ids, before the real model runs."""

    def after(self, input_ids: Any, out: Any) -> Any:
        """The forward's output, as the judge will see it."""
        return out

    def forward(
        self,
        input_ids: Any,
        attention_mask: Any,
        position_ids: Any,
        cache: Any = None,
        use_cache: bool = True,
        logits_to_keep: int = 0,
    ) -> Any:
        self.before(input_ids)
        out = self.inner(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
        )
        return self.after(input_ids, out)


class Scripted(ModelWrapper):
    """A test-only wrapper that makes the real model write ``script`` (then end of text), greedily."""

    def __init__(self, inner: Any, script: list[int], eos: int) -> None:
        super().__init__(inner)
        self.script = [*script, eos]
        self.step = 0

    def after(self, input_ids: Any, out: Any) -> Any:
        self.step = 0 if input_ids.shape[1] > 1 else self.step + 1
        forced = torch.full_like(out.logits[:, -1, :], -1e9)
        forced[:, self.script[min(self.step, len(self.script) - 1)]] = 0.0
        out.logits[:, -1, :] = forced
        return out


def recording_starts(judge: Any) -> list[list[int]]:
    """The token rows of every batch ``judge``'s engine starts from now on (instrumentation only)."""
    rows: list[list[int]] = []
    start = judge.engine.start

    def recording(batch: Any) -> Any:
        rows.extend(list(row) for row in batch)
        return start(batch)

    judge.engine.start = recording
    return rows
