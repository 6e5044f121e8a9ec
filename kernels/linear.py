"""FP8 and NF4 linears in one launch: the attention and dense-MLP projections read their weights as stored.

Without it, engine/weights/quantize.py's Fp8Linear and Nf4Linear dequantize their whole weight to the activation
dtype on every call and hand it to F.linear: for the 26B-A4B's 1.65B attention and dense-MLP weights that
is 3.3 GB of bf16 written and read again every step (about 2 ms of an H100's bandwidth, against an 8 ms goal
for FP8), and NF4's dequantisation is a dozen more kernels a projection. This is kernels/moe.py's grouped
GEMM with its routing switched off (DENSE): the same in-register FP8 upcast with the per-row scale on the
accumulator, or NF4 unpacking through the codebook, over one weight matrix. Its reference is those modules'
own forward (tests/kernels/test_linear.py).

`gelu_gated` is a dense MLP's gelu_tanh(gate(x)) * up(x) from gate and up stacked in one weight
(engine/model/fused.py): for FP8 and NF4 the same grouped GEMM with its GELU gate (GATED), as the experts' gate/up
launch, one launch where the reference takes five (two linears, their dequantisations aside, the GELU, the
product); for bf16 one cuBLAS GEMM and `_gelu_mul_kernel`, three launches down to two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from kernels import tuning
from kernels.moe import NF4_BLOCK, NF4_WIDE_STAGES, _grouped_gemm, gelu_tanh

# Every row tile reads the whole weight again (from L2 at best): with the experts' 16 x 64 tiles a batch-1
# canvas (256 rows) read the 1.65 GB of FP8 attention and dense-MLP weights 16 times, 26 GB of L2 traffic a
# step, 105 GB at batch 4. 64 rows up to a canvas keep four reads (6.6 GB), 128 rows past it eight at batch 4
# (13 GB); 128 columns and 8 warps (88 to 288 programs on 132 SMs at batch 1 for the 2816- to 9216-wide
# projections). A gated launch keeps two accumulators: 64 columns (132 programs for the dense MLP's 2112 at
# batch 1; at 128 columns and 128 rows a thread needs 241 registers with FP8 weights, 255 with NF4: sm_90,
# tests/kernels/offline_compile.py). NF4 takes 2 stages, as the experts' wide tiles do (kernels/moe.py
# NF4_WIDE_STAGES: at 3 a batch-4 launch needs 105 to 113 KB of shared memory, Ada has 99). Tuned entries in
# kernels/configs/linear.json win.
DEFAULT_CONFIG = {"BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 8, "num_stages": 3}
CANVAS_ROWS = 256  # one canvas: up to here 64-row tiles, past it 128


def row_tile(num_rows: int) -> int:
    """BLOCK_M for this many rows: the power of two that holds them, 16 to 64 up to a canvas, 128 beyond."""
    return 128 if num_rows > CANVAS_ROWS else max(16, min(64, triton.next_power_of_2(num_rows)))


def default_config(num_rows: int, gated: bool, nf4: bool) -> dict:
    block_m = row_tile(num_rows)
    return {**DEFAULT_CONFIG, "BLOCK_M": block_m, **({"BLOCK_N": 64} if gated else {}),
            **({"num_stages": NF4_WIDE_STAGES} if nf4 else {})}


def config_key(out_features: int, in_features: int, dtype: torch.dtype, weight_format: torch.dtype | str,
               gated: bool) -> str:
    """How kernels/configs/linear.json names a projection (sizes there: rows): output (the gated result's)
    and input features, activation and weight dtypes (NF4: "nf4"), and whether the GELU gate is fused."""
    return (f"N={out_features},K={in_features},{tuning.dtype_name(dtype)},{tuning.dtype_name(weight_format)}"
            f"{',gated' if gated else ''}")


def quantized_linear(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, codebook: torch.Tensor | None,
                     in_features: int, config: dict | None = None, gated: bool = False) -> torch.Tensor:
    """x [..., in_features] -> [..., out]: weight e4m3 [out, in] with per-row scale [out], or NF4 codes
    [out, 32 x blocks] uint8 with absmax [out, blocks] and the 16-entry codebook (engine/weights/quantize.py).
    gated: the weight's rows are gate's then up's, and the result gelu_tanh(gate) * up, [..., out / 2].
    config: launch settings over `default_config` (else kernels/configs/linear.json's for this shape)."""
    nf4 = weight.dtype == torch.uint8
    rows = x.reshape(-1, in_features).contiguous()
    num_rows, out_features = rows.shape[0], weight.shape[0] // 2 if gated else weight.shape[0]
    key = config_key(out_features, in_features, x.dtype, "nf4" if nf4 else weight.dtype, gated)
    config = {**default_config(num_rows, gated, nf4), **(config or tuning.tuned("linear", x.device, key, num_rows))}
    block_m, block_n, block_k = config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"]
    if nf4 and block_k % NF4_BLOCK:
        raise ValueError(f"BLOCK_K must be a multiple of the NF4 block ({NF4_BLOCK}) with NF4 weights, got {block_k}")
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
