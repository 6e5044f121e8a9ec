"""--quantize fp8 and nf4: each format's error bound, NF4 byte for byte against bitsandbytes, quantizing while a
checkpoint loads, the quality guard on the shipped model, and the flag through the engine, `redraft generate`
and the worker's configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine.api import Engine, EngineConfig
from engine.model.config import MODEL_PRESETS
from engine.weights.checkpoint import load_model
from engine.weights.quantize import (
    FP8,
    LINEARS,
    NF4_BLOCK,
    NF4_CODE,
    Fp8Experts,
    Fp8Linear,
    Nf4Experts,
    Nf4Linear,
    format_weight_bytes,
    from_fp8,
    from_nf4,
    nf4_codebook,
    quantize,
    to_fp8,
    to_nf4,
    weight_bytes,
)
from redraft.generate import main as generate_main
from training.corpus import read_paragraph_file
from training.quantized_quality import format_report, measure
from worker.config import WorkerConfig

FIXTURE = Path(__file__).parents[2] / "training" / "fixtures" / "python_docs_held_out.txt"
FORMATS = {"fp8": (Fp8Linear, Fp8Experts), "nf4": (Nf4Linear, Nf4Experts)}


@pytest.mark.parametrize("shape", [(37, 53), (3, 29, 11), (2, 1)])
def test_fp8_rows_keep_three_mantissa_bits(shape):
    weight = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape))) * 0.02
    weight[..., 0, :] = 0  # a zero row stays zero (scale 1, no division by zero)
    weight[..., -1, 0] = 5.0  # an outlier only costs its own row precision
    quantized, scale = to_fp8(weight)
    assert quantized.dtype == FP8 and scale.shape == weight.shape[:-1]
    restored = from_fp8(quantized, scale, torch.float32)
    # e4m3: a normal value rounds to within 2^-4 of itself (3 mantissa bits, round to nearest); below the
    # smallest normal (2^-6, times the row's scale) values are subnormals spaced 2^-9 * scale apart.
    bound = weight.abs() * 2**-4 + scale.unsqueeze(-1) * 2**-9
    assert torch.all((restored - weight).abs() <= bound)
    assert torch.all(restored[..., 0, :] == 0)
    # each row's maximum maps to 448 exactly: only the float32 division and product round it
    torch.testing.assert_close(restored.abs().amax(-1), weight.abs().amax(-1), rtol=1e-6, atol=0)


def test_nf4_codes_blocks_and_packing_order():
    levels = torch.tensor(NF4_CODE)
    weight = torch.zeros(3, 128)
    weight[0, :16] = levels * 2.0  # every level once, times the block's absmax (2.0): exactly codes 0..15
    weight[0, 64] = -0.5  # the second block: its own absmax
    weight[1, :] = 1e-3  # a constant block is its absmax: code 15 everywhere
    # row 2 stays zero: absmax 0, every code the exact zero (7)
    packed, absmax = to_nf4(weight)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 64) and absmax.shape == (3, 2)
    assert torch.equal(absmax, torch.tensor([[2.0, 0.5], [1e-3, 1e-3], [0.0, 0.0]]))
    # two codes per byte, the even position in the high nibble: levels 0, 1 -> 0x01, 2, 3 -> 0x23, ...
    assert packed[0, :8].tolist() == [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]
    assert packed[0, 8:32].tolist() == [0x77] * 24  # zeros in a block with absmax 2
    assert packed[0, 32] == 0x07 and packed[1].tolist() == [0xFF] * 64 and packed[2].tolist() == [0x77] * 64
    assert torch.equal(from_nf4(packed, absmax, nf4_codebook(), 128, torch.float32), weight)  # all levels, exactly


@pytest.mark.parametrize("shape", [(5, 256), (3, 7, 192), (4, 1)])
def test_nf4_rounds_to_the_nearest_level_of_each_block(shape):
    generator = torch.Generator().manual_seed(sum(shape))
    weight = torch.randn(shape, generator=generator) * 0.02
    weight[..., -1, 0] = 3.0  # an outlier costs precision in its own block only
    packed, absmax = to_nf4(weight)
    width = shape[-1]
    restored = from_nf4(packed, absmax, nf4_codebook(), width, torch.float32)
    blocks = -(-width // NF4_BLOCK)
    padded = F.pad(weight, (0, blocks * NF4_BLOCK - width)).unflatten(-1, (blocks, NF4_BLOCK))
    assert torch.equal(absmax, padded.abs().amax(-1))
    # The nearest level of weight / absmax, by brute force (to_nf4 multiplies by the reciprocal instead: the
    # one-ulp difference matters only for a value within 1e-7 of a midpoint between two levels, and none of
    # these seeded draws is).
    normalized = padded / absmax.unsqueeze(-1)
    nearest = (normalized.unsqueeze(-1) - torch.tensor(NF4_CODE)).abs().argmin(-1)
    expected = (torch.tensor(NF4_CODE)[nearest] * absmax.unsqueeze(-1)).flatten(-2)[..., :width]
    assert torch.equal(restored, expected)
    assert torch.all(restored[..., -1, 0] == 3.0)  # each block's largest magnitude is stored exactly


def test_nf4_pads_a_row_to_whole_blocks():
    weight = torch.randn(6, 100, generator=torch.Generator().manual_seed(4))
    packed, absmax = to_nf4(weight)
    padded_packed, padded_absmax = to_nf4(F.pad(weight, (0, 28)))
    assert torch.equal(packed, padded_packed) and torch.equal(absmax, padded_absmax)
    assert packed[:, 50:].eq(0x77).all()  # the padding is code 7, the exact zero
    assert from_nf4(packed, absmax, nf4_codebook(), 100, torch.float32).shape == (6, 100)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(3, 37, 192), (64, 64), (5, 100)])
def test_nf4_is_bitsandbytes_format_byte_for_byte(shape, dtype):
    bnb = pytest.importorskip("bitsandbytes.functional", reason="bitsandbytes (the test extra) checks the format")
    weight = (torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape))) * 0.02).to(dtype)
    weight[..., 0, :NF4_BLOCK] = 0  # a zero block
    packed, absmax = to_nf4(weight)
    # bitsandbytes blocks the flattened tensor: the same blocks once each row is padded to whole blocks
    rows = F.pad(weight, (0, -shape[-1] % NF4_BLOCK))
    theirs, state = bnb.quantize_4bit(rows, blocksize=NF4_BLOCK, quant_type="nf4", compress_statistics=False)
    assert torch.equal(packed.flatten(), theirs.flatten()) and torch.equal(absmax.flatten(), state.absmax)
    assert torch.equal(state.code, nf4_codebook())
    restored = from_nf4(packed, absmax, nf4_codebook(), shape[-1], dtype)
    assert torch.equal(restored, bnb.dequantize_4bit(theirs, state)[..., : shape[-1]])


def test_26b_weights_per_format_from_shapes_alone():
    args = MODEL_PRESETS["diffusiongemma-26b-a4b"]
    sizes = {fmt: round(format_weight_bytes(args, fmt) / 1e9, 1) for fmt in ("none", "fp8", "nf4")}
    # bf16: the published checkpoint's 51.6 GB less the vision tower; the embedding (1.5 GB) stays bf16 in
    # every format. NF4: 4 bits + a float32 absmax per 64 weights = 4.5 bits per quantized weight (bitsandbytes'
    # double quantization would save 0.37 more of them, 1 GB here).
    assert sizes == {"none": 50.5, "fp8": 26.1, "nf4": 15.3}


@pytest.fixture(scope="module")
def full():
    return load_model("redraft-small")


@pytest.fixture(scope="module", params=sorted(FORMATS))
def quantized(request):
    return request.param, load_model("redraft-small", quantize=request.param)


def test_quantized_while_loading_equals_quantized_after(quantized):
    fmt, loaded = quantized
    after = quantize(load_model("redraft-small").model, fmt)
    ours, theirs = loaded.model.state_dict(), after.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[name].float(), theirs[name].float()) for name in ours)


def test_which_weights_are_quantized_and_what_they_take(full, quantized):
    fmt, loaded = quantized
    linear_class, experts_class = FORMATS[fmt]
    stored = {"fp8": FP8, "nf4": torch.uint8}[fmt]
    for block in loaded.model.layers:
        for path in LINEARS:
            parent, _, leaf = path.rpartition(".")
            module = getattr(block.get_submodule(parent), leaf)  # None: a global layer's v_proj (K = V)
            assert module is None or (isinstance(module, linear_class) and module.weight.dtype == stored)
        assert isinstance(block.experts, experts_class) and block.experts.down_proj.dtype == stored
        assert block.router.proj.weight.dtype == torch.float32  # the router keeps full precision
    assert loaded.model.embed_tokens.weight.dtype == torch.float32  # tied to the sampling head
    linears = [m for m in loaded.model.modules() if isinstance(m, linear_class)]
    experts = [m for m in loaded.model.modules() if isinstance(m, experts_class)]
    num_weights = sum(m.in_features * m.out_features for m in linears) + sum(
        m.gate_up_proj.shape[0] * 3 * m.gate_up_proj.shape[1] // 2 * m.down_proj.shape[1] for m in experts)
    saved = weight_bytes(full.model) - weight_bytes(loaded.model)
    if fmt == "fp8":  # 1 byte + a 4-byte scale per row instead of 4 bytes (float32 here)
        rows = sum(m.scale.numel() for m in linears) + sum(m.gate_up_scale.numel() + m.down_scale.numel()
                                                           for m in experts)
        assert saved == 3 * num_weights - 4 * rows
    else:  # half a byte + a 4-byte absmax per 64 weights (every width here is whole blocks), and the codebooks
        assert saved == 4 * num_weights - num_weights // 2 - 4 * num_weights // 64 - 64 * (len(linears) + len(experts))


@pytest.fixture(scope="module")
def quality():
    return measure("redraft-small", read_paragraph_file(FIXTURE))


def test_quality_guard_on_the_shipped_model(quality):
    print(format_report(quality))
    assert list(quality) == ["none", "fp8", "nf4"]  # every format of --quantize is measured
    fp8, nf4 = quality["fp8"], quality["nf4"]
    # Measured on 2026-12-06 (CPU, float32 activations, the 128-token-canvas redraft-small). FP8: step KL 0.0006
    # nats, argmax disagreement 3.1 %; NF4: 0.0102 nats, 7.4 %. The bounds leave about 2x room for other CPUs'
    # kernels. Broken on purpose (measured on the earlier redraft-small, whose figures were 0.0005 / 0.9 % and
    # 0.0064 / 3.1 %): a row's scale off by 2 gave KL above 0.05 and disagreement above 10 %; NF4's absmax
    # shifted one block 0.097 and 13.7 %, its nibbles swapped 6.4 and 83 %.
    assert fp8.step_kl < 0.005, fp8
    assert fp8.step_argmax_disagreement < 0.06, fp8
    assert nf4.step_kl < 0.02, nf4
    assert nf4.step_argmax_disagreement < 0.12, nf4
    assert all(0 <= row.generated_disagreement <= 1 for row in quality.values())
    assert quality["none"].weight_bytes > fp8.weight_bytes > nf4.weight_bytes


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
async def test_the_engine_redrafts_with_quantized_weights(anyio_backend, fmt):
    engine = await Engine.load(EngineConfig(device="cpu", quantize=fmt))
    try:
        assert isinstance(engine.loaded.model.layers[0].experts, FORMATS[fmt][1])
        spec = {"id": "q", "kind": "rewrite", "task": "fix", "passage": "The list is sortde in place.", "steps": 8,
                "seed": 3}
        runs = []
        for _ in range(2):
            generation = engine.redraft(dict(spec))
            steps = [snapshot async for snapshot in generation]
            runs.append(((await generation.result())["text"], len(steps)))
    finally:
        await engine.close()
    assert runs[0] == runs[1] and runs[0][0].strip() and runs[0][1] > 0  # same seed, same text


def test_generate_command_and_worker_take_the_flag(capsys):
    argv = ["--prompt", "Return the absolute value of", "--max-new-tokens", "32", "--seed", "2", "--device", "cpu",
            "--json"]
    for fmt in ("fp8", "nf4"):
        assert generate_main([*argv, "--quantize", fmt]) == 0
        assert json.loads(capsys.readouterr().out)["text"].strip()
    assert generate_main([*argv, "--quantize", "int4"]) == 2
    assert "--quantize must be one of none, fp8, nf4, got 'int4'" in capsys.readouterr().err
    assert generate_main([*argv, "--quantize", "nf4", "--backend", "reference"]) == 2
    assert WorkerConfig("redis://x", quantize="nf4").quantize == "nf4"
    with pytest.raises(ValueError, match="quantize must be one of none, fp8, nf4"):
        WorkerConfig("redis://x", quantize="int3")
    with pytest.raises(ValueError, match="quantize must be one of none, fp8, nf4"):
        EngineConfig(quantize="int4")
