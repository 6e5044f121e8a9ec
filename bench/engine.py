"""Engine speed: ms per denoising step and tokens/s, native against transformers' generate, in one run.

    python bench/engine.py                 # CPU: the tiny preset, native vs reference
    python bench/engine.py --device cuda   # GPU: the real 26B-A4B shapes, random bf16 weights
    python bench/engine.py --quantize none,fp8,nf4 --kernels off,on   # every weight format and kernel mode
    python bench/engine.py --breakdown     # also each part of the step alone (bench/engine_parts.py)
    python bench/engine.py --kernels on --validate   # first: one step with the kernels against one without

Random weights never stop early, so every canvas takes exactly `steps` decoder passes and
tokens/s = batch x 256 / (prefill + steps x step time). On CUDA each batch size is measured
eager and with the step captured in a CUDA graph (engine/runtime/graphs.py); transformers' `generate`
runs last, at batch 1 and 16 steps, after the native model is freed. The step's achieved bandwidth
(weight bytes / step time: every weight is read once per step) is given against the device's measured read
ceiling. Speed is reported, never asserted. Prints a table last and writes JSON to --json (default
$OUT/engine.json when $OUT is set), rewritten after every row so that a run stopped by a time limit keeps
what it measured.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine_parts import PARTS, read_ceiling_gbps, step_parts  # noqa: E402
from engine.model.cache import KVCache, decoder_masks  # noqa: E402
from engine.model.config import MODEL_PRESETS  # noqa: E402
from engine.runtime.generate import denoise_step, new_state, prefill, start_canvases  # noqa: E402
from engine.runtime.noise import make_noise  # noqa: E402
from engine.runtime.ops import enable as enable_kernels  # noqa: E402
from engine.weights.checkpoint import load_model  # noqa: E402
from engine.weights.quantize import weight_bytes  # noqa: E402

STEP_COUNTS = (12, 16, 48)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def measure_native(loaded, batch: int, prompt_len: int, device: str, repeats: int, breakdown: bool = False) -> dict:
    """Prefill and step times at one batch size, eager (and under a CUDA graph on CUDA); with breakdown, the
    step's parts timed alone too."""
    model, args, generation = loaded.model, loaded.args, loaded.generation
    L = args.canvas_length
    prompts = [[3 + (7 * i + row) % (args.vocab_size - 3) for i in range(prompt_len)] for row in range(batch)]
    cache = KVCache.allocate(args, batch, prompt_len, model.dtype, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        prefill(model, cache, prompts)  # warm-up
        prefill_s = timed(lambda: prefill(model, cache, prompts), device)
        state = new_state(generation, batch, L, [max(STEP_COUNTS)] * batch, args.vocab_size, device, model.dtype)
        noise = make_noise("native", list(range(batch)), args.vocab_size, L, device)
        start_canvases(state, noise, list(range(batch)), [prompt_len] * batch, device, first=True)
        masks = decoder_masks(cache.lengths, prompt_len, L, args.sliding_window, prompt_len)
        active = [True] * batch

        def eager():
            denoise_step(model, cache, state, noise, generation, masks, prompt_len, active)

        for _ in range(2):
            eager()
        result = {"batch": batch, "prefill_s": prefill_s, "eager_ms": 1e3 * statistics.median(
            timed(eager, device) for _ in range(repeats))}
        if device == "cuda":
            from engine.runtime.graphs import capture_denoise_step

            replay = capture_denoise_step(model, cache, state, noise, generation, masks, prompt_len, active)
            replay()
            result["graph_ms"] = 1e3 * statistics.median(timed(replay, device) for _ in range(2 * repeats))
            result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if breakdown:
            result["parts"] = step_parts(model, cache, state, noise, generation, masks, prompt_len, device, repeats)
    best_ms = result.get("graph_ms", result["eager_ms"])
    for steps in STEP_COUNTS:
        result[f"tok_s_{steps}"] = batch * L / (prefill_s + steps * best_ms / 1e3)
    return result


def validate_kernels(loaded, batch: int, prompt_len: int, device: str, steps: int = 2) -> dict:
    """The first denoising steps of a canvas with the kernels off and on, from the same state.

    Step 1 starts from identical inputs; step 2 also runs the self-conditioning, on each mode's own step 1
    (the two keep self_cond differently: processed logits without the kernels, their softmax with them).
    Random weights give near-uniform logits, where a rounding difference flips an argmax more easily than with a
    trained model: the agreement is reported beside the entropy difference, not asserted."""
    model, args, generation = loaded.model, loaded.args, loaded.generation
    L = args.canvas_length
    prompts = [[3 + (7 * i + row) % (args.vocab_size - 3) for i in range(prompt_len)] for row in range(batch)]
    cache = KVCache.allocate(args, batch, prompt_len, model.dtype, device)
    enable_kernels(model, device, "off")
    after: dict[str, list] = {}
    with torch.no_grad():
        prefill(model, cache, prompts)
        state = new_state(generation, batch, L, [max(STEP_COUNTS)] * batch, args.vocab_size, device, model.dtype)
        noise = make_noise("native", list(range(batch)), args.vocab_size, L, device)
        start_canvases(state, noise, list(range(batch)), [prompt_len] * batch, device, first=True)
        masks = decoder_masks(cache.lengths, prompt_len, L, args.sliding_window, prompt_len)
        start = {field.name: getattr(state, field.name).clone() for field in dataclasses.fields(state)}
        for mode in ("off", "on"):
            enable_kernels(model, device, mode)
            moving = copy.copy(state)
            for name, value in start.items():  # the kernels write some fields in place: each mode starts equal
                setattr(moving, name, value.clone())
            after[mode] = []
            for _ in range(steps):
                denoise_step(model, cache, moving, noise, generation, masks, prompt_len, [True] * batch)
                after[mode].append((moving.argmax.clone(), moving.canvas.clone(), moving.entropy.float().clone()))
    enable_kernels(model, device, "off")
    result = {"batch": batch}
    for step, ((argmax_off, canvas_off, entropy_off), (argmax_on, canvas_on, entropy_on)) in enumerate(
            zip(after["off"], after["on"], strict=True), start=1):
        diff = (entropy_on - entropy_off).abs()
        result[f"step{step}"] = {
            "argmax_agree": float((argmax_on == argmax_off).float().mean()),
            "canvas_agree": float((canvas_on == canvas_off).float().mean()),
            "entropy_max_diff": float(diff.max()), "entropy_mean_diff": float(diff.mean()),
            "entropy_mean": float(entropy_off.mean()),
        }
    return result


def measure_scheduler(loaded, batches: list[int], prompt_len: int, device: str, steps: int = 16) -> list[dict]:
    """End to end through the continuous-batching scheduler (fixed shapes, CUDA graphs on a GPU):
    `batch` requests submitted together, from submission to the last result."""
    from engine.runtime.generate import Request
    from engine.runtime.scheduler import Job, Scheduler

    args = loaded.args
    scheduler = Scheduler(loaded.model, loaded.generation, max(batches), prompt_len + args.canvas_length)

    def run(batch: int) -> float:
        done = []
        for row in range(batch):
            prompt = [3 + (7 * i + row) % (args.vocab_size - 3) for i in range(prompt_len)]
            request = Request(prompt, seed=row, max_new_tokens=args.canvas_length, max_denoising_steps=steps)
            scheduler.submit(Job(request, lambda snapshot: None, done.append))
        started = time.perf_counter()
        while scheduler.has_work:
            scheduler.step()
        sync(device)
        assert len(done) == batch and all(result.status == "done" for result in done), done
        return time.perf_counter() - started

    for batch in batches:  # warm-up: captures each bucket's graph
        run(batch)
    rows = []
    for batch in batches:
        seconds = min(run(batch) for _ in range(2))
        rows.append({"batch": batch, "steps": steps, "seconds": seconds, "tok_s": batch * args.canvas_length / seconds})
    return rows


def measure_reference(args_name: str, args, device: str, dtype, prompt_len: int, steps: int) -> dict:
    """transformers' own generate on a model of the same shapes (random weights), batch 1."""
    from engine.model.config import GenerationArgs
    from engine.runtime.reference import load_reference, reference_generate

    model = load_reference(args_name, device, dtype)
    generation = GenerationArgs(max_new_tokens=args.canvas_length, max_denoising_steps=steps)
    prompt = [3 + (7 * i) % (args.vocab_size - 3) for i in range(prompt_len)]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    runs = []
    for _ in range(2):  # the first run pays for lazy initialisation
        runs.append(timed(lambda: reference_generate(model, prompt, generation, seed=0), device))
    result = {"model": args_name, "steps": steps, "generate_s": runs[-1], "first_run_s": runs[0],
              "tok_s": args.canvas_length / runs[-1]}
    if device == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def table(report: dict) -> str:
    has_graph = any("graph_ms" in row for row in report["native"])
    head = ["weights", "kernels", "GiB", "batch", "prefill ms", "eager ms/step"] + (["graph ms/step"] if has_graph else [])
    head += [f"tok/s @{n}" for n in STEP_COUNTS] + (["peak GiB"] if has_graph else [])
    ceiling = report.get("read_ceiling_gbps")
    head += ["GB/s"] + (["% ceiling"] if ceiling else [])
    lines = [f"# {report['model']} on {report['device_name']}, {report['dtype']}, prompt {report['prompt_len']}, "
             f"{report['date']}" + (f", read ceiling {ceiling:.0f} GB/s" if ceiling else ""),
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["native"]:
        cells = [row["format"], row["kernels"], f"{row['weights_gib']:.2f}", row["batch"], f"{row['prefill_s'] * 1e3:.0f}",
                 f"{row['eager_ms']:.1f}"]
        cells += [f"{row['graph_ms']:.1f}"] if has_graph else []
        cells += [f"{row[f'tok_s_{n}']:.0f}" for n in STEP_COUNTS]
        cells += [f"{row['peak_gib']:.1f}"] if has_graph else []
        gbps = row["weights_gib"] * 2**30 / row.get("graph_ms", row["eager_ms"]) / 1e6
        cells += [f"{gbps:.0f}"] + ([f"{100 * gbps / ceiling:.0f}"] if ceiling else [])
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += parts_table(report["native"], ceiling)
    lines += validation_table(report.get("validation", []))
    for row in report.get("scheduler", []):
        lines.append(f"scheduler end to end, {row['format']}, kernels {row['kernels']}, batch {row['batch']}, "
                     f"{row['steps']} steps: "
                     f"{row['seconds'] * 1e3:.0f} ms = {row['tok_s']:.0f} tok/s")
    ref = report.get("reference")
    if ref:
        lines.append(f"transformers generate, batch 1, {ref['steps']} steps: {ref['generate_s'] * 1e3:.0f} ms "
                     f"= {ref['tok_s']:.0f} tok/s" + (f", peak {ref['peak_gib']:.1f} GiB" if "peak_gib" in ref else ""))
        native_1 = next(row for row in report["native"]
                        if row["batch"] == 1 and row["format"] == "none" and row["kernels"] == "off")
        speedup = native_1["tok_s_%d" % ref["steps"]] / ref["tok_s"]
        lines.append(f"native batch 1 at {ref['steps']} steps: {speedup:.2f}x transformers")
    return "\n".join(lines)


def validation_table(rows: list[dict]) -> list[str]:
    """Kernels on against off, the first steps from the same state (--validate)."""
    if not rows:
        return []
    lines = ["", "kernels on against off, the first steps of a canvas from the same state",
             "| weights | batch | step | argmax agree | canvas agree | entropy max diff | entropy mean diff | "
             "mean entropy |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for step in sorted(key for key in row if key.startswith("step")):
            cell = row[step]
            lines.append(f"| {row['format']} | {row['batch']} | {step.removeprefix('step')} | "
                         f"{100 * cell['argmax_agree']:.2f}% | {100 * cell['canvas_agree']:.2f}% | "
                         f"{cell['entropy_max_diff']:.2e} | {cell['entropy_mean_diff']:.2e} | "
                         f"{cell['entropy_mean']:.3f} |")
    return lines


def parts_table(rows: list[dict], ceiling: float | None) -> list[str]:
    """ms per part of the step (and its bandwidth, % of the ceiling) for the rows measured with --breakdown."""
    rows = [row for row in rows if "parts" in row]
    if not rows:
        return []
    head = ["weights", "kernels", "batch", *PARTS, "sum ms", "step ms"]
    lines = ["", "ms per part of a step, each alone" + (" (GB/s, % of the read ceiling)" if ceiling else " (GB/s)"),
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["format"], row["kernels"], row["batch"]]
        for name in PARTS:
            part = row["parts"][name]
            cell = f"{part['ms']:.2f}"
            if part["gbps"]:
                cell += f" ({part['gbps']:.0f}" + (f", {100 * part['gbps'] / ceiling:.0f}%)" if ceiling else ")")
            cells.append(cell)
        cells += [f"{sum(row['parts'][n]['ms'] for n in PARTS):.2f}", f"{row.get('graph_ms', row['eager_ms']):.2f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default=None, help="preset (default: tiny on cpu, diffusiongemma-26b-a4b on cuda)")
    parser.add_argument("--prompt-len", type=int, default=None, help="default: 512 on cuda, 64 on cpu")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quantize", default="none", help="weight formats to time, comma-separated (none,fp8,nf4)")
    parser.add_argument("--kernels", default="off", help="kernel modes to time, comma-separated (off,on; on: CUDA)")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--breakdown", action="store_true", help="also time each part of the step alone")
    parser.add_argument("--validate", action="store_true",
                        help="before timing a format, compare one step with the kernels on against off")
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()
    device = options.device
    name = options.model or ("diffusiongemma-26b-a4b" if device == "cuda" else "tiny")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    prompt_len = options.prompt_len or (512 if device == "cuda" else 64)
    if device == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    report = {
        "model": name,
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "prompt_len": prompt_len,
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "native": [],
        "read_ceiling_gbps": read_ceiling_gbps(device),
    }
    batches = [int(b) for b in options.batches.split(",")]
    report["scheduler"] = []
    report["validation"] = []
    out = options.json or (Path(os.environ["OUT"]) / "engine.json" if os.environ.get("OUT") else None)

    def save() -> None:  # after every row: a run cut short by its time limit keeps what it measured
        if out is not None:
            out.write_text(json.dumps(report, indent=2))
    for fmt in options.quantize.split(","):
        started = time.perf_counter()
        loaded = load_model(name, device, dtype, quantize=fmt)
        report.setdefault("load_s", {})[fmt] = time.perf_counter() - started
        weights_gib = weight_bytes(loaded.model) / 2**30
        if options.validate:
            for batch in batches:
                row = {"format": fmt, **validate_kernels(loaded, batch, prompt_len, device)}
                report["validation"].append(row)
                print(json.dumps(row), flush=True)
                save()
        for mode in options.kernels.split(","):
            enable_kernels(loaded.model, device, mode)
            tags = {"format": fmt, "kernels": mode}
            for batch in batches:
                row = {**tags, "weights_gib": weights_gib,
                       **measure_native(loaded, batch, prompt_len, device, options.repeats, options.breakdown)}
                report["native"].append(row)
                print(json.dumps(row), flush=True)
                save()
            rows = [{**tags, **row} for row in measure_scheduler(loaded, batches, prompt_len, device)]
            report["scheduler"] += rows
            print(json.dumps(rows), flush=True)
            save()
        del loaded  # one format's weights on the device at a time
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    args = MODEL_PRESETS[name]
    if not options.no_reference:
        report["reference"] = measure_reference(name, args, device, dtype, prompt_len, steps=16)
        save()
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
