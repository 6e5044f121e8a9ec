"""Training: DiffusionGemma's block-diffusion objective for the native model, the loop, and saving a checkpoint.

The objective, one step for a batch of (prompt, clean canvas) pairs:
1. The causal encoder reads the clean prompt and writes the KV cache (`DiffusionGemma.encode`, with gradients:
   the encoder is trained through what the decoder reads from the cache).
2. Each row draws one noise level t ~ U(min_noise, 1), and every canvas position is independently replaced by
   a uniformly random vocabulary id with probability t. There is no mask token: the sampler's canvases are
   uniform noise too. An edit example (fix, shorten: training/examples.py) corrupts its source canvas, the
   shown passage, instead of the target in half of the draws (SOURCE_SHARE): a sampler that starts from the
   passage sees that canvas first, and the model must learn to edit it, not only to denoise its own answer.
3. Self-conditioning as the sampler feeds it: with probability `self_cond_prob` per row, a first decoder pass
   without gradients produces logits; they are divided by the sampler's temperature for that noise level
   (T = t_min + (t_max - t_min) * t, the schedule `temperature` walks as the canvas gets cleaner), cast to
   the model's dtype as `denoise_step` keeps them, and passed to the second pass through the same
   `self_cond_logits` / `self_cond_mask` arguments `denoise_step` uses. Other rows get zeros, as a canvas'
   first step does.
4. Cross-entropy of the second pass' soft-capped logits against the clean canvas, at every canvas position
   (corrupted or not), averaged.
5. Optionally (`encoder_loss_weight`), plus the encoder's own next-token cross-entropy over the prompts
   marked `score_prompt` (`encode(..., return_hidden=True)` runs the last layer it otherwise skips).

Choices, read against NVIDIA's two DiffusionGemma SFT implementations (NeMo AutoModel's
DiffusionGemmaSFTRecipe and Megatron-Bridge's diffusion_gemma_step; the code here is our own):
- Both draw one t per example from U(eps, 1) and corrupt with uniform random tokens; so do we (eps 1e-3,
  Megatron-Bridge's `diffusion_noise_min`).
- Both score a flat cross-entropy over the canvas with weight 1 (Megatron-Bridge's default `base-sft`; its
  1/(1-t) re-weighted variants are options we leave out). Megatron-Bridge masks the padding after EOS out of
  the loss; we score it, because the sampler's stopping test averages the entropy over the whole canvas and
  only a model confident about the pad after its end token lets a finished canvas stop early.
- Both use detached two-pass self-conditioning mixed in per example (Megatron-Bridge's probability defaults
  to 0, NeMo's guide leaves it to the recipe); we use 0.5, and feed the first pass' temperature-scaled
  logits, which is what the sampler hands the next step.
- NeMo runs the encoder once over the clean prompt + response and lets each canvas read the prefix before it
  through a block-causal mask, so one pass trains every canvas of a long response. We make one example per
  canvas instead (the prompt plus the canvases committed before it, `training.examples`): the same cache
  contents at a higher cost, through the very `encode`/`decode` calls inference makes.
- NeMo co-trains a next-token loss on the encoder (the same weights in their causal mode) and Megatron-Bridge
  offers one (weight 1 by default). We offer it too: weight 1 for a model from scratch, scored only on plain
  text prompts (a rewrite or fill prompt is two-thirds instruction template); it gives every prompt token a
  target instead of only the 32 canvas positions. Fine-tuning defaults to 0: on a real vocabulary the
  [prompt, 262144] logits it needs cost more memory than the adapters. On redraft-small it adds about a
  third to the time of a plain-text step (0.57 -> 0.77 s at batch 32 on one thread).
- NeMo freezes the router during SFT and neither adds a load-balancing loss. A LoRA fine-tune here trains
  adapters only (router included in the frozen part); a model trained from scratch (`redraft-small`) trains
  its router, with no balancing loss.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from engine.model.cache import KVCache
from engine.model.config import GenerationArgs, ModelArgs
from engine.model.network import DiffusionGemma
from engine.weights.checkpoint import hf_name
from jobs.tasks import ModelTasks
from training.examples import Batch

BUDGET_PROBE_STEPS = 20  # steps timed before a time budget fixes the step count
SOURCE_SHARE = 0.5  # of the rows with a source canvas, the share whose corruption starts from it


@dataclass(frozen=True)
class TrainArgs:
    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decay to lr x this
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    self_cond_prob: float = 0.5
    min_noise: float = 1e-3
    encoder_loss_weight: float = 0.0  # x the encoder's next-token loss on the prompt, added to the canvas loss
    seed: int = 0
    log_every: int = 25
    # wall-clock budget: after the first BUDGET_PROBE_STEPS steps, `steps` shrinks to what fits in it (the
    # learning-rate schedule then decays over the steps that will run); None: exactly `steps`
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"TrainArgs.{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainArgs.lr must be > 0, got {self.lr}")
        for name in ("self_cond_prob", "min_lr_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"TrainArgs.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.min_noise < 1.0:
            raise ValueError(f"TrainArgs.min_noise must be in [0, 1), got {self.min_noise}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip <= 0:
            raise ValueError("TrainArgs.warmup_steps and weight_decay must be >= 0, grad_clip > 0")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"TrainArgs.time_budget_s must be > 0, got {self.time_budget_s}")
        if self.encoder_loss_weight < 0:
            raise ValueError(f"TrainArgs.encoder_loss_weight must be >= 0, got {self.encoder_loss_weight}")


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar: canvas_loss + encoder_loss_weight x encoder_loss
    logits: torch.Tensor  # [B, L, V] of the graded pass
    noise_level: torch.Tensor  # [B]
    self_cond_mask: torch.Tensor  # [B] bool
    canvas_loss: torch.Tensor  # scalar
    encoder_loss: torch.Tensor | None  # scalar, when weighted in


def noise_levels(batch_size: int, min_noise: float, generator: torch.Generator, device) -> torch.Tensor:
    """One corruption level per row, U(min_noise, 1): [B] fp32."""
    u = torch.rand(batch_size, generator=generator, device=generator.device).to(device)
    return min_noise + (1.0 - min_noise) * u


def corrupt_canvas(
    targets: torch.Tensor, noise_level: torch.Tensor, vocab_size: int, generator: torch.Generator
) -> torch.Tensor:
    """Each position of targets [B, L] replaced by a uniform random id with probability noise_level [B]."""
    device = generator.device
    replace = torch.rand(targets.shape, generator=generator, device=device) < noise_level.to(device)[:, None]
    noise = torch.randint(0, vocab_size, targets.shape, generator=generator, device=device)
    return torch.where(replace.to(targets.device), noise.to(targets.device), targets)


def self_cond_temperature(noise_level: torch.Tensor, generation: GenerationArgs) -> torch.Tensor:
    """The sampler's temperature at the point of its schedule a noise level stands for: [B]."""
    return generation.t_min + (generation.t_max - generation.t_min) * noise_level


