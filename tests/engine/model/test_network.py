"""Native encoder and decoder against transformers' model on the same tiny random checkpoints.

Tolerance: 1e-5 absolute on float32 logits, which the soft cap bounds by 30 (1e-5 is ~5 float32 ulps there).
The native model runs the reference's ops in the reference's order on the same kernels and, at batch size 1,
reads the same key sets, so on CPU we measure bit-identical logits; the margin only absorbs a kernel that
reassociates a reduction. Any real mistake (a norm, scalar, mask, RoPE or routing error) moves logits by
more than 1e-2.
"""

from __future__ import annotations

import pytest
import torch
from transformers import DiffusionGemmaForBlockDiffusion
from transformers.cache_utils import DynamicCache

from engine.model.cache import KVCache
from engine.weights.checkpoint import load_checkpoint
from tests.engine.tiny import TinySpec

ATOL = 1e-5
SPECS = [
    TinySpec(),
    TinySpec(num_layers=6, num_experts=16, top_k=4, vocab_size=400, sliding_window=16, canvas_length=24, seed=3),
    TinySpec(num_layers=2, num_experts=4, top_k=1, vocab_size=264, sliding_window=40, seed=5),
]


def random_ids(generator, vocab, *shape):
    return torch.randint(0, vocab, shape, generator=generator)


@pytest.mark.parametrize("spec", SPECS, ids=["4-layers", "6-layers-16-experts", "2-layers-top1"])
def test_encoder_cache_and_decoder_logits_match_transformers(checkpoint, spec):
    directory = checkpoint(spec)
    native = load_checkpoint(directory).model
    reference = DiffusionGemmaForBlockDiffusion.from_pretrained(directory).eval()
    args, L = spec.args, spec.canvas_length
    generator = torch.Generator().manual_seed(spec.seed)
    prompt_len = args.sliding_window + 5  # longer than the window: sliding layers must drop the oldest keys
    prompt = random_ids(generator, args.vocab_size, 1, prompt_len)
    canvas = random_ids(generator, args.vocab_size, 1, L)
    self_cond = 3.0 * torch.randn(1, L, args.vocab_size, generator=generator)
    positions = torch.arange(prompt_len, prompt_len + L)[None]

    with torch.no_grad():
        ref_cache = DynamicCache(config=reference.config.get_text_config(decoder=True))
        reference.model.encoder(input_ids=prompt, past_key_values=ref_cache)
        cache = KVCache.allocate(args, 1, prompt_len + L, torch.float32, "cpu")
        native.encode(prompt, torch.arange(prompt_len)[None], cache)
        cache.lengths[:] = prompt_len
        for layer in range(args.num_layers):
            kept = ref_cache.layers[layer].keys.shape[2]  # sliding layers keep window - 1 keys
            ours = cache.keys[layer][0, prompt_len - kept : prompt_len].transpose(0, 1)
            torch.testing.assert_close(ours, ref_cache.layers[layer].keys[0], atol=ATOL, rtol=0)
            ours = cache.values[layer][0, prompt_len - kept : prompt_len].transpose(0, 1)
            torch.testing.assert_close(ours, ref_cache.layers[layer].values[0], atol=ATOL, rtol=0)

        for logits_in in (None, self_cond):  # first step (no self-conditioning) and a later one
            expected = reference(
                decoder_input_ids=canvas, past_key_values=ref_cache, self_conditioning_logits=logits_in,
                decoder_position_ids=positions,
            ).logits
            mask = None if logits_in is None else torch.tensor([True])
            ours = native.decode(canvas, positions, cache, logits_in, mask)
            assert ours.dtype == torch.float32 and ours.abs().max() <= 30.0
            torch.testing.assert_close(ours, expected, atol=ATOL, rtol=0)

        # commit the canvas through the encoder, then denoise the next canvas
        reference.model.encoder(input_ids=canvas, past_key_values=ref_cache, position_ids=positions)
        native.encode(canvas, positions, cache)
        cache.lengths[:] = prompt_len + L
        expected = reference(
            decoder_input_ids=canvas, past_key_values=ref_cache, self_conditioning_logits=self_cond,
            decoder_position_ids=positions + L,
        ).logits
        ours = native.decode(canvas, positions + L, cache, self_cond, torch.tensor([True]))
        torch.testing.assert_close(ours, expected, atol=ATOL, rtol=0)


