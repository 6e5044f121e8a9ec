"""The MoE router in one launch.

engine/model/layers.py's `Router` is ten kernels a layer (the scale-free norm, two products, the 128-wide
projection, softmax, top-k, the renormalising sum and division, the per-expert scale's gather and product),
300 a step of the 26B-A4B on tensors of at most [tokens, 2816]: launch time, not work. Here a program takes
BLOCK_M tokens through all of it: the sum of squares over the row, then the normalised, scaled row times the
projection on the tensor cores (the 128 experts are one tile), the softmax in float32, the top k by repeated
argmax (descending, the lower expert id first on a tie), renormalised and scaled.

Each step rounds to the activation dtype where the reference's does (its norm's output, both products, the
projection's output), so float32 results agree to rounding and half-precision ones but where a rounding flip
or an exact tie between two experts' probabilities picks another expert (torch.topk leaves the order of ties
unspecified). Tested against the engine's Router on CPU through TRITON_INTERPRET=1; compiled for
sm_90/89/80 by tests/kernels/offline_compile.py.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_M, BLOCK_D = 16, 64  # 16 tokens: the smallest tensor-core tile; a 256-token canvas makes 16 programs


@triton.jit
def _router_kernel(
    x_ptr, scale_ptr, proj_ptr, expert_scale_ptr, weights_ptr, ids_ptr, num_rows, eps, root_size,
    dim: tl.constexpr, num_experts: tl.constexpr, top_k: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < num_rows
    rows64 = rows.to(tl.int64)
    experts = tl.arange(0, BLOCK_E)
    expert_ok = experts < num_experts
    dtype = x_ptr.dtype.element_ty

    squares = tl.zeros((BLOCK_M,), tl.float32)
    for d0 in range(0, dim, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        x = tl.load(x_ptr + rows64[:, None] * dim + ds[None, :], mask=row_ok[:, None] & (ds < dim)[None, :],
                    other=0.0).to(tl.float32)
        squares += tl.sum(x * x, axis=1)
    inverse = 1.0 / tl.sqrt(squares / dim + eps)

    logits = tl.zeros((BLOCK_M, BLOCK_E), tl.float32)
    for d0 in range(0, dim, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        d_ok = ds < dim
        x = tl.load(x_ptr + rows64[:, None] * dim + ds[None, :], mask=row_ok[:, None] & d_ok[None, :],
                    other=0.0).to(tl.float32)
        scale = tl.load(scale_ptr + ds, mask=d_ok, other=0.0).to(tl.float32)
        h = (x * inverse[:, None]).to(dtype).to(tl.float32)  # the norm's output
        h = (h * scale[None, :]).to(dtype).to(tl.float32)  # x the learned scale
        h = (h * root_size).to(dtype)  # x hidden^-0.5
        w = tl.load(proj_ptr + experts[None, :] * dim + ds[:, None], mask=expert_ok[None, :] & d_ok[:, None],
                    other=0.0)
        logits = tl.dot(h, w, logits, input_precision=PRECISION)
    logits = tl.where(expert_ok[None, :], logits.to(dtype).to(tl.float32), float("-inf"))
    exps = tl.exp(logits - tl.max(logits, axis=1)[:, None])
    probs = exps / tl.sum(exps, axis=1)[:, None]

    slots = tl.arange(0, BLOCK_K)
    chosen = tl.zeros((BLOCK_M, BLOCK_K), tl.float32)
    chosen_ids = tl.zeros((BLOCK_M, BLOCK_K), tl.int32)
    for k in tl.static_range(top_k):
        best = tl.max(probs, axis=1)
        best_id = tl.argmax(probs, axis=1)  # the first (lowest id) of equal values
        chosen = tl.where(slots[None, :] == k, best[:, None], chosen)
        chosen_ids = tl.where(slots[None, :] == k, best_id[:, None], chosen_ids)
        probs = tl.where(experts[None, :] == best_id[:, None], -1.0, probs)
    slot_ok = row_ok[:, None] & (slots < top_k)[None, :]
    chosen = chosen / tl.sum(chosen, axis=1)[:, None]
    chosen = chosen * tl.load(expert_scale_ptr + chosen_ids, mask=slot_ok, other=0.0).to(tl.float32)
    out = rows64[:, None] * top_k + slots[None, :]
    tl.store(weights_ptr + out, chosen, mask=slot_ok)
    tl.store(ids_ptr + out, chosen_ids.to(tl.int64), mask=slot_ok)


def route(x: torch.Tensor, eps: float, scale: torch.Tensor, root_size: float, proj: torch.Tensor,
          expert_scale: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x [T, D]; the router's norm eps, scale [D], hidden^-0.5, projection [E, D] and per-expert scale [E]
    -> (weights [T, K] float32, expert ids [T, K] int64), as engine/model/layers.py's Router returns them."""
    num_rows, dim = x.shape
    num_experts = proj.shape[0]
    x = x.contiguous()
    weights = torch.empty(num_rows, top_k, dtype=torch.float32, device=x.device)
    ids = torch.empty(num_rows, top_k, dtype=torch.int64, device=x.device)
    _router_kernel[(triton.cdiv(num_rows, BLOCK_M),)](
        x, scale, proj.contiguous(), expert_scale, weights, ids, num_rows, float(eps), float(root_size),
        dim=dim, num_experts=num_experts, top_k=top_k, PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
        BLOCK_M=BLOCK_M, BLOCK_D=BLOCK_D, BLOCK_E=max(16, triton.next_power_of_2(num_experts)),
        BLOCK_K=triton.next_power_of_2(top_k), num_warps=4,
    )
    return weights, ids
