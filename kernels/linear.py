"""FP8 and NF4 linears in one launch: the attention and dense-MLP projections read their weights as stored.

Without it, engine/quantize.py's Fp8Linear and Nf4Linear dequantize their whole weight to the activation
dtype on every call and hand it to F.linear: for the 26B-A4B's 2.2B attention and dense-MLP weights that is
4.4 GB of bf16 written and read again every step (about 3 ms of an H100's bandwidth, against an 8 ms goal
for FP8), and NF4's dequantisation is a dozen more kernels a projection. This is kernels/moe.py's grouped
GEMM with its routing switched off (DENSE): the same in-register FP8 upcast with the per-row scale on the
accumulator, or NF4 unpacking through the codebook, over one weight matrix. Its reference is those modules'
own forward (tests/kernels/test_linear.py).

`gelu_gated` is a dense MLP's gelu_tanh(gate(x)) * up(x) from gate and up stacked in one weight
(engine/merged.py): for FP8 and NF4 the same grouped GEMM with its GELU gate (GATED), as the experts' gate/up
launch, one launch where the reference takes five (two linears, their dequantisations aside, the GELU, the
product); for bf16 one cuBLAS GEMM and `_gelu_mul_kernel`, three launches down to two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from kernels.moe import DEFAULT_CONFIG, NF4_BLOCK, _grouped_gemm, gelu_tanh


def quantized_linear(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, codebook: torch.Tensor | None,
                     in_features: int, config: dict | None = None, gated: bool = False) -> torch.Tensor:
    """x [..., in_features] -> [..., out]: weight e4m3 [out, in] with per-row scale [out], or NF4 codes
    [out, 32 x blocks] uint8 with absmax [out, blocks] and the 16-entry codebook (engine/quantize.py).
    gated: the weight's rows are gate's then up's, and the result gelu_tanh(gate) * up, [..., out / 2]."""
    config = {**DEFAULT_CONFIG, **(config or {})}
    block_m, block_n, block_k = config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"]
    nf4 = weight.dtype == torch.uint8
    if nf4 and block_k % NF4_BLOCK:
        raise ValueError(f"BLOCK_K must be a multiple of the NF4 block ({NF4_BLOCK}) with NF4 weights, got {block_k}")
    rows = x.reshape(-1, in_features).contiguous()
    num_rows, out_features = rows.shape[0], weight.shape[0] // 2 if gated else weight.shape[0]
    out = torch.empty(num_rows, out_features, dtype=x.dtype, device=x.device)
    absmax_strides = (scale.stride(0), scale.stride(1)) if nf4 else (scale.stride(0), 0)
    _grouped_gemm[(triton.cdiv(num_rows, block_m), triton.cdiv(out_features, block_n))](
        rows, weight, scale, scale if codebook is None else codebook, out, rows,
        rows, rows, rows,  # no routing: the sorted ids, tile experts and padded count are never read
        num_rows, out_features, in_features,
        rows.stride(0), 0, weight.stride(0), weight.stride(1), 0, *absmax_strides, out.stride(0),
        top_k=1, A_BY_TOKEN=True, GATED=gated, SCALED=not nf4, NF4=nf4, QBLOCK=NF4_BLOCK if nf4 else 1,
        ROUTED=False, DENSE=True, PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=config["num_warps"],
        num_stages=config["num_stages"],
    )
    return out.view(*x.shape[:-1], out_features)


def gelu_gated(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None, codebook: torch.Tensor | None,
               in_features: int) -> torch.Tensor:
    """gelu_tanh(x gate^T) * (x up^T), [..., I], from weight [2I, in] holding gate's rows then up's: bf16 (scale
    None), or FP8 or NF4 with their scales as in `quantized_linear`."""
    if scale is not None:
        return quantized_linear(x, weight, scale, codebook, in_features, gated=True)
    return gelu_mul(F.linear(x, weight))


@triton.jit
def _gelu_mul_kernel(in_ptr, out_ptr, inter: tl.constexpr, BLOCK: tl.constexpr):
    """Rows [N, 2I] -> [N, I]. The reference rounds the GELU to the activation dtype before the product; so
    does this, with the experts' GELU (kernels/moe.py)."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = cols < inter
    dtype = out_ptr.dtype.element_ty
    gate = tl.load(in_ptr + row * 2 * inter + cols, mask=ok, other=0.0).to(tl.float32)
    up = tl.load(in_ptr + row * 2 * inter + inter + cols, mask=ok, other=0.0).to(tl.float32)
    gelu = gelu_tanh(gate).to(dtype).to(tl.float32)
    tl.store(out_ptr + row * inter + cols, (gelu * up).to(dtype), mask=ok)


def gelu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """[..., 2I] (gate's columns, then up's) -> gelu_tanh(gate) * up, [..., I], in one launch."""
    inter = gate_up.shape[-1] // 2
    rows = gate_up.reshape(-1, 2 * inter).contiguous()
    out = torch.empty(rows.shape[0], inter, dtype=gate_up.dtype, device=gate_up.device)
    block = min(1024, triton.next_power_of_2(inter))
    _gelu_mul_kernel[(rows.shape[0], triton.cdiv(inter, block))](rows, out, inter=inter, BLOCK=block)
    return out.view(*gate_up.shape[:-1], inter)
