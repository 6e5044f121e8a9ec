"""Checkpoint loading: transformers-saved (single and sharded), presets, and broken directories."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.model.config import MODEL_PRESETS, GenerationArgs
from engine.model.network import DiffusionGemma
from engine.runtime.reference import random_reference_model
from engine.weights.checkpoint import CheckpointError, load_checkpoint, load_model, random_model
from tests.engine.tiny import EOS_IDS, TinySpec

SINGLE = TinySpec()
SHARDED = TinySpec(max_shard_size="60KB")


def test_checkpoint_loads_config_generation_config_and_tokenizer(checkpoint, capsys):
    loaded = load_checkpoint(checkpoint(TinySpec()))
    assert loaded.args == TinySpec().args
    assert loaded.generation == GenerationArgs(max_new_tokens=32, max_denoising_steps=12, eos_token_ids=EOS_IDS)
    assert loaded.tokenizer.decode(loaded.tokenizer.encode("ünïcode ok"), skip_special_tokens=True) == "ünïcode ok"
    assert "loading" in capsys.readouterr().err  # the progress bar goes to stderr
    for layer in loaded.model.layers:  # separate scalars, as saved (random, so they differ)
        assert layer.encoder_scalar.item() != layer.decoder_scalar.item()


def test_sharded_checkpoint_loads_the_same_weights(checkpoint):
    directory = checkpoint(SHARDED)
    assert len(list(directory.glob("model-*.safetensors"))) > 3
    sharded = load_checkpoint(directory).model.state_dict()
    single = load_checkpoint(checkpoint(TinySpec())).model.state_dict()
    assert sharded.keys() == single.keys()
    assert all(torch.equal(sharded[name], single[name]) for name in single)


def test_weights_are_cast_to_the_requested_dtype(checkpoint):
    model = load_checkpoint(checkpoint(TinySpec()), dtype=torch.bfloat16).model
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.global_inv_freq.dtype == torch.float32  # RoPE frequencies stay fp32, as in transformers
    fp32 = load_checkpoint(checkpoint(TinySpec())).model
    assert torch.equal(fp32.to(torch.bfloat16).global_inv_freq, model.global_inv_freq)  # a later cast too


def broken_copy(checkpoint, tmp_path, spec=SINGLE):
    target = tmp_path / "broken"
    shutil.copytree(checkpoint(spec), target)
    return target


def test_missing_config_names_the_file(checkpoint, tmp_path):
    directory = broken_copy(checkpoint, tmp_path)
    (directory / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"broken/config\.json: file not found"):
        load_checkpoint(directory)


def test_invalid_json_names_the_file(checkpoint, tmp_path):
    directory = broken_copy(checkpoint, tmp_path)
    (directory / "generation_config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"generation_config\.json: invalid JSON"):
        load_checkpoint(directory)


def test_a_declared_lexicon_loads_with_the_model_and_a_missing_or_broken_one_is_named(checkpoint, tmp_path):
    directory = broken_copy(checkpoint, tmp_path)
    config = json.loads((directory / "config.json").read_text())
    config["redraft"] = {"tasks": ["fix"], "canvas_init": "passage", "lexicon": "words.txt"}
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"broken/words\.txt: the lexicon config\.json declares cannot be read"):
        load_checkpoint(directory)
    (directory / "words.txt").write_text("the\t12\nreport\n")
    with pytest.raises(CheckpointError, match=r"words\.txt:2: expected 'word<TAB>count'"):
        load_checkpoint(directory)
    (directory / "words.txt").write_text("the\t12\nreport\t3\n")
    assert load_checkpoint(directory).lexicon.counts == {"the": 12, "report": 3}
    assert load_checkpoint(checkpoint(SINGLE)).lexicon is None  # none declared


def test_missing_shard_names_the_shard(checkpoint, tmp_path):
    directory = broken_copy(checkpoint, tmp_path, SHARDED)
    shard = sorted(directory.glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(CheckpointError, match=f"{shard.name}: shard listed in model.safetensors.index.json is missing"):
        load_checkpoint(directory)


def test_missing_weights_file_is_reported(checkpoint, tmp_path):
    directory = broken_copy(checkpoint, tmp_path)
    (directory / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors or model.safetensors.index.json"):
        load_checkpoint(directory)


def test_missing_tensor_is_named(checkpoint, tmp_path):
    directory = broken_copy(checkpoint, tmp_path)
    tensors = load_file(directory / "model.safetensors")
    del tensors["model.decoder.layers.2.experts.down_proj"]
    del tensors["model.encoder.language_model.layers.0.layer_scalar"]
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"2 tensor\(s\) missing") as error:
        load_checkpoint(directory)
    assert "model.decoder.layers.2.experts.down_proj" in str(error.value)
    assert "model.encoder.language_model.layers.0.layer_scalar" in str(error.value)


def test_wrong_shape_is_named_with_both_shapes(checkpoint, tmp_path):
    directory = broken_copy(checkpoint, tmp_path)
    tensors = load_file(directory / "model.safetensors")
    tensors["model.decoder.layers.1.self_attn.q_proj.weight"] = torch.zeros(64, 64)
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"tensor model\.decoder\.layers\.1\.self_attn\.q_proj\.weight has shape "
                       r"\[64, 64\], config\.json implies \[128, 64\]"):
        load_checkpoint(directory)


def test_index_listing_an_absent_tensor_is_named(checkpoint, tmp_path):
    directory = broken_copy(checkpoint, tmp_path, SHARDED)
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    shard = next(iter(index["weight_map"].values()))
    index["weight_map"]["model.decoder.extra.weight"] = shard
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=f"{shard}: tensor model.decoder.extra.weight listed in"):
        load_checkpoint(directory)


def test_inconsistent_config_is_reported(checkpoint, tmp_path):
    directory = broken_copy(checkpoint, tmp_path)
    config = json.loads((directory / "config.json").read_text())
    config["text_config"]["num_experts"] = 4  # the checkpoint holds 8
    (directory / "config.json").write_text(json.dumps(config))
    expected = r"experts\.down_proj has shape \[8, 64, 32\], config\.json implies \[4, 64, 32\]"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(directory)


def test_not_a_directory_lists_the_presets(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere: not a checkpoint directory .*tiny"):
        load_model(str(tmp_path / "nowhere"))


def test_tiny_preset_is_seeded_and_has_both_attention_kinds():
    first, again = load_model("tiny", seed=1), load_model("tiny", seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first.model.parameters(), again.model.parameters(), strict=False))
    other = load_model("tiny", seed=2)
    assert not torch.equal(first.model.embed_tokens.weight, other.model.embed_tokens.weight)
    half = load_model("tiny", dtype=torch.bfloat16, seed=1)  # the same weights, rounded: drawn in fp32
    assert all(torch.equal(a.bfloat16(), b) for a, b in zip(first.model.parameters(), half.model.parameters(), strict=False))
    assert set(first.args.layer_types) == {"sliding_attention", "full_attention"}
    assert len(first.tokenizer) == first.args.vocab_size


def test_real_shapes_preset_counts_25b_parameters_with_shared_weights_once():
    with torch.device("meta"):
        model = DiffusionGemma(MODEL_PRESETS["diffusiongemma-26b-a4b"])
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == 25.25  # the model card's 25.2B


def test_random_models_allocate_each_weight_once():
    native = random_model(TinySpec().args, "cpu", torch.bfloat16, seed=0)
    assert {p.dtype for p in native.parameters()} == {torch.bfloat16}
    reference = random_reference_model(TinySpec().args, torch.device("cpu"), torch.bfloat16)
    encoder = reference.model.encoder.language_model
    decoder = reference.model.decoder
    assert encoder.layers[1].mlp.up_proj.weight is decoder.layers[1].mlp.up_proj.weight
    assert reference.lm_head.weight is decoder.embed_tokens.weight
    assert not any(t.is_meta for t in [*reference.parameters(), *reference.buffers()])
    scalars = [b for name, b in reference.named_buffers() if name.endswith("layer_scalar")]
    assert len(scalars) == 2 * TinySpec().num_layers and all(s.item() == 1.0 for s in scalars)