def encode_prompts(model: DiffusionGemma, batch: Batch, return_hidden: bool = False):
    """The encoder over right-padded prompts into a fresh cache (gradients flow through its K/V).
    Returns the cache, or (cache, final hidden states [B, P, D]) with return_hidden."""
    rows, longest = batch.prompts.shape
    cache = KVCache.allocate(model.args, rows, longest, model.dtype, batch.prompts.device)
    positions = torch.arange(longest, device=batch.prompts.device).expand(rows, -1)
    hidden = model.encode(batch.prompts, positions, cache, kv_len=longest, return_hidden=return_hidden)
    cache.lengths = batch.prompt_lengths.clone()
    return (cache, hidden) if return_hidden else cache


def encoder_next_token_loss(model: DiffusionGemma, batch: Batch, hidden: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the encoder's prediction of each next prompt token, over the rows whose prompt is
    scored (padding excluded)."""
    targets = batch.prompts[:, 1:]
    valid = torch.arange(targets.shape[1], device=targets.device) < (batch.prompt_lengths[:, None] - 1)
    valid &= batch.score_prompt[:, None]
    return F.cross_entropy(model.logits(hidden[:, :-1][valid]), targets[valid])


def diffusion_loss(
    model: DiffusionGemma,
    batch: Batch,
    generation: GenerationArgs,
    generator: torch.Generator,
    self_cond_prob: float = 0.5,
    min_noise: float = 1e-3,
    noise_level: torch.Tensor | None = None,
    encoder_loss_weight: float = 0.0,
) -> LossOutput:
    """The block-diffusion loss of one batch (see the module docstring); noise_level [B] overrides the draw."""
    rows, L = batch.targets.shape
    device = batch.targets.device
    encoder_loss = None
    if encoder_loss_weight > 0 and bool((batch.score_prompt & (batch.prompt_lengths > 1)).any()):
        cache, hidden = encode_prompts(model, batch, return_hidden=True)
        encoder_loss = encoder_next_token_loss(model, batch, hidden)
    else:
        cache = encode_prompts(model, batch)
    positions = cache.lengths[:, None] + torch.arange(L, device=device)  # [B, L]
    if noise_level is None:
        noise_level = noise_levels(rows, min_noise, generator, device)
    base = batch.targets
    if bool(batch.has_source.any()):  # (no draw otherwise: plain batches keep their random stream)
        draw = torch.rand(rows, generator=generator, device=generator.device) < SOURCE_SHARE
        base = torch.where((batch.has_source & draw.to(device))[:, None], batch.sources, batch.targets)
    canvas = corrupt_canvas(base, noise_level, model.args.vocab_size, generator)
    self_cond_mask = (torch.rand(rows, generator=generator, device=generator.device) < self_cond_prob).to(device)
    self_cond_logits = None
    if bool(self_cond_mask.any()):
        with torch.no_grad():
            first = model.decode(canvas, positions, cache)  # [B, L, V] fp32, zero self-conditioning
        temp = self_cond_temperature(noise_level, generation)
        self_cond_logits = (first / temp[:, None, None]).to(model.dtype)
    mask = self_cond_mask if self_cond_logits is not None else None
    logits = model.decode(canvas, positions, cache, self_cond_logits, mask)
    canvas_loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten())
    loss = canvas_loss if encoder_loss is None else canvas_loss + encoder_loss_weight * encoder_loss
    return LossOutput(loss, logits, noise_level, self_cond_mask, canvas_loss, encoder_loss)


def make_optimizer(params: list[torch.nn.Parameter], args: TrainArgs) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not on norm weights and scales)."""
    decay = [p for p in params if p.dim() >= 2]
    keep = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": keep, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=args.lr, betas=(0.9, 0.95))


def learning_rate(step: int, args: TrainArgs) -> float:
    """Linear warm-up, then cosine decay to lr x min_lr_ratio at the last step."""
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    progress = (step - args.warmup_steps) / max(1, args.steps - args.warmup_steps)
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    model: DiffusionGemma,
    next_batch: Callable[[int], Batch],
    args: TrainArgs,
    generation: GenerationArgs,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[float]:
    """Runs args.steps optimizer steps on the parameters that require grad; returns the loss of each step."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no parameter requires grad: nothing to train")
    optimizer = make_optimizer(params, args)
    generator = torch.Generator(device=params[0].device).manual_seed(args.seed)
    losses: list[float] = []
    canvas_losses: list[float] = []
    encoder_losses: list[float] = []
    started = time.perf_counter()
    model.train()
    step = 0
    while step < args.steps:
        if args.time_budget_s is not None and step == BUDGET_PROBE_STEPS:
            per_step = (time.perf_counter() - started) / step
            fits = int(0.9 * args.time_budget_s / per_step)  # a margin: the probe includes no slow batch yet
            args = replace(args, steps=max(step + 1, min(args.steps, fits)))
            log(f"{per_step:.2f} s a step: {args.steps} steps fit the {args.time_budget_s:.0f} s budget")
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        out = diffusion_loss(
            model, next_batch(step), generation, generator, args.self_cond_prob, args.min_noise,
            encoder_loss_weight=args.encoder_loss_weight,
        )
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
        canvas_losses.append(out.canvas_loss.item())
        if out.encoder_loss is not None:
            encoder_losses.append(out.encoder_loss.item())
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            elapsed = time.perf_counter() - started
            recent = slice(-args.log_every, None)
            eta = elapsed / (step + 1) * (args.steps - step - 1)
            lr = optimizer.param_groups[0]["lr"]
            encoder = f", encoder {_mean(encoder_losses[recent]):.4f}" if encoder_losses[recent] else ""
            log(
                f"step {step + 1}/{args.steps}  loss {_mean(losses[recent]):.4f} (canvas "
                f"{_mean(canvas_losses[recent]):.4f}{encoder})  lr {lr:.2e}  "
                f"{elapsed:.0f} s elapsed, ~{eta:.0f} s to go"
            )
        step += 1
    model.eval()
    return losses


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def save_checkpoint(
    model: DiffusionGemma,
    generation: GenerationArgs,
    tokenizer,
    directory: Path,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """The Hugging Face layout transformers saves and `load_checkpoint` reads: config.json,
    generation_config.json, model.safetensors (shared weights once, under the decoder), tokenizer files."""
    from engine.runtime.reference import hf_config

    directory.mkdir(parents=True, exist_ok=True)
    hf_config(model.args).save_pretrained(directory)
    (directory / "generation_config.json").write_text(json.dumps(generation.to_hf_dict(), indent=2) + "\n")
    tensors = {hf_name(name): t.detach().to("cpu", dtype).contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
        _template_in_config(tokenizer, directory)
    return directory


def declare_tasks(directory: Path, tasks: ModelTasks) -> None:
    """Writes what the model was trained to do into its config.json (jobs/tasks.py reads it back)."""
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config["redraft"] = tasks.to_dict()
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _template_in_config(tokenizer, directory: Path) -> None:
    """transformers 5 writes the chat template to chat_template.jinja; older loaders look in
    tokenizer_config.json: put it in both."""
    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["chat_template"] = tokenizer.chat_template
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def trainable_model(args: ModelArgs, seed: int, device: torch.device | str = "cpu") -> DiffusionGemma:
    """Random float32 weights with every parameter trainable: the presets' initialisation, except two scales
    that at a small width leave a model from scratch barely able to learn in its first few hundred steps.

    - The tied embedding: std hidden^-0.5 (not 0.02), so that the embedding x sqrt(hidden) the model feeds in
      has unit RMS and the logits h . e start with unit spread; 0.02 at width 128 starts them at 0.23.
    - q_norm and k_norm weights: head_dim^-0.25 (not 1), so that with the attention scale of 1.0 the scores of
      unit-RMS queries and keys start at unit spread instead of sqrt(head_dim): near one-hot attention on
      random keys passes almost no gradient. (The real model learnt its norm weights; only training from
      scratch needs this.)
    On the python-docs task these took the plain-canvas loss after 150 steps from 4.01 to 3.68.
    """
    from engine.weights.checkpoint import random_model

    model = random_model(args, device, torch.float32, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        embed = torch.empty(model.embed_tokens.weight.shape).normal_(0.0, args.hidden_size**-0.5, generator=generator)
        model.embed_tokens.weight.copy_(embed)
        for layer in model.layers:
            attention = layer.self_attn
            attention.q_norm.weight.fill_(attention.head_dim**-0.25)
            attention.k_norm.weight.fill_(attention.head_dim**-0.25)
    return model.requires_grad_(True)
