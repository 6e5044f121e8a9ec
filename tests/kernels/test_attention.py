"""kernels/attention.py against its reference (the engine's cat + scaled_dot_product_attention path) on odd
shapes, with fresh random inputs, the output poisoned with NaN and every cache slot the mask excludes set to
NaN: an element the kernel leaves unwritten, or a slot it reads that it should not, shows."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from engine.model.cache import KVCache, decoder_masks
from engine.model.config import FULL, SLIDING
from engine.model.ops import REFERENCE_OPS
from engine.runtime.ops import kernel_ops
from engine.weights.checkpoint import load_model
from kernels.attention import canvas_attention, canvas_attention_ref

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# The interpreter's bfloat16 dot is broken (Triton 3.6): CPU runs cover float32 and float16.
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])

# Bounds on max |kernel - reference| in units of max |v| (the output is a convex combination of value rows).
# The reference runs in float32 on the same (rounded) inputs, so only the kernel's own roundings count.
# Float32: both sides sum in float32 in another order, and the kernel's exp2(x log2 e) differs from exp(x) by
# a few ulp: ~1e-6; one key too many or too few moves the output by its weight, ~1/visible keys >= 1e-3.
# Float16 and bfloat16: the scores are exact products summed in float32 like the reference's; the kernel
# rounds the softmax weights to the value dtype before the weighted sum and the output once at the end, each
# at most one rounding (2^-11 in float16, 2^-8 in bfloat16) of max |v|: the bounds are those two roundings
# with 50% to spare.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 1.5e-3, torch.bfloat16: 1.2e-2}

# (canvas length, query heads, kv heads, head dim, committed lengths of the cache rows, batch rows (None: all),
# sliding window (None: a global layer), which start and kv_len the caller passes):
#  decode: kv_len the batch's longest prefix, start the oldest slot a window reaches (engine/model/network.py decode);
#  graph: kv_len the whole cache, start 0 (engine/runtime/graphs.py); running: both from the first row alone, so the
#  other rows' prefixes are cut at kv_len (engine/runtime/scheduler.py, rows that are not denoising).
CASES = [
    (7, 4, 2, 16, [40, 3, 25, 0, 58], [3, 0, 4], 24, "decode"),  # tiny sliding: an empty row, windows cut in
    (33, 4, 1, 32, [1, 17, 50], None, None, "decode"),  # tiny global: 4 heads a group, a canvas of two tiles
    (19, 6, 3, 64, [0, 5, 37, 100, 63], [4, 2, 3], 9, "graph"),  # a window far smaller than the prefix
    (11, 3, 3, 128, [90, 2, 45], [2, 1, 0], 30, "running"),  # one head a group; prefixes cut by kv_len
    (5, 16, 2, 512, [30, 7], None, None, "graph"),  # the global layers' layout: 8 heads a group, head dim 512
    (3, 16, 8, 256, [1030, 1500], [1, 0], 1024, "decode"),  # the sliding layers' layout and window
]



def bounds(lengths: torch.Tensor, window: int | None, mode: str, max_len: int) -> tuple[int, int]:
    """(start, kv_len) as the engine passes them for a batch whose rows have these committed lengths."""
    if mode == "graph":
        return 0, max_len
    if mode == "running":
        lengths = lengths[:1]
    kv_len = int(lengths.max())
    return (0 if window is None else max(0, int(lengths.min()) - (window - 1))), kv_len


def inputs(case, dtype, seed: int):
    canvas_len, num_heads, num_kv_heads, head_dim, lengths, rows, window, mode = case
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    max_len = int(lengths.max()) + 13  # slots past every row's prefix: garbage the kernel must not read
    batch = len(rows) if rows is not None else len(lengths)
    # scores q.k with a standard deviation of 2: a softmax spread over many keys, not an argmax
    scale = (4 / head_dim) ** 0.25

    def randn(*shape, factor=1.0):
        return (torch.randn(*shape, generator=generator) * factor).to(dtype)

    q = randn(batch, canvas_len, num_heads, head_dim, factor=scale)
    k = randn(batch, canvas_len, num_kv_heads, head_dim, factor=scale)
    v = randn(batch, canvas_len, num_kv_heads, head_dim)
    cache_keys = randn(len(lengths), max_len, num_kv_heads, head_dim, factor=scale)
    cache_values = randn(len(lengths), max_len, num_kv_heads, head_dim)
    rows = None if rows is None else torch.tensor(rows)
    start, kv_len = bounds(lengths if rows is None else lengths[rows], window, mode, max_len)
    return q, k, v, cache_keys, cache_values, lengths, rows, start, kv_len, window


def visible_slots(lengths, rows, start, kv_len, window, max_len) -> torch.Tensor:
    """[cache rows, max_len] bool: the slots some canvas of the batch attends to (decoder_masks' definition)."""
    slots = torch.arange(max_len)
    length = lengths[:, None]
    visible = (slots >= start) & (slots < kv_len) & (slots < length)
    if window is not None:
        visible &= slots >= length - (window - 1)
    in_batch = torch.zeros(len(lengths), dtype=torch.bool)
    in_batch[slice(None) if rows is None else rows] = True
    return visible & in_batch[:, None]


def on_device(*tensors):
    return [t.to(DEVICE) if isinstance(t, torch.Tensor) else t for t in tensors]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: f"L{case[0]}-H{case[1]}-Hkv{case[2]}-D{case[3]}-{case[7]}")
