"""Published FP8 checkpoints: the compressed-tensors layout llm-compressor writes (RedHatAI's
diffusiongemma-26B-A4B-it-FP8-dynamic), read into the full-precision tensors the loader expects.

What such a checkpoint holds beside transformers' own layout (config.json's `quantization_config`:
quant_method "compressed-tensors", format "float-quantized"):
- each quantized linear weight as float8_e4m3fn with `<module>.weight_scale` beside it: one scale per output
  channel ([out, 1]), one per tensor, or one per block ([out / b0, in / b1], `block_structure` [b0, b1]);
- the experts split per expert (`experts.<e>.gate_proj / up_proj / down_proj`), because the quantizers only
  see nn.Linear modules, where transformers keeps them fused (`experts.gate_up_proj` [E, 2I, D] with the
  gate rows first, `experts.down_proj` [E, D, I]);
- activation scales only for static activation schemes (FP8-dynamic has none). The engine computes in the
  model dtype from FP8 weights, so they are skipped;
- everything on the ignore list (embedding / lm_head, routers, norms, self-conditioning) as saved.

`Dequantizer.feed` takes the stored tensors in any order and hands back transformers-named full-precision
tensors as each becomes whole: a weight once its scale has come (or the reverse), a fused expert projection
once every expert of its layer has (the pieces wait as stored, one byte a weight; an assembled 26B-A4B layer
is 3 GB of float32, freed once loaded). Values are float32, so `--quantize fp8` re-quantizes them
(engine/weights/quantize.py) to the published codes and scales exactly: llm-compressor's per-channel scale is the
row's max-abs / 448, which is engine/weights/quantize.py's too.
"""

from __future__ import annotations

import re

import torch

QUANT_METHOD = "compressed-tensors"
FLOAT_FORMATS = ("float-quantized", "naive-quantized")
SCALE = ".weight_scale"
SKIPPED_SUFFIXES = (".input_scale", ".weight_zero_point", ".input_zero_point")
EXPERT_PIECE = re.compile(r"^(?P<experts>.+\.experts)\.(?P<index>\d+)\.(?P<proj>gate_proj|up_proj|down_proj)\.weight$")
FP8_DTYPES = ("F8_E4M3",)  # safetensors' name of float8_e4m3fn


class UnsupportedQuantization(ValueError):
    pass


def published_fp8(config: dict, source: str) -> tuple[int, int] | None | bool:
    """What config.json says of a compressed-tensors FP8 checkpoint: False when unquantized, else the weight
    block structure [rows, columns] of per-block scales (None for per-channel or per-tensor ones); any other
    quantization raises, naming what it found."""
    quant = config.get("quantization_config") or config.get("compression_config")
    if not quant:
        return False
    method, fmt = quant.get("quant_method"), quant.get("format")
    if method != QUANT_METHOD or fmt not in FLOAT_FORMATS:
        raise UnsupportedQuantization(
            f"{source}: quantization {method!r} format {fmt!r} is not supported; the engine reads bf16 checkpoints "
            f"and {QUANT_METHOD} FP8 ({', '.join(FLOAT_FORMATS)}), and makes other formats itself with --quantize"
        )
    groups = quant.get("config_groups") or {}
    if not groups:
        raise UnsupportedQuantization(f"{source}: quantization_config has no config_groups")
    blocks = set()
    for name, group in groups.items():
        weights = group.get("weights") or {}
        if weights.get("type") != "float" or weights.get("num_bits") != 8:
            raise UnsupportedQuantization(f"{source}: config group {name!r} has {weights.get('num_bits')}-bit "
                                          f"{weights.get('type')} weights; only 8-bit float (FP8) is supported")
        if weights.get("strategy") not in ("channel", "tensor", "block"):
            raise UnsupportedQuantization(f"{source}: config group {name!r} uses strategy "
                                          f"{weights.get('strategy')!r}; channel, tensor and block are supported")
        block = weights.get("block_structure") if weights["strategy"] == "block" else None
        if weights["strategy"] == "block" and not (isinstance(block, list) and len(block) == 2):
            raise UnsupportedQuantization(f"{source}: config group {name!r} has no [rows, columns] block_structure")
        blocks.add(tuple(block) if block else None)
    if len(blocks) > 1:
        raise UnsupportedQuantization(
            f"{source}: config groups with different block structures {sorted(map(str, blocks))}"
        )
    return blocks.pop()


