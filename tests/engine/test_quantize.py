"""--quantize fp8: the format's error bound, quantizing while a checkpoint loads, the quality guard on the
shipped model, and the flag through the engine, `redraft generate` and the worker's configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.api import Engine, EngineConfig
from engine.checkpoint import load_model
from engine.cli import main as generate_main
from engine.corpus import read_paragraph_file
from engine.evaluate import held_out_examples
from engine.quality import divergence
from engine.quantize import FP8, LINEARS, Fp8Experts, Fp8Linear, from_fp8, quantize, to_fp8, weight_bytes
from engine.worker_config import WorkerConfig

FIXTURE = Path(__file__).parent / "fixtures" / "python_docs_held_out.txt"


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


@pytest.fixture(scope="module")
def small():
    return load_model("redraft-small"), load_model("redraft-small", quantize="fp8")


def test_quantized_while_loading_equals_quantized_after(small):
    _, loaded_fp8 = small
    after = quantize(load_model("redraft-small").model, "fp8")
    ours, theirs = loaded_fp8.model.state_dict(), after.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[name].float(), theirs[name].float()) for name in ours)


def test_which_weights_are_fp8_and_what_they_take(small):
    full, fp8 = small
    for block in fp8.model.layers:
        for path in LINEARS:
            parent, _, leaf = path.rpartition(".")
            module = getattr(block.get_submodule(parent), leaf)  # None: a global layer's v_proj (K = V)
            assert module is None or (isinstance(module, Fp8Linear) and module.weight.dtype == FP8)
        assert isinstance(block.experts, Fp8Experts) and block.experts.down_proj.dtype == FP8
        assert block.router.proj.weight.dtype == torch.float32  # the router keeps full precision
    assert fp8.model.embed_tokens.weight.dtype == torch.float32  # tied to the sampling head
    # Each quantized weight takes 1 byte + a 4-byte scale per row instead of 4 bytes (float32 here).
    linears = [m for m in fp8.model.modules() if isinstance(m, Fp8Linear)]
    experts = [m for m in fp8.model.modules() if isinstance(m, Fp8Experts)]
    quantized = sum(m.weight.numel() for m in linears) + sum(m.gate_up_proj.numel() + m.down_proj.numel()
                                                            for m in experts)
    rows = sum(m.scale.numel() for m in linears) + sum(m.gate_up_scale.numel() + m.down_scale.numel() for m in experts)
    assert weight_bytes(full.model) - weight_bytes(fp8.model) == 3 * quantized - 4 * rows


def test_quality_guard_on_the_shipped_model(small):
    full, fp8 = small
    paragraphs = read_paragraph_file(FIXTURE)
    examples = held_out_examples(full.tokenizer, paragraphs, full.args.canvas_length)
    prompts = [full.tokenizer(p)["input_ids"][:16] for p in paragraphs[:4]]
    measured = divergence(full, fp8, examples, prompts, full.generation)
    # Measured on 2026-11-27 (CPU, float32 activations): step KL 0.0005 nats, argmax disagreement 0.9 %. The
    # bounds leave 10x and 3x room for other CPUs' kernels; a broken scale (a row off by a factor 2) gives
    # KL above 0.05 and disagreement above 10 %.
    assert measured.step_kl < 0.005, measured
    assert measured.step_argmax_disagreement < 0.03, measured
    assert 0 <= measured.generated_disagreement <= 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_engine_redrafts_with_fp8_weights(anyio_backend):
    engine = await Engine.load(EngineConfig(device="cpu", quantize="fp8"))
    try:
        assert isinstance(engine.loaded.model.layers[0].experts, Fp8Experts)
        spec = {"id": "q", "kind": "rewrite", "passage": "The list is sorted in place.", "steps": 8, "seed": 3}
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
    assert generate_main([*argv, "--quantize", "fp8"]) == 0
    assert json.loads(capsys.readouterr().out)["text"].strip()
    assert generate_main([*argv, "--quantize", "nf4"]) == 2
    assert "--quantize must be one of none, fp8, got 'nf4'" in capsys.readouterr().err
    assert generate_main([*argv, "--quantize", "fp8", "--backend", "reference"]) == 2
    assert WorkerConfig("redis://x", quantize="fp8").quantize == "fp8"
    with pytest.raises(ValueError, match="quantize must be one of none, fp8"):
        WorkerConfig("redis://x", quantize="int3")
    with pytest.raises(ValueError, match="quantize must be one of none, fp8"):
        EngineConfig(quantize="nf4")
