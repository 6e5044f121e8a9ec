"""Published FP8 checkpoints (compressed-tensors, as llm-compressor writes them): a tiny model written in that
layout by this test, read back with and without --quantize fp8, and the ways such a checkpoint can be broken."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.model.config import MODEL_PRESETS, GenerationArgs
from engine.weights.checkpoint import CheckpointError, load_checkpoint, random_model
from engine.weights.compressed import dequantize, published_fp8
from engine.weights.quantize import FP8, FP8_MAX, LINEARS, Fp8Experts, Fp8Linear, quantize
from training.train import save_checkpoint

ARGS = MODEL_PRESETS["tiny"]
QUANTIZED = re.compile(r"\.layers\.\d+\.(" + "|".join(re.escape(path) for path in LINEARS) + r")\.weight$")
QUANTIZATION_CONFIG = {
    "quant_method": "compressed-tensors",
    "format": "float-quantized",
    "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
        "num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True, "dynamic": False,
    }, "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True}}},
    "ignore": ["lm_head", "re:.*embed.*", "re:.*router.*", "re:.*norm.*", "re:.*self_conditioning.*"],
}


def per_channel_fp8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """llm-compressor's static per-channel FP8: scale = row max-abs / 448, stored [out, 1]."""
    scale = weight.float().abs().amax(dim=1, keepdim=True) / FP8_MAX
    return (weight.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


def publish(directory: Path, scale_first: bool = True, drop: str | None = None) -> tuple[Path, dict]:
    """A tiny random model saved as an FP8-dynamic release: quantized linears, experts split per expert,
    two shards (scales in the first unless scale_first is False), an index. Returns the directory and the
    published tensors by name."""
    model = random_model(ARGS, "cpu", torch.float32, seed=5)
    save_checkpoint(model, GenerationArgs(), None, directory, dtype=torch.bfloat16)
    plain = load_file(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    published: dict[str, torch.Tensor] = {}
    for name, tensor in plain.items():
        if name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
            prefix, _, fused = name.rpartition(".")
            inter = ARGS.moe_intermediate_size
            for e in range(tensor.shape[0]):
                pieces = ({"gate_proj": tensor[e, :inter], "up_proj": tensor[e, inter:]} if fused == "gate_up_proj"
                          else {"down_proj": tensor[e]})
                for proj, piece in pieces.items():
                    codes, scale = per_channel_fp8(piece)
                    published[f"{prefix}.{e}.{proj}.weight"] = codes
                    published[f"{prefix}.{e}.{proj}.weight_scale"] = scale
        elif QUANTIZED.search(name):
            published[name], published[name.removesuffix(".weight") + ".weight_scale"] = per_channel_fp8(tensor)
        else:
            published[name] = tensor
    if drop is not None:
        del published[drop]
    first = {name: t for name, t in published.items() if name.endswith(".weight_scale") == scale_first}
    second = {name: t for name, t in published.items() if name not in first}
    weight_map = {}
    for file_name, tensors in (("model-00001-of-00002.safetensors", first), ("model-00002-of-00002.safetensors", second)):
        save_file({n: t.contiguous() for n, t in tensors.items()}, str(directory / file_name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, file_name))
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = json.loads((directory / "config.json").read_text())
    config["quantization_config"] = QUANTIZATION_CONFIG
    (directory / "config.json").write_text(json.dumps(config))
    return directory, published


@pytest.mark.parametrize("scale_first", [True, False])
def test_fp8_loads_the_published_codes_and_scales_exactly(tmp_path, scale_first):
    directory, published = publish(tmp_path / "fp8", scale_first)
    loaded = load_checkpoint(directory, "cpu", torch.bfloat16, quantize="fp8")
    layer = loaded.model.layers[1]
    assert isinstance(layer.self_attn.q_proj, Fp8Linear) and isinstance(layer.experts, Fp8Experts)
    prefix = "model.decoder.layers.1."
    assert torch.equal(layer.self_attn.q_proj.weight.view(torch.uint8),
                       published[prefix + "self_attn.q_proj.weight"].view(torch.uint8))
    torch.testing.assert_close(layer.self_attn.q_proj.scale, published[prefix + "self_attn.q_proj.weight_scale"][:, 0],
                               rtol=0, atol=0)
    inter = ARGS.moe_intermediate_size
    for e in range(ARGS.num_experts):
        for proj, rows in (("gate_proj", slice(0, inter)), ("up_proj", slice(inter, 2 * inter))):
            stored = published[f"{prefix}experts.{e}.{proj}.weight"]
            assert torch.equal(layer.experts.gate_up_proj[e, rows].view(torch.uint8), stored.view(torch.uint8))
            assert torch.equal(layer.experts.gate_up_scale[e, rows],
                               published[f"{prefix}experts.{e}.{proj}.weight_scale"][:, 0])
        assert torch.equal(layer.experts.down_proj[e].view(torch.uint8),
                           published[f"{prefix}experts.{e}.down_proj.weight"].view(torch.uint8))


def test_without_quantize_the_weights_are_the_dequantized_values(tmp_path):
    directory, published = publish(tmp_path / "fp8")
    loaded = load_checkpoint(directory, "cpu", torch.float32)
    prefix = "model.decoder.layers.2."
    expected = dequantize(published[prefix + "mlp.down_proj.weight"], published[prefix + "mlp.down_proj.weight_scale"])
    assert torch.equal(loaded.model.layers[2].mlp.down_proj.weight, expected)
    gate = dequantize(published[prefix + "experts.3.gate_proj.weight"],
                      published[prefix + "experts.3.gate_proj.weight_scale"])
    assert torch.equal(loaded.model.layers[2].experts.gate_up_proj[3, : ARGS.moe_intermediate_size], gate)
    # quantizing those values again gives what loading with --quantize fp8 gives
    as_fp8 = quantize(loaded.model, "fp8")
    reloaded = load_checkpoint(directory, "cpu", torch.float32, quantize="fp8")
    for ours, theirs in zip(as_fp8.state_dict().values(), reloaded.model.state_dict().values(), strict=True):
        assert torch.equal(ours.view(torch.uint8) if ours.dtype == FP8 else ours,
                           theirs.view(torch.uint8) if theirs.dtype == FP8 else theirs)


@pytest.mark.parametrize("drop, message", [
    ("model.decoder.layers.0.self_attn.o_proj.weight_scale", r"o_proj\.weight \(no weight_scale\)"),
    ("model.decoder.layers.3.mlp.up_proj.weight", r"up_proj\.weight_scale \(no weight\)"),
    ("model.decoder.layers.1.experts.5.down_proj.weight", r"layers\.1\.experts\.<e>\.down_proj\.weight for experts \[5\]"),
])
def test_an_incomplete_release_names_what_is_missing(tmp_path, drop, message):
    directory, _ = publish(tmp_path / "broken", drop=drop)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(directory, "cpu", torch.float32)


@pytest.mark.parametrize("change, message", [
    ({"format": "nvfp4-pack-quantized"}, "'nvfp4-pack-quantized' is not supported"),
    ({"quant_method": "gptq"}, "quantization 'gptq'"),
    ({"config_groups": {"g": {"weights": {"num_bits": 4, "type": "int", "strategy": "group"}}}}, "4-bit int"),
    ({"config_groups": {"g": {"weights": {"num_bits": 8, "type": "float", "strategy": "group"}}}}, "strategy 'group'"),
])
def test_other_quantizations_are_refused_by_name(tmp_path, change, message):
    directory, _ = publish(tmp_path / "other")
    config = json.loads((directory / "config.json").read_text())
    config["quantization_config"] = {**QUANTIZATION_CONFIG, **change}
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"config.json: .*{re.escape(message)}"):
        load_checkpoint(directory, "cpu", torch.float32)


def test_per_tensor_and_per_block_scales():
    codes = torch.arange(-12, 12, dtype=torch.float32).view(4, 6).to(FP8)
    values = codes.float()
    assert torch.equal(dequantize(codes, torch.tensor([0.5])), values * 0.5)
    assert torch.equal(dequantize(codes, torch.tensor([[2.0], [3.0], [4.0], [5.0]])),
                       values * torch.tensor([[2.0], [3.0], [4.0], [5.0]]))
    blocks = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # 2 x 4 blocks over 4 x 6: the right-hand blocks are cut
    expected = values * torch.tensor([[1.0] * 4 + [2.0] * 2] * 2 + [[3.0] * 4 + [4.0] * 2] * 2)
    assert torch.equal(dequantize(codes, blocks, (2, 4)), expected)
    with pytest.raises(ValueError, match=r"scale of shape \[2, 2\] for a weight of shape \[4, 6\] in 1 x 4 blocks"):
        dequantize(codes, blocks, (1, 4))


def test_block_structure_comes_from_the_config():
    group = {"weights": {"num_bits": 8, "type": "float", "strategy": "block", "block_structure": [128, 128]}}
    assert published_fp8({"quantization_config": {**QUANTIZATION_CONFIG, "config_groups": {"g": group}}}, "c") == (128, 128)
    assert published_fp8({"quantization_config": QUANTIZATION_CONFIG}, "c") is None
    assert published_fp8({}, "c") is False
    del group["weights"]["block_structure"]
    with pytest.raises(ValueError, match="no \\[rows, columns\\] block_structure"):
        published_fp8({"quantization_config": {**QUANTIZATION_CONFIG, "config_groups": {"g": group}}}, "c")


def test_an_expert_of_another_shape_is_named_not_a_crash(tmp_path):
    directory, published = publish(tmp_path / "odd")
    name = "model.decoder.layers.2.experts.4.up_proj.weight"
    shard = directory / "model-00002-of-00002.safetensors"
    tensors = load_file(shard)
    tensors[name] = tensors[name][:-1]  # one row short
    save_file(tensors, str(shard), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="experts of one layer differ in shape"):
        load_checkpoint(directory, "cpu", torch.float32)
