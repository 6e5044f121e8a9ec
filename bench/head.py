"""The fused sampling head (kernels/head.py) at the real 26B-A4B shapes on a GPU: correctness against the
reference step's own ops, then time, TFLOP/s and bandwidth against them, batch 1 and 4, in one run.

    python bench/head.py            # on a lent GPU (under a minute); prints a table last
    python bench/head.py --tune     # also sweeps launch configurations; writes $OUT/head.json in the format
                                    # of kernels/configs/head.json (merge it there and commit)

Shapes: vocabulary 262,144, hidden 2816, bf16, soft-cap 30; positions = batch x 256. The lm_head product is
2 x positions x 262,144 x 2816 FLOP (0.38 TFLOP per canvas) over a 1.48 GB matrix: about as long on the
tensor cores as reading the matrix, so both figures are reported. The reference is what the engine's step
does without the kernel: lm_head, fp32 soft-cap, temperature, the native inverse-CDF draw (softmax, cumsum,
search), argmax, entropy, and the next step's self-conditioning softmax in bf16. Both sides run as CUDA
graphs. Writes JSON to $OUT/head.json (--tune: the tuned table) and $OUT/head-bench.json. Speed is reported,
never asserted.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine_parts import read_ceiling_gbps, replay_ms  # noqa: E402
from engine.runtime.noise import CounterNoise  # noqa: E402
from engine.runtime.sampler import token_entropy  # noqa: E402
from kernels import tuning  # noqa: E402
from kernels.head import DEFAULT_CONFIG, config_key, sampling_head  # noqa: E402

VOCAB, HIDDEN, CANVAS, SOFTCAP = 262144, 2816, 256, 30.0
# 24 configurations around the default (tests/kernels/offline_compile.py: 64 x 128 x 32 over 8 warps is the
# largest tile that does not spill; a spilling one may still win, which only timing shows)
SWEEP = {"BLOCK_N": (64, 128), "BLOCK_V": (64, 128), "BLOCK_D": (32, 64), "SPLITS": (64, 128, 256),
         "num_warps": (8,), "num_stages": (3,)}


def inputs(batch: int, device: str):
    generator = torch.Generator(device=device).manual_seed(batch)
    h = torch.randn(batch * CANVAS, HIDDEN, generator=generator, device=device).bfloat16()
    # the tied embedding of a trained model is ~N(0, 1/D)-ish per entry; x3 gives peaked and flat rows
    weight = (torch.randn(VOCAB, HIDDEN, generator=generator, device=device) * 3.0 * HIDDEN**-0.5).bfloat16()
    temp = 0.4 + 0.4 * torch.rand(batch, generator=generator, device=device)
    noise = CounterNoise(list(range(batch)), VOCAB, CANVAS, torch.device(device))
    uniforms = noise.uniforms(torch.zeros(batch, dtype=torch.long, device=device),
                             torch.full((batch,), 3, dtype=torch.long, device=device))
    return h, weight, temp, noise, uniforms


def reference_step(h, weight, temp, noise, batch: int):
    """The engine's reference-path ops from the final hidden states to the draws and the next softmax."""
    logits = torch.nn.functional.linear(h, weight).float().view(batch, CANVAS, VOCAB)
    logits = torch.tanh(logits / SOFTCAP) * SOFTCAP
    processed = logits / temp[:, None, None]
    index = torch.zeros(batch, dtype=torch.long, device=h.device)
    sample = noise.samples(processed, None, index, index + 3)
    argmax = torch.argmax(processed, dim=-1)
    entropy = token_entropy(processed)
    probs = torch.softmax(processed.to(weight.dtype), dim=-1, dtype=torch.float32).to(weight.dtype)
    return argmax, sample, entropy, probs


