"""LoRA fine-tuning on JSONL pairs: it learns, trains adapters only, merges exactly, saves and reloads."""

from __future__ import annotations

import json
import re

import pytest
import torch

from engine.weights.checkpoint import load_checkpoint, load_model
from engine.weights.lora import (
    LORA_TARGETS,
    LoRALinear,
    add_lora,
    load_adapters,
    lora_modules,
    merge_lora,
    save_adapters,
)
from redraft.train import main
from training.examples import collate, pair_examples
from training.train import TrainArgs, diffusion_loss, save_checkpoint, train

PAIRS = [
    {"prompt": "Shorten: the cat sat on the mat", "response": "cat on mat"},
    {"prompt": "Shorten: a dog ran in the park", "response": "dog in park"},
    {"prompt": "Capitalise: hello world", "response": "HELLO WORLD, and a response longer than a canvas"},
]


def fixed_loss(loaded, batch) -> float:
    """The loss at one fixed draw of noise levels, corruption and self-conditioning."""
    with torch.no_grad():
        generator = torch.Generator().manual_seed(11)
        return diffusion_loss(loaded.model, batch, loaded.generation, generator).loss.item()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The `tiny` preset saved as a checkpoint, its tied embedding scaled x10 first.

    At the presets' init (std 0.02) the frozen embedding, which is also the lm_head, bounds every logit to about
    |h| |e| = 8 x 0.16: no adapter can make the model confident. x10 gives it a trained model's logit range,
    and rank-8 adapters then take the loss on the pairs from 4.5 to 1.9 in 30 steps (full fine-tuning of the
    unscaled model does as well; adapters on it stall near 4.9)."""
    loaded = load_model("tiny")
    with torch.no_grad():
        loaded.model.embed_tokens.weight.mul_(10.0)
    directory = tmp_path_factory.mktemp("base")
    return save_checkpoint(loaded.model, loaded.generation, loaded.tokenizer, directory, torch.float32)


@pytest.fixture
def tuned(base):
    """The base with rank-8 adapters after 30 steps on the pairs."""
    loaded = load_checkpoint(base)
    examples = pair_examples(loaded.tokenizer, PAIRS, loaded.args.pad_token_id, loaded.args.canvas_length)
    batch = collate(examples, loaded.args.pad_token_id)
    before = fixed_loss(loaded, batch)
    add_lora(loaded.model, rank=8, alpha=16.0, seed=0)
    args = TrainArgs(steps=30, batch_size=len(examples), lr=1e-2, warmup_steps=3, log_every=30)
    train(loaded.model, lambda step: batch, args, loaded.generation, log=lambda _: None)
    return loaded, batch, before


def test_fine_tuning_lowers_the_loss_on_the_pairs(tuned):
    loaded, batch, before = tuned
    assert fixed_loss(loaded, batch) < 0.6 * before


def test_only_adapters_are_trainable_and_get_gradients(base):
    loaded = load_checkpoint(base)
    wrapped = add_lora(loaded.model, rank=4, alpha=8.0)
    # 4 layers: q, k, o everywhere, v only on sliding layers (global ones have none), gate/up/down of the MLP
    num_global = sum(loaded.args.is_global(i) for i in range(loaded.args.num_layers))
    assert len(wrapped) == loaded.args.num_layers * len(LORA_TARGETS) - num_global
    examples = pair_examples(loaded.tokenizer, PAIRS, loaded.args.pad_token_id, loaded.args.canvas_length)
    loss = diffusion_loss(loaded.model, collate(examples, 0), loaded.generation, torch.Generator().manual_seed(0)).loss
    loss.backward()
    with_grad = {name for name, p in loaded.model.named_parameters() if p.grad is not None}
    trainable = {name for name, p in loaded.model.named_parameters() if p.requires_grad}
    assert with_grad == trainable == {f"{name}.lora_{part}" for name in wrapped for part in "ab"}
    assert all(loaded.model.get_parameter(f"{name}.lora_a").grad.abs().sum() == 0 for name in wrapped)  # B = 0
    assert all(loaded.model.get_parameter(f"{name}.lora_b").grad.abs().sum() > 0 for name in wrapped)


def logits(loaded, batch):
    with torch.no_grad():
        return diffusion_loss(loaded.model, batch, loaded.generation, torch.Generator().manual_seed(5)).logits


def test_merged_weights_give_the_logits_of_the_adapters(tuned):
    loaded, batch, _ = tuned
    with_adapters = logits(loaded, batch)
    merge_lora(loaded.model)
    assert not lora_modules(loaded.model)
    # (W + s B A) x and W x + s B (A x) round differently in fp32: ~1e-6 relative on logits of magnitude < 30
    assert torch.allclose(logits(loaded, batch), with_adapters, rtol=0, atol=1e-4)


def test_adapters_save_and_load(tuned, base, tmp_path):
    loaded, batch, _ = tuned
    save_adapters(loaded.model, tmp_path, "tiny-test")
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config == {"base_model": "tiny-test", "rank": 8, "alpha": 16.0, "targets": sorted(LORA_TARGETS)}
    fresh = load_checkpoint(base)
    load_adapters(fresh.model, tmp_path)
    assert all(isinstance(m, LoRALinear) for m in lora_modules(fresh.model).values())
    assert torch.equal(logits(fresh, batch), logits(loaded, batch))


def test_pairs_become_canvases_as_the_sampler_commits_them(base):
    loaded = load_checkpoint(base)
    tokenizer, L = loaded.tokenizer, loaded.args.canvas_length
    examples = pair_examples(tokenizer, PAIRS, 0, L)
    turn_end = tokenizer.convert_tokens_to_ids("<turn|>")
    long_response = tokenizer.encode(PAIRS[2]["response"], add_special_tokens=False)
    assert len(examples) == 1 + 1 + 2  # 10, 11 and 48 bytes + the end token, in canvases of 32
    assert examples[0].target == tokenizer.encode("cat on mat", add_special_tokens=False) + [turn_end] + [0] * 21
    chat = tokenizer.apply_chat_template([{"role": "user", "content": PAIRS[2]["prompt"]}], tokenize=False,
                                         add_generation_prompt=True)
    prompt = tokenizer.encode(chat, add_special_tokens=False)
    assert [e.prompt for e in examples[2:]] == [prompt + long_response[: i * L] for i in range(2)]
    assert examples[-1].target == long_response[32:] + [turn_end] + [0] * 15


def test_command_fine_tunes_and_saves_a_merged_checkpoint(base, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(pair) + "\n" for pair in PAIRS))
    out = tmp_path / "merged"
    argv = ["--model", str(base), "--data", str(data), "--out", str(out), "--steps", "30", "--lr", "1e-2",
            "--lora-rank", "8", "--lora-alpha", "16", "--batch-size", "4", "--device", "cpu", "--merge"]
    assert main(argv) == 0
    before, after = map(float, re.search(r"([\d.]+) before, ([\d.]+) after", capsys.readouterr().err).groups())
    assert after < 0.6 * before
    merged = load_model(str(out))
    assert merged.args == load_model(str(base)).args
    assert not lora_modules(merged.model)


def test_bad_pairs_are_named_by_line(tmp_path, base, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n')
    assert main(["--model", str(base), "--data", str(data), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 1
    assert 'pairs.jsonl:2: expected an object with string "prompt" and "response"' in capsys.readouterr().err
