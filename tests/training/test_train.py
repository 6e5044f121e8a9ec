"""The block-diffusion objective: corruption, self-conditioning as the sampler feeds it, learning, saving."""

from __future__ import annotations

import pytest
import torch

from engine.model.config import MODEL_PRESETS, GenerationArgs
from engine.runtime.generate import Request, generate
from engine.runtime.reference import load_reference, reference_generate
from engine.runtime.sampler import temperature
from engine.text.tokenizer import byte_tokenizer
from engine.weights.checkpoint import load_checkpoint
from training.examples import CanvasExample, collate
from training.train import (
    TrainArgs,
    corrupt_canvas,
    diffusion_loss,
    encode_prompts,
    encoder_next_token_loss,
    save_checkpoint,
    self_cond_temperature,
    train,
    trainable_model,
)

TINY = MODEL_PRESETS["tiny"]
GENERATION = GenerationArgs(eos_token_ids=(1, 6))


def two_class_examples(num: int, seed: int) -> list[CanvasExample]:
    """Prompts of random length whose second token picks one of two fixed target canvases."""
    rng = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(num):
        length = int(torch.randint(3, 12, (1,), generator=rng))
        prompt = [2, *torch.randint(10, 300, (length,), generator=rng).tolist()]
        start = 40 if prompt[1] % 2 else 120
        examples.append(CanvasExample(prompt, list(range(start, start + TINY.canvas_length))))
    return examples


def test_corruption_replaces_each_position_with_probability_t():
    targets = torch.full((4, 4096), 7)
    generator = torch.Generator().manual_seed(0)
    noisy = corrupt_canvas(targets, torch.tensor([0.0, 0.25, 0.75, 1.0]), 320, generator)
    changed = (noisy != targets).float().mean(dim=1)
    # a replacement draws 7 again with probability 1/320; 4096 draws: binomial std <= 0.008, so 0.03 is > 3 std
    expected = torch.tensor([0.0, 0.25, 0.75, 1.0]) * (1 - 1 / 320)
    assert torch.allclose(changed, expected, atol=0.03)
    assert changed[0] == 0.0
    assert int(noisy.min()) >= 0 and int(noisy.max()) < 320


def test_self_conditioning_temperature_follows_the_sampler_schedule():
    # noise 1.0 is a canvas' first step (cur_step = N); lower noise, later steps
    steps = torch.tensor([48, 24, 12], dtype=torch.int32)
    sampler = temperature(steps, torch.full((3,), 48, dtype=torch.int32), GENERATION.t_min, GENERATION.t_max)
    ours = self_cond_temperature(torch.tensor([1.0, 0.5, 0.25]), GENERATION)
    assert torch.allclose(ours, sampler, atol=1e-7)


class DecodeSpy:
    """Records every decoder call of a model: its self-conditioning inputs and its output."""

    def __init__(self, model):
        self.calls = []
        self.decode = model.decode
        model.decode = self

    def __call__(self, canvas, positions, cache, self_cond_logits=None, self_cond_mask=None, **kwargs):
        out = self.decode(canvas, positions, cache, self_cond_logits, self_cond_mask, **kwargs)
        self.calls.append((self_cond_logits, self_cond_mask, out, torch.is_grad_enabled()))
        return out


def test_second_pass_is_self_conditioned_on_the_first_as_at_inference():
    model = trainable_model(TINY, seed=0)
    spy = DecodeSpy(model)
    batch = collate(two_class_examples(4, seed=1), pad_id=0)
    noise = torch.tensor([1.0, 0.7, 0.4, 0.1])
    generator = torch.Generator().manual_seed(0)
    out = diffusion_loss(model, batch, GENERATION, generator, self_cond_prob=1.0, noise_level=noise)
    (first_logits, first_mask, first, first_grad), (logits, mask, second, second_grad) = spy.calls
    assert first_logits is None and first_mask is None and not first_grad  # zeros, as a canvas' first step
    temp = GENERATION.t_min + (GENERATION.t_max - GENERATION.t_min) * noise
    assert torch.equal(logits, (first / temp[:, None, None]).to(model.dtype))  # what denoise_step hands on
    assert mask.tolist() == [True] * 4 and second_grad
    assert out.logits is second and out.self_cond_mask.tolist() == [True] * 4


def test_without_self_conditioning_there_is_one_pass():
    model = trainable_model(TINY, seed=0)
    spy = DecodeSpy(model)
    batch = collate(two_class_examples(4, seed=1), pad_id=0)
    diffusion_loss(model, batch, GENERATION, torch.Generator().manual_seed(0), self_cond_prob=0.0)
    ((logits, mask, _, grad),) = spy.calls
    assert logits is None and mask is None and grad


def test_rows_without_self_conditioning_get_zeros():
    model = trainable_model(TINY, seed=0)
    spy = DecodeSpy(model)
    batch = collate(two_class_examples(8, seed=1), pad_id=0)
    out = diffusion_loss(model, batch, GENERATION, torch.Generator().manual_seed(3), self_cond_prob=0.5)
    _, (logits, mask, _, _) = spy.calls
    assert 0 < int(mask.sum()) < 8  # seed 3 mixes both
    soft = model.soft_embeddings(batch.targets, logits, mask)
    assert soft[~mask].abs().max() == 0 and soft[mask].abs().amax(dim=(1, 2)).min() > 0
    assert torch.equal(out.self_cond_mask, mask)


