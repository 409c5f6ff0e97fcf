"""``tokenize_task``: instructions → left-padded token ids and mask (host stage), with the
per-episode cache that keeps the tokenizer off the control loop's hot path.

Left padding keeps every sample's image, state and action tokens at the same columns (see
:mod:`embodied_mm.model.modeling_vla`). The tokenizer is a ``tokenizers.Tokenizer``: the
PyTorch policy passes its transformers tokenizer's backend, the onnxruntime policy loads the
same ``tokenizer.json``, so both get the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embodied_mm.features import TASK
from embodied_mm.processor.core import Resources, Step

# LeRobot's names for the tokenised instruction.
TOKENS = "observation.language.tokens"  # int64 (B, L)
TOKENS_MASK = "observation.language.attention_mask"  # int64 (B, L), 1 = real; None = no padding
CACHE_LIMIT = 1024  # instructions cached before the cache is cleared (long-running servers)


@dataclass
class TokenizeTaskParams:
    max_tokens: int  # longer instructions are cut
    pad_id: int

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1; got {self.max_tokens}")


class TokenizeTask(Step):
    name = "tokenize_task"
    stage = "host"
    side = "input"
    Params = TokenizeTaskParams

    def __init__(self, params: TokenizeTaskParams, tokenizer: Any) -> None:
        if tokenizer is None:
            raise ValueError("tokenize_task needs the checkpoint's tokenizer")
        self.params = params
        self.tokenizer = tokenizer
        # Runtime option, not saved: pad every batch to this many tokens with an explicit mask
        # (fixed-shape graphs); None pads to the batch's longest and drops an all-ones mask.
        self.fixed_length: int | None = None
        self._cache: dict[str, list[int]] = {}  # instruction → ids, reset per episode

    @classmethod
    def from_params(cls, params: TokenizeTaskParams, resources: Resources) -> TokenizeTask:
        return cls(params, resources.tokenizer)

    def reset(self) -> None:
        """Drop the cached ids; safe while another thread is inside :meth:`encode`."""
        self._cache.clear()

    def encode(self, tasks: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Instructions → left-padded ids (B, L) and mask (B, L) (None when nothing is padded
        and no fixed length is set)."""
        rows: list[list[int]] = []
        for task in tasks:
            # One lookup, then only the local: a reset() (or the bound below) clearing the
            # cache from another thread between a check and a second lookup cannot lose it.
            ids = self._cache.get(task)
            if ids is None:
                if len(self._cache) > CACHE_LIMIT:
                    self._cache.clear()
                encoded = self.tokenizer.encode(task, add_special_tokens=False).ids
                ids = self._cache[task] = self.wrap(list(encoded[: self.params.max_tokens]))
            rows.append(ids)
        width = self.fixed_length or max(1, max(len(r) for r in rows))
        if self.fixed_length is None and all(len(r) == width for r in rows):
            return np.array(rows, dtype=np.int64), None  # the usual control-loop case
        ids = np.full((len(rows), width), self.params.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r) :] = r
                mask[i, width - len(r) :] = 1
        return ids, mask

    @property
    def max_length(self) -> int:
        """The longest ids an instruction gives: what a fixed-shape graph pads to."""
        return self.params.max_tokens

    def wrap(self, ids: list[int]) -> list[int]:
        """The ids of one instruction as the model reads them (a prompt format around them:
        ``vlm_prompt``); here unchanged."""
        return ids

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch[TOKENS], batch[TOKENS_MASK] = self.encode(batch[TASK])
        return batch
