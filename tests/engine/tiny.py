"""Tiny random DiffusionGemma checkpoints written by transformers itself, for the engine tests."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.model.config import FULL, SLIDING, GenerationArgs, ModelArgs
from engine.runtime.reference import hf_config
from engine.text.tokenizer import TURN_END_ID, byte_tokenizer

EOS_IDS = (1, TURN_END_ID)


@dataclass(frozen=True)
class TinySpec:
    """A checkpoint's shapes and weights. Dims stay multiples of 8: transformers' grouped_mm on the CPU needs
    16-byte aligned strides."""

    num_layers: int = 4
    num_experts: int = 8
    top_k: int = 2
    vocab_size: int = 320
    sliding_window: int = 8
    canvas_length: int = 16
    hidden_size: int = 64
    seed: int = 0
    confident_token: int | None = None  # make the model near-certain of this token everywhere
    max_shard_size: str | None = None
    max_new_tokens: int = 32
    max_denoising_steps: int = 12

    @property
    def args(self) -> ModelArgs:
        # the last layer must be global (transformers forces it); one more in the middle
        layer_types = tuple(FULL if i == self.num_layers - 1 or i % 3 == 1 else SLIDING for i in range(self.num_layers))
        return ModelArgs(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=4,
            num_kv_heads=2,
            head_dim=16,
            sliding_window=self.sliding_window,
            num_global_kv_heads=1,
            global_head_dim=32,
            intermediate_size=96,
            num_experts=self.num_experts,
            num_experts_per_token=self.top_k,
            moe_intermediate_size=32,
            layer_types=layer_types,
            canvas_length=self.canvas_length,
            max_context=512,
        )

    @property
    def generation(self) -> GenerationArgs:
        return GenerationArgs(
            max_new_tokens=self.max_new_tokens, max_denoising_steps=self.max_denoising_steps, eos_token_ids=EOS_IDS
        )


def reference_model(spec: TinySpec):
    """transformers' model for the spec, every weight random (norm weights and both sets of layer scalars
    included, so that a swapped or missing one shows)."""
    from transformers import DiffusionGemmaForBlockDiffusion

    torch.manual_seed(spec.seed)
    model = DiffusionGemmaForBlockDiffusion(hf_config(spec.args)).eval()
    generator = torch.Generator().manual_seed(spec.seed)
    with torch.no_grad():
        for param in model.parameters():
            noise = torch.randn(param.shape, generator=generator)
            param.copy_(1.0 + 0.1 * noise if param.dim() == 1 else 0.05 * noise)
        for name, buffer in model.named_buffers():
            if name.endswith("layer_scalar"):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))
        if spec.confident_token is not None:
            _make_confident(model, spec.confident_token)
    return model


def write_checkpoint(spec: TinySpec, directory: Path) -> Path:
    model = reference_model(spec)
    kwargs = {"max_shard_size": spec.max_shard_size} if spec.max_shard_size else {}
    model.save_pretrained(directory, **kwargs)
    (directory / "generation_config.json").write_text(json.dumps(spec.generation.to_hf_dict()))
    byte_tokenizer(spec.vocab_size).save_pretrained(directory)
    return directory


def _make_confident(model, token: int) -> None:
    """Every canvas position predicts `token` with entropy ~1e-8, whatever the input, so the sampler accepts
    everything and stops at its second step.

    Hidden coordinate 0 is made large and positive for every input embedding, the layers' additions are
    shrunk so it stays positive, and the token's row gets 10x that coordinate: its logit then leads every
    other by ~20 (after the soft cap), i.e. 25+ nats at the sampler's temperatures.
    """
    embed = model.model.decoder.embed_tokens.weight  # tied: encoder input, decoder input and lm_head
    embed[:, 0] = 1.0
    embed[token, 0] = 10.0
    for name, param in model.named_parameters():
        if "post_attention_layernorm" in name or name.endswith("post_feedforward_layernorm.weight"):
            param.mul_(0.05)
    model.model.decoder.norm.weight[0] = 0.5


def spec_with(spec: TinySpec, **changes) -> TinySpec:
    return dataclasses.replace(spec, **changes)
