"""The encoder's KV cache (fixed-size buffers, one row per sequence) and the attention masks over it.

Layout: per layer, keys and values `[rows, max_len, kv_heads, head_dim]`, preallocated. Row r holds its
sequence from slot 0 (right padding): token t sits at slot t, which is also its RoPE position, and
`lengths[r]` counts the committed tokens. Slots at or past `lengths[r]` hold garbage (the padding of a
batched prefill) that every mask excludes and the next commit overwrites. Rows are independent, so a
scheduler can treat them as slots that requests occupy and leave.

Sliding layers keep the full history too and read only their window of it: simple and exact; a ring buffer
of `sliding_window - 1 + canvas_length` slots per row is the memory optimisation left for long contexts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.model.config import FULL, SLIDING, ModelArgs


@dataclass
class KVCache:
    keys: list[torch.Tensor]  # per layer [rows, max_len, kv_heads, head_dim]
    values: list[torch.Tensor]
    lengths: torch.Tensor  # [rows] int64, committed tokens per row

    @classmethod
    def allocate(
        cls, args: ModelArgs, num_rows: int, max_len: int, dtype: torch.dtype, device: torch.device | str
    ) -> KVCache:
        if max_len > args.max_context:
            raise ValueError(f"cache max_len {max_len} exceeds the model's max_context {args.max_context}")
        shapes = [(num_rows, max_len, args.layer_kv_heads(i), args.layer_head_dim(i)) for i in range(args.num_layers)]
        return cls(
            keys=[torch.zeros(shape, dtype=dtype, device=device) for shape in shapes],
            values=[torch.zeros(shape, dtype=dtype, device=device) for shape in shapes],
            lengths=torch.zeros(num_rows, dtype=torch.long, device=device),
        )

    @property
    def num_rows(self) -> int:
        return self.lengths.shape[0]

    @property
    def max_len(self) -> int:
        return self.keys[0].shape[1]


@dataclass(frozen=True)
class AttentionMask:
    """Which cached slots a layer kind reads: slots [start, kv_len) (then the canvas, for the decoder), and the
    boolean mask over them. Sliding layers start at the oldest slot any row's window reaches, so they read
    `sliding_window - 1` slots, not the whole history (and, at batch size 1, exactly the keys transformers'
    sliding cache holds, which keeps the float results identical)."""

    start: int
    mask: torch.Tensor  # [B, 1, T or 1, kv_len - start (+ L)] bool


def encoder_masks(
    positions: torch.Tensor, kv_len: int, sliding_window: int, first_position: int
) -> dict[str, AttentionMask]:
    """Causal masks for tokens at `positions` [B, T] over cache slots [start, kv_len): [B, 1, T, kv_len - start].

    The new tokens are written into the cache before attention, so slot == position for keys too. A sliding
    layer sees the `sliding_window` latest positions, itself included (transformers' window semantics).
    first_position: the lowest positions[:, 0] (a host int, so slicing needs no sync).
    """
    start = max(0, first_position - (sliding_window - 1))
    slots = torch.arange(kv_len, device=positions.device)
    distance = positions[:, None, :, None] - slots  # [B, 1, T, kv_len]
    causal = distance >= 0
    sliding = causal & (distance < sliding_window)
    return {FULL: AttentionMask(0, causal), SLIDING: AttentionMask(start, sliding[..., start:])}


def decoder_masks(
    lengths: torch.Tensor, kv_len: int, canvas_length: int, sliding_window: int, min_length: int
) -> dict[str, AttentionMask]:
    """Bidirectional canvas masks over cache slots [start, kv_len) + canvas: [B, 1, 1, kv_len - start + L].

    The canvas sees the whole canvas and the committed prefix; in sliding layers only its last
    `sliding_window - 1` tokens (what transformers' sliding cache layer keeps).
    min_length: the lowest of `lengths` (a host int).
    """
    start = max(0, min_length - (sliding_window - 1))
    slots = torch.arange(kv_len, device=lengths.device)
    committed = slots < lengths[:, None]  # [B, kv_len]
    in_window = slots >= lengths[:, None] - (sliding_window - 1)
    canvas = torch.ones(lengths.shape[0], canvas_length, dtype=torch.bool, device=lengths.device)
    full = torch.cat((committed, canvas), dim=1)
    sliding = torch.cat(((committed & in_window)[:, start:], canvas), dim=1)
    return {FULL: AttentionMask(0, full[:, None, None, :]), SLIDING: AttentionMask(start, sliding[:, None, None, :])}


def cached_rows(cache_layer: torch.Tensor, rows: torch.Tensor | None, start: int, kv_len: int) -> torch.Tensor:
    """Slots [start, kv_len) of the given cache rows (a view when all rows, a gather otherwise)."""
    return cache_layer[:, start:kv_len] if rows is None else cache_layer[rows, start:kv_len]