def test_a_batch_of_different_prompt_lengths_decodes_like_each_row_alone(checkpoint):
    """Right-padded prefill and per-row masks: each row's logits are its logits alone. Rows see extra,
    masked keys in the batch, which changes reduction blocking only: same 1e-5 tolerance."""
    spec = TinySpec()
    native = load_checkpoint(checkpoint(spec)).model
    args, L = spec.args, spec.canvas_length
    generator = torch.Generator().manual_seed(11)
    prompts = [random_ids(generator, args.vocab_size, n) for n in (3, 19, 11)]  # window is 8
    canvases = random_ids(generator, args.vocab_size, 3, L)
    self_cond = torch.randn(3, L, args.vocab_size, generator=generator)
    with torch.no_grad():
        cache = KVCache.allocate(args, 3, 19, torch.float32, "cpu")
        padded = torch.zeros(3, 19, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            padded[row, : len(prompt)] = prompt
        native.encode(padded, torch.arange(19).expand(3, -1), cache)
        cache.lengths[:] = torch.tensor([3, 19, 11])
        positions = cache.lengths[:, None] + torch.arange(L)
        sc_mask = torch.tensor([True, False, True])
        batched = native.decode(canvases, positions, cache, self_cond, sc_mask)
        for row, prompt in enumerate(prompts):
            alone = KVCache.allocate(args, 1, len(prompt), torch.float32, "cpu")
            native.encode(prompt[None], torch.arange(len(prompt))[None], alone)
            alone.lengths[:] = len(prompt)
            logits_in = self_cond[row : row + 1] if sc_mask[row] else None
            expected = native.decode(canvases[row : row + 1], positions[row : row + 1], alone, logits_in)
            torch.testing.assert_close(batched[row : row + 1], expected, atol=ATOL, rtol=0)


def test_bfloat16_logits_match_transformers_in_bfloat16(checkpoint):
    """bf16 follows the reference's casts (embed scale in the weight dtype, fp32 norms, fp32 routing
    weights), so the same kernels give the same bits; 1e-5 is far below one bf16 ulp of any logit > 0.01,
    so this checks the cast points, not just closeness."""
    spec = TinySpec()
    directory = checkpoint(spec)
    native = load_checkpoint(directory, dtype=torch.bfloat16).model
    reference = DiffusionGemmaForBlockDiffusion.from_pretrained(directory, dtype=torch.bfloat16).eval()
    generator = torch.Generator().manual_seed(2)
    prompt = random_ids(generator, spec.vocab_size, 1, 13)
    canvas = random_ids(generator, spec.vocab_size, 1, spec.canvas_length)
    self_cond = (3.0 * torch.randn(1, spec.canvas_length, spec.vocab_size, generator=generator)).bfloat16()
    positions = torch.arange(13, 13 + spec.canvas_length)[None]
    with torch.no_grad():
        ref_cache = DynamicCache(config=reference.config.get_text_config(decoder=True))
        reference.model.encoder(input_ids=prompt, past_key_values=ref_cache)
        expected = reference(
            decoder_input_ids=canvas, past_key_values=ref_cache, self_conditioning_logits=self_cond,
            decoder_position_ids=positions,
        ).logits
        cache = KVCache.allocate(spec.args, 1, 13, torch.bfloat16, "cpu")
        native.encode(prompt, torch.arange(13)[None], cache)
        cache.lengths[:] = 13
        ours = native.decode(canvas, positions, cache, self_cond, torch.tensor([True]))
    torch.testing.assert_close(ours, expected, atol=ATOL, rtol=0)