def dequantize(weight: torch.Tensor, scale: torch.Tensor, block: tuple[int, int] | None = None) -> torch.Tensor:
    """float32 weight from stored FP8 codes [out, in] and a per-tensor, per-channel ([out, 1]) or per-block
    scale (block: its [rows, columns]; the blocks at the bottom and right edges are cut)."""
    values = weight.to(torch.float32)
    scale = scale.to(torch.float32)
    rows, columns = values.shape
    if scale.numel() == 1:
        return values * scale.reshape(())
    if block is None and tuple(scale.shape) == (rows, 1):
        return values * scale
    if block is not None and tuple(scale.shape) == (-(-rows // block[0]), -(-columns // block[1])):
        full = scale.repeat_interleave(block[0], 0).repeat_interleave(block[1], 1)
        return values * full[:rows, :columns]
    raise UnsupportedQuantization(f"a scale of shape {list(scale.shape)} for a weight of shape {list(weight.shape)}"
                                  + (f" in {block[0]} x {block[1]} blocks" if block else ""))


class Dequantizer:
    """Pairs weights with their scales and gathers per-expert pieces into transformers' fused tensors."""

    def __init__(self, num_experts: int, block: tuple[int, int] | None = None):
        self.num_experts, self.block = num_experts, block
        self.codes: dict[str, torch.Tensor] = {}  # module name -> FP8 weight waiting for its scale
        self.scales: dict[str, torch.Tensor] = {}  # module name -> scale waiting for its weight
        # experts module -> proj -> index -> (stored weight, its scale or None): expert pieces wait as stored,
        # FP8 at one byte a weight, and become float32 only as their layer is assembled
        self.experts: dict[str, dict[str, dict[int, tuple[torch.Tensor, torch.Tensor | None]]]] = {}

    @staticmethod
    def wants(name: str, stored_dtype: str) -> bool:
        """Whether a stored tensor goes through here rather than straight to the model."""
        return (stored_dtype in FP8_DTYPES or name.endswith(SCALE) or name.endswith(SKIPPED_SUFFIXES)
                or EXPERT_PIECE.match(name) is not None)

    def feed(self, name: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """The (transformers name, float32 tensor) pairs this stored tensor completes, maybe none."""
        if name.endswith(SKIPPED_SUFFIXES):
            return []
        if name.endswith(SCALE):
            module = name.removesuffix(SCALE)
            if module not in self.codes:
                self.scales[module] = tensor
                return []
            return self._whole(module + ".weight", self.codes.pop(module), tensor)
        if tensor.dtype == torch.float8_e4m3fn:
            module = name.removesuffix(".weight")
            if module not in self.scales:
                self.codes[module] = tensor
                return []
            return self._whole(name, tensor, self.scales.pop(module))
        return self._whole(name, tensor, None)

    def _value(self, weight: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        return weight.to(torch.float32) if scale is None else dequantize(weight, scale, self.block)

    def _whole(self, name: str, weight: torch.Tensor, scale: torch.Tensor | None) -> list[tuple[str, torch.Tensor]]:
        piece = EXPERT_PIECE.match(name)
        if piece is None:
            return [(name, self._value(weight, scale))]
        experts, proj, index = piece["experts"], piece["proj"], int(piece["index"])
        if index >= self.num_experts:
            raise UnsupportedQuantization(f"{name}: expert {index} of {self.num_experts} (does config.json match?)")
        layer = self.experts.setdefault(experts, {"gate_proj": {}, "up_proj": {}, "down_proj": {}})
        layer[proj][index] = (weight, scale)
        if any(len(pieces) < self.num_experts for pieces in layer.values()):
            return []
        del self.experts[experts]
        return [(experts + ".gate_up_proj", self._fuse(layer["gate_proj"], layer["up_proj"])),
                (experts + ".down_proj", self._fuse(layer["down_proj"]))]

    def _fuse(self, *projections: dict[int, tuple[torch.Tensor, torch.Tensor | None]]) -> torch.Tensor:
        """[E, rows of every projection, in] float32, filled one expert at a time (no list of float32 copies)."""
        first = [pieces[0][0] for pieces in projections]
        rows = [weight.shape[0] for weight in first]
        for pieces, weight in zip(projections, first, strict=True):
            shapes = {tuple(stored.shape) for stored, _ in pieces.values()}
            if shapes != {tuple(weight.shape)} or weight.shape[1] != first[0].shape[1]:
                raise UnsupportedQuantization(f"experts of one layer differ in shape: {sorted(shapes)}")
        fused = torch.empty(self.num_experts, sum(rows), first[0].shape[1], device=first[0].device)
        for e in range(self.num_experts):
            start = 0
            for pieces, count in zip(projections, rows, strict=True):
                fused[e, start : start + count] = self._value(*pieces[e])
                start += count
        return fused

    def unfinished(self) -> list[str]:
        """What is still waiting once every shard is read: weights without scales, scales without weights,
        expert layers with missing experts."""
        left = [f"{module}.weight (no weight_scale)" for module in self.codes]
        left += [f"{module}{SCALE} (no weight)" for module in self.scales]
        for experts, layer in self.experts.items():
            for proj, pieces in layer.items():
                missing = sorted(set(range(self.num_experts)) - set(pieces))
                if missing:
                    left.append(f"{experts}.<e>.{proj}.weight for experts {missing[:8]}")
        return left
