"""The sampler's step after the head in one launch: acceptance, the next canvas, the stop test and the state.

After the sampling head, engine/runtime/generate.py `advance` (the reference) sorts each canvas' entropies to accept
the lowest ones under the entropy bound, builds the next canvas from the draws and the renoising tokens,
tests stability and confidence, and moves every field of the batch state on for the rows still running:
about thirty launches on [B, L] tensors of a few kilobytes, each a few microseconds of a step that should
take about 8 ms. Here one program per row does all of it in registers and writes the state in place.

The acceptance needs no sort: a position's entropy "before" it in ascending order is the sum of the
entropies that sort ahead of it (lower, or equal at a lower position: a stable sort's order), taken over the
canvas in chunks. The sums run in another order than the reference's cumulative sum, so a position whose
preceding sum lies within float32 rounding of the bound may go the other way; likewise the mean entropy of
the stop test at the confidence threshold. Tested against `advance` on CPU through TRITON_INTERPRET=1.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

CHUNK = 16  # positions compared at a time in the acceptance sums: a [BLOCK_L, 16] tile stays in registers


@triton.jit
def _advance_kernel(
    entropy_ptr, samples_ptr, argmax_ptr, renoise_ptr,  # this step's [B, L]
    canvas_ptr, state_argmax_ptr, state_entropy_ptr, accepted_ptr, history_ptr,  # the state's, written in place
    running_ptr, cur_step_ptr, steps_done_ptr, self_cond_mask_ptr, stopped_ptr,  # [B]
    length, stride_hk, stride_hb, entropy_bound, confidence_threshold,
    HISTORY: tl.constexpr, BLOCK_L: tl.constexpr, CHUNK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    running = tl.load(running_ptr + row) != 0
    if not running:  # a row that is not running keeps its state
        tl.store(stopped_ptr + row, 0)
        return
    cols = tl.arange(0, BLOCK_L)
    ok = cols < length
    offsets = row * length + cols
    entropy = tl.load(entropy_ptr + offsets, mask=ok, other=float("inf"))

    # accepted: the entropies that sort ahead of each position sum to at most the bound
    before = tl.zeros((BLOCK_L,), tl.float32)
    for start in range(0, BLOCK_L, CHUNK):
        others = start + tl.arange(0, CHUNK)
        other = tl.load(entropy_ptr + row * length + others, mask=others < length, other=float("inf"))
        ahead = (other[None, :] < entropy[:, None]) | ((other[None, :] == entropy[:, None]) &
                                                       (others[None, :] < cols[:, None]))
        before += tl.sum(tl.where(ahead & (others < length)[None, :], other[None, :], 0.0), axis=1)
    accepted = before <= entropy_bound

    argmax = tl.load(argmax_ptr + offsets, mask=ok, other=0)
    # the stop test: the argmax canvas equals each of the last HISTORY ones, and the mean entropy is low
    stable = True
    for k in tl.static_range(HISTORY):
        older = tl.load(history_ptr + k * stride_hk + row * stride_hb + cols, mask=ok, other=0)
        stable = stable & (tl.sum((ok & (older != argmax)).to(tl.int32), axis=0) == 0)
    for k in tl.static_range(HISTORY):  # each thread moves its own columns: no other thread reads them
        if k + 1 < HISTORY:
            newer = tl.load(history_ptr + (k + 1) * stride_hk + row * stride_hb + cols, mask=ok, other=0)
        else:
            newer = argmax
        tl.store(history_ptr + k * stride_hk + row * stride_hb + cols, newer, mask=ok)
    confident = tl.sum(tl.where(ok, entropy, 0.0), axis=0) / length < confidence_threshold

    samples = tl.load(samples_ptr + offsets, mask=ok, other=0)
    renoise = tl.load(renoise_ptr + offsets, mask=ok, other=0)
    tl.store(canvas_ptr + offsets, tl.where(accepted, samples, renoise), mask=ok)
    tl.store(state_argmax_ptr + offsets, argmax, mask=ok)
    tl.store(state_entropy_ptr + offsets, entropy, mask=ok)
    tl.store(accepted_ptr + offsets, accepted.to(tl.int1), mask=ok)
    tl.store(self_cond_mask_ptr + row, 1)
    tl.store(steps_done_ptr + row, tl.load(steps_done_ptr + row) + 1)
    cur_step = tl.load(cur_step_ptr + row) - 1
    tl.store(cur_step_ptr + row, cur_step)
    stopped = (stable & confident) | (cur_step == 0)
    tl.store(stopped_ptr + row, stopped.to(tl.int1))
    tl.store(running_ptr + row, (~stopped).to(tl.int1))


def advance(canvas, argmax, entropy, accepted, history, running, cur_step, steps_done, self_cond_mask,
            new_samples, new_argmax, new_entropy, renoise, entropy_bound: float,
            confidence_threshold: float) -> torch.Tensor:
    """engine/runtime/generate.py `advance` in one launch, the state's tensors updated in place: canvas, argmax,
    accepted [B, L], entropy [B, L] fp32, history [K, B, L] (its rows may be a view of a bigger batch's),
    running, self_cond_mask [B] bool, cur_step [B] int32, steps_done [B] int64; this step's samples, argmax,
    entropy and renoising tokens [B, L]. Returns the rows that stopped, [B] bool."""
    rows, length = canvas.shape
    for name, tensor in (("canvas", canvas), ("argmax", argmax), ("entropy", entropy), ("accepted", accepted),
                         ("samples", new_samples), ("new argmax", new_argmax), ("new entropy", new_entropy),
                         ("renoise", renoise)):
        if tensor.shape != (rows, length) or not tensor.is_contiguous():
            raise ValueError(f"advance: {name} must be a contiguous [{rows}, {length}] tensor, not "
                             f"{list(tensor.shape)}")
    if history.shape[1:] != (rows, length) or (history.numel() and history.stride(2) != 1):
        raise ValueError(f"advance: history must be [K, {rows}, {length}] with contiguous rows")
    stopped = torch.empty(rows, dtype=torch.bool, device=canvas.device)
    _advance_kernel[(rows,)](
        new_entropy, new_samples, new_argmax, renoise, canvas, argmax, entropy, accepted, history,
        running, cur_step, steps_done, self_cond_mask, stopped,
        length, history.stride(0), history.stride(1), float(entropy_bound), float(confidence_threshold),
        HISTORY=history.shape[0], BLOCK_L=max(triton.next_power_of_2(length), CHUNK), CHUNK=CHUNK,
    )
    return stopped