def test_matches_the_reference(case, dtype, poisoned):
    seed = sum(case[:4]) + sum(case[4])
    q, k, v, cache_keys, cache_values, lengths, rows, start, kv_len, window = inputs(case, dtype, seed)
    visible = visible_slots(lengths, rows, start, kv_len, window, cache_keys.shape[1])
    nan = torch.tensor(float("nan"), dtype=dtype)
    poisoned_keys = torch.where(visible[:, :, None, None], cache_keys, nan)
    poisoned_values = torch.where(visible[:, :, None, None], cache_values, nan)
    as_float = [t.float() for t in (q, k, v, cache_keys, cache_values)]
    want = canvas_attention_ref(*on_device(*as_float, lengths, rows), start, kv_len, window)
    got = canvas_attention(*on_device(q, k, v, poisoned_keys, poisoned_values, lengths, rows), start, kv_len, window)
    seen_values = torch.where(visible[:, :, None, None], cache_values.float(), 0.0)
    scale = max(float(v.float().abs().max()), float(seen_values.abs().max()))
    error = float((got.float() - want).abs().max())
    assert got.dtype == dtype and got.shape == q.shape
    assert not torch.isnan(got).any(), f"seed {seed}"
    assert error <= TOLERANCE[dtype] * scale, f"seed {seed}: {error} > {TOLERANCE[dtype]} x {scale}"


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[3]], ids=["decode", "graph", "running"])
def test_the_reference_is_the_engine_path(case):
    """canvas_attention_ref is the engine's reference attention (engine/model/ops.py) under decoder_masks'
    mask (engine/model/cache.py), start and kv_len included."""
    q, k, v, cache_keys, cache_values, lengths, rows, start, kv_len, window = inputs(case, torch.float32, seed=1)
    selected = lengths if rows is None else lengths[rows]
    min_length = start + window - 1 if start > 0 else 0  # what decoder_masks turns into this start
    masks = decoder_masks(selected, kv_len, q.shape[1], window, min_length)
    assert masks[SLIDING].start == start
    engine = REFERENCE_OPS.attention(q, k, v, cache_keys, cache_values, lengths, rows, masks[SLIDING], kv_len, window)
    ref = canvas_attention_ref(q, k, v, cache_keys, cache_values, lengths, rows, start, kv_len, window)
    assert torch.equal(ref, engine)
    engine = REFERENCE_OPS.attention(q, k, v, cache_keys, cache_values, lengths, rows, masks[FULL], kv_len, None)
    ref = canvas_attention_ref(q, k, v, cache_keys, cache_values, lengths, rows, 0, kv_len, None)
    assert torch.equal(ref, engine)


def test_decode_through_the_kernel_matches_the_reference_decoder():
    """The attention op of engine/model/ops.py: decode with every layer's attention fused equals decode without, on
    the tiny model with prefixes longer than its window (24), of different lengths, and on a subset of cache rows."""
    loaded = load_model("tiny", DEVICE, torch.float32)
    model, args = loaded.model, loaded.args
    generator = torch.Generator().manual_seed(11)
    lengths = [37, 6, 29]
    cache = KVCache.allocate(args, len(lengths), max(lengths) + args.canvas_length, torch.float32, DEVICE)
    for layer in cache.keys + cache.values:  # stands in for what the encoder wrote, garbage past each length too
        layer.copy_(torch.randn(layer.shape, generator=generator))
    cache.lengths.copy_(torch.tensor(lengths))
    canvas = torch.randint(3, args.vocab_size, (len(lengths), args.canvas_length), generator=generator).to(DEVICE)
    positions = cache.lengths[:, None] + torch.arange(args.canvas_length, device=DEVICE)
    rows = torch.tensor([2, 0], device=DEVICE)
    with torch.no_grad():
        want = [model.decode(canvas, positions, cache), model.decode(canvas[:2], positions[rows], cache, rows=rows)]
        model.use_ops(replace(REFERENCE_OPS, attention=kernel_ops().attention))  # only the attention a kernel
        got = [model.decode(canvas, positions, cache), model.decode(canvas[:2], positions[rows], cache, rows=rows)]
    # float32 logits soft-capped at 30 after four layers: the attention outputs agree to ~1e-6 (the bound in
    # TOLERANCE), which the layers carry through at the same relative size
    for reference, fused in zip(want, got, strict=True):
        torch.testing.assert_close(fused, reference, rtol=0, atol=1e-4)


def test_rejects_a_head_dim_that_is_not_one_power_of_two_tile():
    q = torch.zeros(1, 3, 2, 48)
    k = torch.zeros(1, 3, 1, 48)
    cache = torch.zeros(1, 8, 1, 48)
    with pytest.raises(ValueError, match="head dimension must be a power of two >= 16"):
        canvas_attention(q, k, k, cache, cache, torch.tensor([4]), None, 0, 4, None)