def test_encoder_loss_scores_each_next_prompt_token_and_not_the_padding():
    model = trainable_model(TINY, seed=0)
    examples = [CanvasExample([2, 30, 31], [5] * 32), CanvasExample([2, 40, 41, 42, 43, 44, 45], [5] * 32)]
    batch = collate(examples, pad_id=0)
    with torch.no_grad():
        cache, hidden = encode_prompts(model, batch, return_hidden=True)
        loss = encoder_next_token_loss(model, batch, hidden)
        plain_cache = encode_prompts(model, batch)
        # each prompt alone (no padding anywhere), its mean weighted by its 2 and 6 predicted tokens
        alone = [encoder_next_token_loss(model, b, encode_prompts(model, b, True)[1]) for b in
                 (collate([e], 0) for e in examples)]
    assert torch.allclose(loss, (2 * alone[0] + 6 * alone[1]) / 8, rtol=1e-5)  # fp32 summation order only
    assert all(torch.equal(a, b) for a, b in zip(cache.keys, plain_cache.keys, strict=True))  # same cache


def test_loss_decreases_within_a_few_dozen_steps():
    torch.manual_seed(0)
    model = trainable_model(TINY, seed=0)
    examples = two_class_examples(64, seed=2)
    args = TrainArgs(steps=60, batch_size=8, lr=1e-2, warmup_steps=5, seed=0, log_every=60)
    batches = [collate(examples[i : i + 8], 0) for i in range(0, 64, 8)]
    losses = train(model, lambda step: batches[step % 8], args, GENERATION, log=lambda _: None)
    assert losses[0] > 5.0  # ln(320) = 5.8 for a uniform guess; nothing is learnt before the first step
    assert sum(losses[-5:]) / 5 < 0.4 * losses[0], losses


def test_training_follows_the_seed():
    def run():
        model = trainable_model(TINY, seed=1)
        examples = two_class_examples(16, seed=2)
        args = TrainArgs(steps=3, batch_size=8, seed=5, log_every=3)
        return train(model, lambda step: collate(examples[8 * (step % 2) :][:8], 0), args, GENERATION, lambda _: None)

    assert run() == run()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model after a few steps (so no weight is at its initial value), saved both ways."""
    model = trainable_model(TINY, seed=0)
    examples = two_class_examples(16, seed=4)
    args = TrainArgs(steps=5, batch_size=8, log_every=5)
    train(model, lambda step: collate(examples[:8], 0), args, GENERATION, lambda _: None)
    tokenizer = byte_tokenizer(TINY.vocab_size)
    fp32 = save_checkpoint(model, GENERATION, tokenizer, tmp_path_factory.mktemp("fp32"), dtype=torch.float32)
    bf16 = save_checkpoint(model, GENERATION, tokenizer, tmp_path_factory.mktemp("bf16"))
    return model, fp32, bf16


def logits_of(model, examples):
    batch = collate(examples, 0)
    with torch.no_grad():
        out = diffusion_loss(model, batch, GENERATION, torch.Generator().manual_seed(9), self_cond_prob=0.5)
    return out.logits


def test_saved_checkpoint_reloads_to_the_same_logits(trained):
    model, fp32, _ = trained
    loaded = load_checkpoint(fp32)
    assert loaded.args == TINY
    assert loaded.generation == GENERATION
    saved = loaded.model.state_dict()
    assert all(torch.equal(saved[name], tensor) for name, tensor in model.state_dict().items())
    examples = two_class_examples(6, seed=7)
    # The same weights, but safetensors maps the file and hands out views at whatever offset each tensor sits:
    # fp32 kernels round differently on unaligned data (1.7e-6 seen on these logits, of magnitude < 30).
    assert torch.allclose(logits_of(loaded.model, examples), logits_of(model, examples), rtol=0, atol=1e-5)
    assert loaded.tokenizer.chat_template == byte_tokenizer(TINY.vocab_size).chat_template


def test_bf16_storage_reloads_to_the_rounded_weights(trained):
    model, _, bf16 = trained
    loaded = load_checkpoint(bf16)  # read as float32
    rounded = trainable_model(TINY, seed=0)
    with torch.no_grad():
        for target, source in zip(rounded.parameters(), model.parameters(), strict=True):
            target.copy_(source.to(torch.bfloat16))
    saved = loaded.model.state_dict()
    assert all(torch.equal(saved[name], tensor) for name, tensor in rounded.state_dict().items())
    examples = two_class_examples(6, seed=7)
    assert torch.allclose(logits_of(loaded.model, examples), logits_of(rounded, examples), rtol=0, atol=1e-5)


def test_saved_checkpoint_is_what_transformers_loads(trained):
    """The same Hugging Face layout as the real checkpoint: transformers' generate gives the native ids."""
    _, fp32, _ = trained
    native = load_checkpoint(fp32)
    reference = load_reference(str(fp32), "cpu", torch.float32)
    generation = native.generation.replace(max_new_tokens=32, max_denoising_steps=6)
    prompt = [2, 50, 51, 52, 53]
    expected, steps = reference_generate(reference, prompt, generation, seed=3)
    (result,) = generate(native.model, [Request(prompt, seed=3)], generation, rng="reference")
    assert (result.token_ids, result.steps) == (expected, steps)
