"""Evaluation of a trained model: canvas reconstruction against a unigram baseline, and sample redrafts.

Reconstruction: held-out paragraphs, each cut into a prompt (<bos> + its first 16 tokens) and the next
canvas of text; the canvas is corrupted at a fixed noise level exactly as in training (4 draws per canvas).
Two figures per predictor: accuracy (the share of canvas positions where the argmax is the clean token) and
cross-entropy (nats per position). Two model predictors: one decoder pass with no self-conditioning (a
canvas' first step) and a second pass self-conditioned on the first (every later step).

The baseline knows the noise level t and the unigram frequencies p of the training text (token_counts.json
beside the model, add-one smoothed), nothing of the context: its posterior for an observed token w is
p(x)((1 - t)[x = w] + t/V) / (p(w)(1 - t) + t/V). Its argmax keeps w unless the most frequent token m is
likelier (p(w)(1 - t + t/V) < p(m) t/V), so at noise 1.0 it always says m. A model without token counts is
scored against the frequencies of the evaluated canvases themselves (an oracle: optimistic for the baseline).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.model.config import GenerationArgs
from engine.model.network import DiffusionGemma
from training.corpus import sentences
from training.corruption import misspell_words
from training.examples import CanvasExample, collate
from training.train import corrupt_canvas, encode_prompts, self_cond_temperature

NOISE_LEVELS = (0.25, 0.5, 0.75, 1.0)
PROMPT_TOKENS = 16
DRAWS = 4  # corruption draws per canvas and noise level
TOKEN_COUNTS = "token_counts.json"


@dataclass(frozen=True)
class AccuracyRow:
    noise: float
    unigram: float  # accuracies
    one_pass: float  # no self-conditioning: a canvas' first step
    self_conditioned: float  # second pass, self-conditioned on the first
    unigram_ce: float  # cross-entropies, nats per position
    one_pass_ce: float
    self_conditioned_ce: float


def write_token_counts(streams: list[list[int]], vocab_size: int, directory: Path) -> None:
    """How often each id occurs in the training text: the unigram baseline's frequencies."""
    counts = torch.zeros(vocab_size, dtype=torch.long)
    for stream in streams:
        counts += torch.bincount(torch.tensor(stream, dtype=torch.long), minlength=vocab_size)
    payload = {"source": "the training text, tokenized", "counts": counts.tolist()}
    (directory / TOKEN_COUNTS).write_text(json.dumps(payload) + "\n")


def read_token_counts(directory: Path) -> torch.Tensor | None:
    path = directory / TOKEN_COUNTS
    return torch.tensor(json.loads(path.read_text())["counts"]) if path.is_file() else None


@dataclass(frozen=True)
class Sample:
    kind: str  # rewrite or fill
    shown: str  # the passage as given (rewrite), or "" (fill)
    original: str  # the held-out sentence
    output: str  # the model's redraft


def held_out_examples(tokenizer, paragraphs: list[str], canvas_length: int) -> list[CanvasExample]:
    """(<bos> + first 16 tokens, next canvas) of each paragraph long enough to fill the canvas with text."""
    examples = []
    for paragraph in paragraphs:
        ids = tokenizer.encode(paragraph, add_special_tokens=False)
        if len(ids) >= PROMPT_TOKENS + canvas_length:
            prompt = [tokenizer.bos_token_id, *ids[:PROMPT_TOKENS]]
            examples.append(CanvasExample(prompt, ids[PROMPT_TOKENS : PROMPT_TOKENS + canvas_length]))
    return examples


