"""The quality guard for low-bit weights: how far a quantized model strays from the full-precision one.

Three figures on fixed inputs with fixed seeds:
- step KL and step argmax disagreement: one denoising pass of both models on the same prompt and the same
  corrupted canvas (noise 0.5): the mean KL(full || quantized) in nats per canvas position, and the share of
  positions whose most likely token differs. They measure the weights alone;
- generated disagreement: the share of committed canvas positions that differ when both models run the
  whole sampler from the same prompt and seed. Sampling is chaotic: once one draw differs, the rest of that
  canvas follows a different path, so this is large even for tiny step differences. It is the figure a
  user sees (the same seed no longer gives the same text), not a measure of quality.

`measure` reports them for every format of --quantize; `python -m training.quantized_quality --paragraphs FILE` prints
the table (tests/engine/weights/test_quantize.py bounds them on the shipped model; the README quotes them).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.model.config import DEFAULT_MODEL, QUANTIZE_FORMATS
from engine.model.network import DiffusionGemma
from engine.runtime.generate import Request, generate
from engine.weights.checkpoint import load_model
from engine.weights.quantize import weight_bytes
from training.corpus import read_paragraph_file
from training.evaluate import PROMPT_TOKENS, held_out_examples
from training.examples import CanvasExample, collate
from training.train import corrupt_canvas, encode_prompts

NOISE = 0.5


@dataclass(frozen=True)
class Divergence:
    step_kl: float  # nats per canvas position
    step_argmax_disagreement: float  # share of canvas positions
    generated_disagreement: float  # share of generated positions
    weight_bytes: int = 0  # the candidate's weights (engine.weights.quantize.weight_bytes)


@torch.no_grad()
def step_divergence(
    reference: DiffusionGemma, candidate: DiffusionGemma, examples: list[CanvasExample], seed: int = 0
) -> tuple[float, float]:
    device = reference.embed_tokens.weight.device
    batch = collate(examples, reference.args.pad_token_id, device)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.full((batch.targets.shape[0],), NOISE)
    canvas = corrupt_canvas(batch.targets.cpu(), noise, reference.args.vocab_size, generator).to(device)
    logs = []
    for model in (reference, candidate):
        cache = encode_prompts(model, batch)
        positions = cache.lengths[:, None] + torch.arange(canvas.shape[1], device=device)
        logs.append(F.log_softmax(model.decode(canvas, positions, cache).float(), dim=-1))
    kl = (logs[0].exp() * (logs[0] - logs[1])).sum(-1)  # [B, L]
    flips = (logs[0].argmax(-1) != logs[1].argmax(-1)).float()
    return float(kl.mean()), float(flips.mean())


def generated_disagreement(reference, candidate, prompts: list[list[int]], generation, steps: int = 16) -> float:
    """reference/candidate: LoadedModel-like (.model); the same seeds for both, one request per prompt."""
    differing = total = 0
    for seed, prompt in enumerate(prompts):
        runs = [
            generate(loaded.model, [Request(prompt, seed=seed, max_denoising_steps=steps)], generation)[0].token_ids
            for loaded in (reference, candidate)
        ]
        length = max(map(len, runs))
        padded = [ids + [-1] * (length - len(ids)) for ids in runs]
        differing += sum(a != b for a, b in zip(*padded, strict=True))
        total += length
    return differing / max(total, 1)


def divergence(reference, candidate, examples: list[CanvasExample], prompts: list[list[int]], generation) -> Divergence:
    kl, flips = step_divergence(reference.model, candidate.model, examples)
    generated = generated_disagreement(reference, candidate, prompts, generation)
    return Divergence(kl, flips, generated, weight_bytes(candidate.model))


def measure(model: str, paragraphs: list[str], num_prompts: int = 4) -> dict[str, Divergence]:
    """Every weight format against the model as loaded (float32 on the CPU): fixed inputs, fixed seeds."""
    reference = load_model(model)
    examples = held_out_examples(reference.tokenizer, paragraphs, reference.args.canvas_length)
    prompts = [reference.tokenizer(p)["input_ids"][:PROMPT_TOKENS] for p in paragraphs[:num_prompts]]
    report = {"none": Divergence(0.0, 0.0, 0.0, weight_bytes(reference.model))}
    for fmt in QUANTIZE_FORMATS[1:]:
        report[fmt] = divergence(reference, load_model(model, quantize=fmt), examples, prompts, reference.generation)
    return report


def format_report(report: dict[str, Divergence]) -> str:
    lines = ["| weights | MB | step KL (nats/position) | step argmax differs | sampled tokens differ |",
             "|---|---|---|---|---|"]
    for fmt, row in report.items():
        lines.append(f"| {fmt} | {row.weight_bytes / 1e6:.2f} | {row.step_kl:.4f} | "
                     f"{100 * row.step_argmax_disagreement:.1f} % | {100 * row.generated_disagreement:.0f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the quality guard: every --quantize format against full precision")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a trained model: a shipped name or a checkpoint dir")
    parser.add_argument("--paragraphs", type=Path, required=True, help="held-out text, one paragraph per block")
    options = parser.parse_args(argv)
    print(format_report(measure(options.model, read_paragraph_file(options.paragraphs))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