def check(batch: int, device: str) -> dict:
    h, weight, temp, noise, uniforms = inputs(batch, device)
    temp_tokens = temp.repeat_interleave(CANVAS)
    ours = sampling_head(h, weight, temp_tokens, SOFTCAP, uniforms.flatten())
    argmax, sample, entropy, probs = (t.flatten(0, 1) for t in reference_step(h, weight, temp, noise, batch))
    return {
        "entropy_max_abs": float((ours.entropy - entropy).abs().max()),
        "argmax_agree": float((ours.argmax == argmax).float().mean()),
        "sample_agree": float((ours.sample == sample).float().mean()),
        "probs_max_abs": float((ours.self_cond_probs.float() - probs.float()).abs().max()),
    }


def time_both(batch: int, device: str, config: dict | None, repeats: int) -> dict:
    h, weight, temp, noise, uniforms = inputs(batch, device)
    temp_tokens, flat_uniforms = temp.repeat_interleave(CANVAS), uniforms.flatten()
    fused_ms = replay_ms(lambda: sampling_head(h, weight, temp_tokens, SOFTCAP, flat_uniforms, config=config), device,
                          repeats)
    reference_ms = replay_ms(lambda: reference_step(h, weight, temp, noise, batch), device, repeats)
    positions = batch * CANVAS
    flop = 2 * positions * VOCAB * HIDDEN
    nbytes = VOCAB * HIDDEN * 2 + 2 * positions * VOCAB * 2  # the matrix; the softmax written and rescaled
    return {"batch": batch, "fused_ms": fused_ms, "reference_ms": reference_ms,
            "fused_tflops": flop / fused_ms / 1e9, "fused_gbps": nbytes / fused_ms / 1e6}


def tune(batch: int, device: str) -> tuple[dict, float]:
    best, best_ms = None, float("inf")
    for values in itertools.product(*SWEEP.values()):
        config = dict(zip(SWEEP, values, strict=True))
        try:
            ms = time_both(batch, device, config, repeats=5)["fused_ms"]
        except Exception as error:  # a configuration out of registers or shared memory: skip it
            print(f"skip {config}: {type(error).__name__}", flush=True)
            continue
        if ms < best_ms:
            best, best_ms = config, ms
    return best, best_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--tune", action="store_true")
    options = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench/head.py needs a CUDA device (tests/kernels/test_head.py covers the CPU)")
        return 2
    device = "cuda"
    name = torch.cuda.get_device_name()
    report = {"device_name": name, "date": datetime.date.today().isoformat(), "torch": torch.__version__,
              "read_ceiling_gbps": read_ceiling_gbps(device), "rows": []}
    tuned = tuning.editable("head")
    key = config_key(VOCAB, HIDDEN, torch.bfloat16)
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    for batch in (int(b) for b in options.batches.split(",")):
        row = {**check(batch, device), **time_both(batch, device, None, options.repeats)}
        if options.tune:
            config, ms = tune(batch, device)
            if config is not None:
                tuning.record(tuned, name, key, batch * CANVAS, config)
                row["tuned_ms"] = ms
        report["rows"].append(row)
        print(json.dumps(row), flush=True)
        if out is not None:  # after every row: a run stopped by its time limit keeps what it measured
            (out / "head-bench.json").write_text(json.dumps(report, indent=2))
            if options.tune:
                tuning.write("head", tuned, out)
    print(f"# fused sampling head on {name}, bf16, V={VOCAB}, D={HIDDEN}, {report['date']}, "
          f"read ceiling {report['read_ceiling_gbps']:.0f} GB/s, default config {DEFAULT_CONFIG}")
    print("| batch | fused ms | reference ms | speed-up | TFLOP/s | GB/s | tuned ms | entropy max diff | argmax agree "
          "| sample agree | probs max diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in report["rows"]:
        tuned = f"{row['tuned_ms']:.3f}" if "tuned_ms" in row else "-"
        print(f"| {row['batch']} | {row['fused_ms']:.3f} | {row['reference_ms']:.3f} | "
              f"{row['reference_ms'] / row['fused_ms']:.1f}x | {row['fused_tflops']:.0f} | {row['fused_gbps']:.0f} | "
              f"{tuned} | {row['entropy_max_abs']:.1e} | {100 * row['argmax_agree']:.2f}% | "
              f"{100 * row['sample_agree']:.2f}% | {row['probs_max_abs']:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