@torch.no_grad()
def reconstruction_accuracy(
    model: DiffusionGemma,
    examples: list[CanvasExample],
    generation: GenerationArgs,
    token_counts: torch.Tensor | None = None,
    noise_levels: tuple[float, ...] = NOISE_LEVELS,
    seed: int = 0,
    batch_size: int = 32,
) -> list[AccuracyRow]:
    if not examples:
        raise ValueError("no held-out example is long enough to fill a canvas")
    device = model.embed_tokens.weight.device
    vocab = model.args.vocab_size
    targets = torch.tensor([example.target for example in examples])
    if token_counts is None:  # the oracle: frequencies of the evaluated canvases
        frequency = torch.bincount(targets.flatten(), minlength=vocab).double() / targets.numel()  # [V]
    else:
        frequency = (token_counts.double() + 1) / (token_counts.sum() + vocab)  # [V], add-one smoothed
    rows = []
    for level, noise in enumerate(noise_levels):
        generator = torch.Generator().manual_seed(seed * 1000 + level)
        hits, nats = torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.float64)
        for _ in range(DRAWS):
            for start in range(0, len(examples), batch_size):
                batch = collate(examples[start : start + batch_size], model.args.pad_token_id, device)
                noise_level = torch.full((batch.targets.shape[0],), noise)
                canvas = corrupt_canvas(batch.targets.cpu(), noise_level, vocab, generator).to(device)
                cache = encode_prompts(model, batch)
                positions = cache.lengths[:, None] + torch.arange(canvas.shape[1], device=device)
                first = model.decode(canvas, positions, cache)
                temp = self_cond_temperature(noise_level.to(device), generation)
                second = model.decode(canvas, positions, cache, (first / temp[:, None, None]).to(model.dtype))
                clean = batch.targets.cpu()
                unigram_prediction, unigram_nats = _unigram(canvas.cpu(), clean, frequency, noise)
                predictions = (unigram_prediction, first.argmax(-1).cpu(), second.argmax(-1).cpu())
                for i, prediction in enumerate(predictions):
                    hits[i] += int((prediction == clean).sum())
                nats += torch.tensor([unigram_nats, _nats(first, batch.targets), _nats(second, batch.targets)])
        total = DRAWS * targets.numel()
        rows.append(AccuracyRow(noise, *(int(h) / total for h in hits), *(float(n) / total for n in nats)))
    return rows


def _unigram(observed: torch.Tensor, clean: torch.Tensor, frequency: torch.Tensor, noise: float):
    """The baseline's argmax and its summed negative log-likelihood of the clean tokens."""
    vocab = frequency.shape[0]
    top = int(frequency.argmax())
    keep = frequency[observed] * (1 - noise + noise / vocab) >= frequency[top] * noise / vocab
    prediction = torch.where(keep, observed, torch.full_like(observed, top))
    same = (clean == observed).double()
    evidence = frequency[observed] * (1 - noise) + noise / vocab
    posterior = frequency[clean] * ((1 - noise) * same + noise / vocab) / evidence
    return prediction, float(-posterior.log().sum())


def _nats(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float(F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum"))


def format_accuracy(rows: list[AccuracyRow], num_examples: int) -> str:
    lines = [
        f"canvas reconstruction, {num_examples} held-out canvases x {DRAWS} corruption draws",
        "| noise | accuracy: unigram | model, 1 pass | model, self-cond. | nats/token: unigram | model, 1 pass "
        "| model, self-cond. |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.noise:.2f} | {r.unigram:.3f} | {r.one_pass:.3f} | {r.self_conditioned:.3f} | {r.unigram_ce:.2f} "
            f"| {r.one_pass_ce:.2f} | {r.self_conditioned_ce:.2f} |"
        )
    return "\n".join(lines)


def sample_redrafts(loaded, paragraphs: list[str], seed: int = 0, count: int = 3) -> list[Sample]:
    """`count` fixes (of a sentence given with typos) and `count` fills (of a removed sentence) of held-out
    paragraphs, through engine.text.prompts and engine.runtime.generate as the server would ask for them."""
    from engine.runtime.generate import Request, generate
    from engine.text.prompts import RedraftPrompt, encode_prompt, prompt_budget
    from jobs.tasks import instruction_for

    rng = random.Random(seed)
    candidates = [p for p in paragraphs if 2 <= len(sentences(p)) <= 4]
    chosen = rng.sample(candidates, min(2 * count, len(candidates)))
    generation = loaded.generation.replace(max_new_tokens=2 * loaded.args.canvas_length)
    samples = []
    for i, paragraph in enumerate(chosen):
        parts = sentences(paragraph)
        j = rng.randrange(len(parts))
        before, original, after = " ".join(parts[:j]), parts[j], " ".join(parts[j + 1 :])
        before, after = before + (" " if before else ""), (" " if after else "") + after
        if i < count:
            shown = " ".join(misspell_words(original.split(), rng, 0.15))
            prompt = RedraftPrompt("rewrite", shown, instruction_for("fix", ""), before, after)
        else:
            shown, prompt = "", RedraftPrompt("fill", before=before, after=after)
        ids = encode_prompt(loaded.tokenizer, prompt, prompt_budget(loaded.args, generation.max_new_tokens))
        result = generate(loaded.model, [Request(ids, seed=seed + i)], generation)[0]
        output = loaded.tokenizer.decode(result.token_ids, skip_special_tokens=True)
        samples.append(Sample(prompt.kind, shown, original, output))
    return samples


def format_samples(samples: list[Sample]) -> str:
    lines = []
    for sample in samples:
        lines.append(f"[{sample.kind}]")
        if sample.shown:
            lines.append(f"  given:    {sample.shown}")
        lines.append(f"  original: {sample.original}")
        lines.append(f"  redraft:  {sample.output}")
    return "\n".join(lines)
