"""Low-bit weights: `--quantize fp8` or `nf4` stores the layers' projections and experts in 8 or 4 bits.

FP8: weight-only e4m3 (the format of Hopper's FP8 tensor cores and of published FP8 checkpoints) with one
float32 scale per output channel (per expert and output channel for the experts): scale = max|row| / 448,
the largest finite e4m3 value, so every row uses the whole range. That halves the weights' memory, which is
what lets the 26B-A4B model fit beside its caches on a 40-48 GB card.

NF4: bitsandbytes' 4-bit NormalFloat, byte for byte what `bitsandbytes.functional.quantize_4bit(w,
blocksize=64, quant_type="nf4")` makes of a weight with w.shape[-1] a multiple of 64 (tests/engine checks it
against bitsandbytes): each block of 64 consecutive weights along the input dimension is divided by its
float32 absmax and rounded to the nearest of 16 fixed levels (NF4_CODE: quantiles of a normal distribution
scaled to [-1, 1], with an exact zero), two 4-bit codes per byte, the even position in the high nibble. No
double quantization (the absmax stays float32: 0.5 extra bits per weight). A [out, in] weight is stored as
uint8 [out, in/2] and absmax [out, in/64]. Rows whose width is not a multiple of 64 (the `tiny` preset's
96- and 32-wide ones; never the 26B-A4B's nor redraft-small's) are zero-padded to the next block: zeros take
code 7 (0.0) and do not change the block's absmax, so the padding costs memory only, at most 63 codes a row.

Both keep in the checkpoint's dtype: the embedding matrix (tied to the sampling head, whose logits feed the
entropy-bound acceptance), the router (few weights, and its rounding would send tokens to other experts),
the self-conditioning MLP (outside the layers, small), norms and scalars. Without `--kernels on` each
projection is dequantized to the activation dtype when it runs (one layer's weights at a time), so the
formats save memory, not time; the fused MoE kernel (kernels/moe.py) reads the experts as stored.

Quantization happens as each tensor is loaded (`load_into`), so a bf16 copy of the whole model never exists.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.model.config import QUANTIZE_FORMATS, ModelArgs, check_choice
from engine.model.layers import Experts
from engine.model.network import DiffusionGemma
from engine.model.ops import REFERENCE_OPS

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj")
NF4_BLOCK = 64  # weights per absmax, along the input dimension
# The 16 levels of NF4 (QLoRA, Dettmers et al. 2023), as float32 values in bitsandbytes' order: code i is level i.
NF4_CODE = (-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
            -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
            0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
            0.7229568362236023, 1.0)
CHUNK = 1 << 24  # weights (un)packed at a time: 64 MB of float32 temporaries however large the tensor


def check_format(name: str | None) -> str:
    return check_choice("quantize", name or "none", QUANTIZE_FORMATS)


def to_fp8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """weight [..., out, in] -> (e4m3 weight, float32 scale [..., out]); zero rows get scale 1."""
    amax = weight.detach().abs().amax(dim=-1).float()
    scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))
    quantized = (weight.float() / scale.unsqueeze(-1)).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return quantized, scale


def from_fp8(quantized: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (quantized.to(torch.float32) * scale.unsqueeze(-1)).to(dtype)


def nf4_codebook(device: torch.device | str | None = None) -> torch.Tensor:
    return torch.tensor(NF4_CODE, dtype=torch.float32, device=device)


def nf4_blocks(width: int) -> int:
    """Absmax blocks of a row `width` weights wide (the last one zero-padded)."""
    return -(-width // NF4_BLOCK)


def to_nf4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """weight [..., out, in] -> (codes uint8 [..., out, 32 * blocks], absmax float32 [..., out, blocks])."""
    *lead, width = weight.shape
    blocks = nf4_blocks(width)
    rows = weight.detach().reshape(-1, width)
    code = nf4_codebook(weight.device)
    bounds = (code[:-1] + code[1:]) / 2  # a value exactly between two levels takes the lower one
    packed = torch.empty(rows.shape[0], blocks * NF4_BLOCK // 2, dtype=torch.uint8, device=weight.device)
    absmax = torch.empty(rows.shape[0], blocks, dtype=torch.float32, device=weight.device)
    step = max(1, CHUNK // (blocks * NF4_BLOCK))
    for start in range(0, rows.shape[0], step):
        chunk = F.pad(rows[start : start + step].float(), (0, blocks * NF4_BLOCK - width))
        chunk = chunk.view(chunk.shape[0], blocks, NF4_BLOCK)
        amax = chunk.abs().amax(dim=-1)  # [n, blocks]; an all-zero block keeps 0 (its codes are all 7)
        # times the reciprocal, not a division: bitsandbytes' rounding, so the codes agree bit for bit
        normalized = (chunk * (1.0 / amax.clamp(min=1e-38)).unsqueeze(-1)).clamp(-1, 1)
        codes = torch.bucketize(normalized, bounds, out_int32=True).to(torch.uint8).view(chunk.shape[0], -1)
        packed[start : start + step] = (codes[:, 0::2] << 4) | codes[:, 1::2]
        absmax[start : start + step] = amax
    return packed.view(*lead, -1), absmax.view(*lead, blocks)


def from_nf4(
    packed: torch.Tensor, absmax: torch.Tensor, codebook: torch.Tensor, width: int, dtype: torch.dtype
) -> torch.Tensor:
    """The inverse of to_nf4 up to rounding: [..., out, width] in `dtype`, level x absmax in float32, then cast."""
    *lead, num_bytes = packed.shape
    blocks = absmax.shape[-1]
    rows, scales = packed.reshape(-1, num_bytes), absmax.reshape(-1, blocks)
    out = torch.empty(rows.shape[0], width, dtype=dtype, device=packed.device)
    step = max(1, CHUNK // (2 * num_bytes))
    for start in range(0, rows.shape[0], step):
        chunk = rows[start : start + step]
        codes = torch.stack((chunk >> 4, chunk & 0xF), dim=-1).view(chunk.shape[0], blocks, NF4_BLOCK)
        values = codebook[codes.int()] * scales[start : start + step].unsqueeze(-1)
        out[start : start + step] = values.view(chunk.shape[0], -1)[:, :width].to(dtype)
    return out.view(*lead, width)


class Fp8Linear(nn.Module):
    """A bias-free nn.Linear whose weight is FP8 with per-output-channel scales."""

    def __init__(self, in_features: int, out_features: int, device: torch.device | str | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Buffer(torch.empty(out_features, in_features, dtype=FP8, device=device))
        self.scale = nn.Buffer(torch.ones(out_features, dtype=torch.float32, device=device))
        self.ops = REFERENCE_OPS  # the model's table (DiffusionGemma.use_ops)

    def load(self, weight: torch.Tensor) -> None:
        self.weight, self.scale = to_fp8(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops.quantized_linear(self, x)  # with the kernels, the weight read as stored: no dequantized copy

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        return from_fp8(self.weight, self.scale, dtype)


class Fp8Experts(Experts):
    """The grouped experts with FP8 weights: gate_up [E, 2I, D] and down [E, D, I], scales [E, out]."""

    def __init__(self, num_experts: int, hidden_size: int, intermediate_size: int, device=None):
        nn.Module.__init__(self)  # not Experts.__init__: its bf16 parameters are what this replaces
        self.ops = REFERENCE_OPS  # the model's table (DiffusionGemma.use_ops)
        self.gate_up_proj = nn.Buffer(torch.empty(num_experts, 2 * intermediate_size, hidden_size, dtype=FP8,
                                                  device=device))
        self.down_proj = nn.Buffer(torch.empty(num_experts, hidden_size, intermediate_size, dtype=FP8, device=device))
        self.gate_up_scale = nn.Buffer(torch.ones(num_experts, 2 * intermediate_size, device=device))
        self.down_scale = nn.Buffer(torch.ones(num_experts, hidden_size, device=device))

    def load(self, name: str, weight: torch.Tensor) -> None:
        quantized, scale = to_fp8(weight)
        setattr(self, name, quantized)
        setattr(self, name.removesuffix("_proj") + "_scale", scale)

    def weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return (from_fp8(self.gate_up_proj, self.gate_up_scale, dtype),
                from_fp8(self.down_proj, self.down_scale, dtype))

    def stored_weights(self):
        return self.gate_up_proj, self.down_proj, self.gate_up_scale, self.down_scale


def _nf4_buffers(module: nn.Module, name: str, shape: tuple[int, ...], width: int, device) -> None:
    """Empty codes `name` [*shape, 32 * blocks] and absmax `name`_absmax for rows `width` weights wide."""
    blocks = nf4_blocks(width)
    setattr(module, name, nn.Buffer(torch.empty(*shape, blocks * NF4_BLOCK // 2, dtype=torch.uint8, device=device)))
    setattr(module, name.removesuffix("_proj") + "_absmax", nn.Buffer(torch.ones(*shape, blocks, device=device)))


class Nf4Linear(nn.Module):
    """A bias-free nn.Linear whose weight is NF4: codes [out, in/2] uint8, absmax [out, in/64] float32."""

    def __init__(self, in_features: int, out_features: int, device: torch.device | str | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        _nf4_buffers(self, "weight", (out_features,), in_features, device)
        self.codebook = nn.Buffer(nf4_codebook(device), persistent=False)  # on the device: no copy per call
        self.ops = REFERENCE_OPS  # the model's table (DiffusionGemma.use_ops)

    def load(self, weight: torch.Tensor) -> None:
        self.weight, self.weight_absmax = to_nf4(weight)
        self.codebook = nf4_codebook(weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops.quantized_linear(self, x)  # with the kernels, the codes read as stored: no dequantized copy

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        return from_nf4(self.weight, self.weight_absmax, self.codebook, self.in_features, dtype)


class Nf4Experts(Experts):
    """The grouped experts with NF4 weights: gate_up codes [E, 2I, D/2] and down [E, D, I/2], uint8, with
    absmax [E, 2I, D/64] and [E, D, I/64]."""

    def __init__(self, num_experts: int, hidden_size: int, intermediate_size: int, device=None):
        nn.Module.__init__(self)  # not Experts.__init__: its bf16 parameters are what this replaces
        self.ops = REFERENCE_OPS  # the model's table (DiffusionGemma.use_ops)
        self.hidden_size, self.intermediate_size = hidden_size, intermediate_size
        _nf4_buffers(self, "gate_up_proj", (num_experts, 2 * intermediate_size), hidden_size, device)
        _nf4_buffers(self, "down_proj", (num_experts, hidden_size), intermediate_size, device)
        self.codebook = nn.Buffer(nf4_codebook(device), persistent=False)

    def load(self, name: str, weight: torch.Tensor) -> None:
        codes, absmax = to_nf4(weight)
        setattr(self, name, codes)
        setattr(self, name.removesuffix("_proj") + "_absmax", absmax)
        self.codebook = nf4_codebook(weight.device)

    def weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return (from_nf4(self.gate_up_proj, self.gate_up_absmax, self.codebook, self.hidden_size, dtype),
                from_nf4(self.down_proj, self.down_absmax, self.codebook, self.intermediate_size, dtype))

    def stored_weights(self):
        return self.gate_up_proj, self.down_proj, self.gate_up_absmax, self.down_absmax, self.codebook


def linear_weights(linear: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """A projection's weight as stored, with its scales (FP8: per row; NF4: absmax per block) and codebook
    (NF4), as kernels/linear.py reads them; None for what it has not."""
    if isinstance(linear, Fp8Linear):
        return linear.weight, linear.scale, None
    if isinstance(linear, Nf4Linear):
        return linear.weight, linear.weight_absmax, linear.codebook
    return linear.weight, None, None


# format -> (the linears' module, the experts' module)
MODULES = {"fp8": (Fp8Linear, Fp8Experts), "nf4": (Nf4Linear, Nf4Experts)}


def prepare(model: DiffusionGemma, fmt: str) -> None:
    """Swaps the quantized modules in (empty, on the model's device: meta while a checkpoint loads)."""
    if check_format(fmt) == "none":
        return
    linear_class, experts_class = MODULES[fmt]
    device = model.norm.weight.device
    for block in model.layers:
        for path in LINEARS:
            parent_name, _, leaf = path.rpartition(".")
            parent = block.get_submodule(parent_name)
            linear = getattr(parent, leaf)
            if linear is not None:
                setattr(parent, leaf, linear_class(linear.in_features, linear.out_features, device))
        experts = block.experts
        num, double_inter, hidden = experts.gate_up_proj.shape
        block.experts = experts_class(num, hidden, double_inter // 2, device)


def load_into(model: nn.Module, name: str, tensor: torch.Tensor) -> bool:
    """Stores a checkpoint tensor into a quantized module, quantizing it; False when `name` is not one."""
    module_name, _, leaf = name.rpartition(".")
    module = model.get_submodule(module_name)
    if isinstance(module, (Fp8Linear, Nf4Linear)) and leaf == "weight":
        module.load(tensor)
        return True
    if isinstance(module, (Fp8Experts, Nf4Experts)) and leaf in ("gate_up_proj", "down_proj"):
        module.load(leaf, tensor)
        return True
    return False


def quantize(model: DiffusionGemma, fmt: str) -> DiffusionGemma:
    """Quantizes a loaded model in place (presets with random weights; checkpoints use load_into)."""
    if check_format(fmt) == "none":
        return model
    full = dict(model.state_dict())
    prepare(model, fmt)  # the replaced modules' full-precision tensors live on in `full` only
    for name in list(full):
        load_into(model, name, full.pop(name))  # freed one by one: the peak is the model plus one tensor
    return model


def weight_bytes(model: nn.Module) -> int:
    """Bytes of parameters and buffers: what the weights take on the device."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def format_weight_bytes(args: ModelArgs, fmt: str, dtype: torch.dtype = torch.bfloat16) -> int:
    """What weight_bytes would say of a model of these shapes in this format, from the shapes alone: the
    model is built on the meta device, nothing is allocated."""
    with torch.device("meta"):
        model = DiffusionGemma(args).to(dtype)
        prepare(model, fmt)
    return weight_bytes(model)
