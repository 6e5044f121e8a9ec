"""The Triton kernels at the real 26B-A4B shapes on a GPU, one layer each: correctness, then time.

The fused MoE against the reference experts (bf16, FP8 and NF4 weights, with the achieved bandwidth), and the canvas
attention against the fp32 reference, replayed from a CUDA graph, timed against the engine's cat + SDPA path.

    python bench/kernels.py            # on a lent GPU (about a minute); prints the tables last
    python bench/kernels.py --tune     # also sweeps launch configurations; writes $OUT/moe.json and
                                       # $OUT/attention.json in the format of kernels/configs/*.json
                                       # (merge them there and commit)
    python bench/kernels.py --only moe --tune --tune-seconds 45   # every default first, then sweep for 45 s
    python bench/kernels.py --only attention   # one kernel (moe or attention); JSON to kernels-NAME.json
    python bench/kernels.py --only linear --tune --tune-seconds 60   # the FP8/NF4 projections (only when
                                       # asked); --tune writes $OUT/linear.json
    python -m pytest -q tests/kernels  # the CPU tests, here in bf16 on the GPU too

Shapes: 128 experts, hidden 2816, expert intermediate 704, top-8; tokens = batch x 256 canvas positions.
At batch 1 all 128 experts are touched, so a layer reads every expert weight once: the time is bounded below
by expert bytes / memory bandwidth (bf16 2 x 3 x 2816 x 704 x 128 = 1.52 GB per layer; FP8 half; NF4, with
its absmax, 4.5 bits a weight: 0.43 GB). Writes
JSON to $OUT/kernels.json when $OUT is set, rewritten after every row (a run stopped by its time limit keeps what
it measured). Speed is reported, never asserted.

Attention shapes: sliding layers 16 query heads over 8 kv heads of 256 in a 1024-slot window, global layers
16 over 2 kv heads of 512 over the whole prefix; canvas 256, prefixes 512 and 2048 (rows of a batch of 4
differ by 37 tokens), batch 1 and 4.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.model.cache import decoder_masks  # noqa: E402
from engine.model.layers import Experts, Router, gelu_tanh  # noqa: E402
from engine.weights.quantize import Fp8Experts, Fp8Linear, Nf4Experts, Nf4Linear, linear_weights  # noqa: E402
from kernels import attention, linear, tuning  # noqa: E402
from kernels.moe import config_key, fused_moe, row_tile, weight_format  # noqa: E402

EXPERTS, HIDDEN, INTER, TOP_K, CANVAS = 128, 2816, 704, 8, 256


def timed_ms(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


# The sweep: row tiles for few to many pairs per expert, column and reduction tiles, warps. 32 configurations,
# each compiled twice (gate/up, down) per weight format: minutes for all six cases, so a session gives the sweep
# a deadline (--tune-seconds) and takes the best found by then.
SWEEP = {"BLOCK_M": (16, 32, 64, 128), "BLOCK_N": (64, 128), "BLOCK_K": (64, 128), "num_warps": (4, 8),
         "num_stages": (3,)}


def tune(x, module, weights, ids, scales, deadline: float = float("inf")) -> tuple[dict | None, float]:
    """The fastest configuration of SWEEP for this input (ms), among those that compile and run, tried until
    the deadline (time.monotonic()). Row tiles nearest the default's (moe.row_tile: twice the pairs per expert)
    go first, so a sweep cut short has tried the likely winners."""
    best, best_ms = None, float("inf")
    default_rows = row_tile(ids.numel(), EXPERTS)
    configs = [dict(zip(SWEEP, values, strict=True)) for values in itertools.product(*SWEEP.values())]
    configs.sort(key=lambda config: abs(math.log2(config["BLOCK_M"] / default_rows)))
    for config in configs:
        if time.monotonic() > deadline:
            break
        try:
            ms = timed_ms(lambda c=config: fused_moe(x, module.gate_up_proj, module.down_proj, weights, ids, *scales,
                                                     config=c), repeats=5)
        except Exception:  # out of shared memory for this tile, say: not a candidate
            continue
        if ms < best_ms:
            best, best_ms = config, ms
    return best, best_ms


# Canvas attention per layer kind: query heads, kv heads, head dim, sliding window (None: the whole prefix).
ATTENTION_LAYERS = {"sliding": (16, 8, 256, 1024), "global": (16, 2, 512, None)}
PREFIXES = (512, 2048)
# --tune for attention: 16 configurations per layer kind at batch 1 and the longer prefix, checked against the
# reference too; those that do not compile (shared memory at head dim 512, say) drop out.
ATTENTION_SWEEP = {"BLOCK_M": (32, 64), "BLOCK_N": (32, 64), "num_warps": (4, 8), "num_stages": (1, 2)}
# max |fused - fp32 reference| / max |v| in bf16: the softmax weights and the output rounded once each (2^-8),
# as tests/kernels/test_attention.py argues
ATTENTION_TOLERANCE = 1.2e-2


def attention_case(layer: str, prefix: int, batch: int, dtype: torch.dtype, device: str = "cuda") -> tuple:
    """canvas_attention's arguments: random q, canvas k/v and cache, rows committed up to prefix, prefix - 37,
    ..., start and kv_len as decode derives them."""
    heads, kv_heads, head_dim, window = ATTENTION_LAYERS[layer]
    scale = (4 / head_dim) ** 0.25  # scores with a standard deviation of 2, as in the tests

    def randn(*shape, factor=1.0):
        return (torch.randn(*shape, device=device) * factor).to(dtype)

    lengths = torch.tensor([prefix - 37 * row for row in range(batch)], device=device)
    max_len = prefix + CANVAS  # room for the canvas' commit, as the engine allocates
    start = 0 if window is None else max(0, prefix - 37 * (batch - 1) - (window - 1))
    return (randn(batch, CANVAS, heads, head_dim, factor=scale), randn(batch, CANVAS, kv_heads, head_dim, factor=scale),
            randn(batch, CANVAS, kv_heads, head_dim), randn(batch, max_len, kv_heads, head_dim, factor=scale),
            randn(batch, max_len, kv_heads, head_dim), lengths, None, start, prefix, window)


def attention_error(args: tuple, got: torch.Tensor) -> float:
    """max |got - fp32 reference| in units of max |v| (the output is a convex combination of value rows)."""
    want = attention.canvas_attention_ref(*(t.float() for t in args[:5]), *args[5:])
    return float((got.float() - want).abs().max() / max(args[2].float().abs().max(), args[4].float().abs().max()))


def engine_reference(args: tuple):
    """The engine's path per step: the masks built once per canvas, then cat + SDPA every step."""
    q, k, v, cache_keys, cache_values, lengths, _, start, kv_len, window = args
    masks = decoder_masks(lengths, kv_len, CANVAS, window or kv_len, int(lengths.min()))
    mask = masks["sliding_attention" if window else "full_attention"]
    assert mask.start == start

    def step() -> torch.Tensor:
        keys = torch.cat((cache_keys[:, start:kv_len], k), dim=1)
        values = torch.cat((cache_values[:, start:kv_len], v), dim=1)
        return F.scaled_dot_product_attention(q.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2),
                                              attn_mask=mask.mask, scale=1.0, enable_gqa=True)

    return step


def graph_replays(args: tuple) -> bool:
    """Captured in a CUDA graph, the kernel reads the lengths on the device: a replay after they change in
    place (as a commit changes them) equals an eager call."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = attention.canvas_attention(*args)
    lengths = args[5]
    lengths -= 5
    graph.replay()
    equal = torch.equal(captured, attention.canvas_attention(*args))
    lengths += 5
    return equal


def tune_attention(args: tuple) -> tuple[dict | None, float]:
    """The fastest configuration of ATTENTION_SWEEP for these arguments (ms), among those that compile and
    stay within ATTENTION_TOLERANCE."""
    best, best_ms = None, float("inf")
    for values in itertools.product(*ATTENTION_SWEEP.values()):
        config = dict(zip(ATTENTION_SWEEP, values, strict=True))
        try:
            if attention_error(args, attention.canvas_attention(*args, config=config)) > ATTENTION_TOLERANCE:
                continue
            ms = timed_ms(lambda c=config: attention.canvas_attention(*args, config=c), repeats=10)
        except Exception:  # out of shared memory for this tile, say: not a candidate
            continue
        if ms < best_ms:
            best, best_ms = config, ms
    return best, best_ms


def bench_attention(report: dict, is_tuning: bool, out: Path | None, save) -> None:
    dtype = torch.bfloat16
    tuned = tuning.editable("attention")
    for layer, prefix, batch in itertools.product(ATTENTION_LAYERS, PREFIXES, (1, 4)):
        args = attention_case(layer, prefix, batch, dtype)
        heads, kv_heads, head_dim, window = ATTENTION_LAYERS[layer]
        row = {"layer": layer, "prefix": prefix, "batch": batch}
        try:
            row["max_error"] = attention_error(args, attention.canvas_attention(*args))
            row["graph_ok"] = graph_replays(args)
            row["reference_ms"] = timed_ms(engine_reference(args))
            row["fused_ms"] = timed_ms(lambda a=args: attention.canvas_attention(*a))
        except Exception as error:  # a launch configuration that does not fit this GPU: report, go on
            row["error"] = f"{type(error).__name__}: {error}"[:300]
        # keys a query sees, summed over the batch: a sliding layer's window holds window - 1 cached slots
        visible = sum(min(prefix - 37 * r, (window or prefix + 1) - 1) + CANVAS for r in range(batch))
        row["tflops"] = 4 * heads * CANVAS * head_dim * visible / row["fused_ms"] / 1e9 if "fused_ms" in row else None
        if is_tuning and batch == 1 and prefix == max(PREFIXES):
            config, tuned_ms = tune_attention(args)
            if config is not None:
                row["tuned_ms"] = tuned_ms
                key = attention.config_key(heads, kv_heads, head_dim, dtype)
                tuning.record(tuned, report["device"], key, batch, config)
                if out is not None:
                    tuning.write("attention", tuned, out)
        report["attention"].append(row)
        print(json.dumps(row), flush=True)
        save()


def print_attention_table(report: dict, num_sms: int) -> None:
    print(f"# canvas attention, one layer, canvas {CANVAS}, {report['device']} ({num_sms} SMs), {report['date']}")
    print("| layer | prefix | batch | max error / max abs v | graph replay | reference ms | fused ms | TFLOP/s | "
          "tuned ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in report["attention"]:
        if "error" in row:
            print(f"| {row['layer']} | {row['prefix']} | {row['batch']} | {row['error']} | | | | | |")
            continue
        tuned_ms = f"{row['tuned_ms']:.3f}" if "tuned_ms" in row else ""
        print(f"| {row['layer']} | {row['prefix']} | {row['batch']} | {row['max_error']:.1e} | "
              f"{'yes' if row['graph_ok'] else 'NO'} | {row['reference_ms']:.3f} | {row['fused_ms']:.3f} | "
              f"{row['tflops']:.0f} | {tuned_ms} |")


# The FP8/NF4 projections of a step (kernels/linear.py): (output features, input features, GELU-gated), the
# stacked q/k/v of a sliding and a global layer, their o_proj, the dense MLP's gate/up and down.
LINEAR_SHAPES = {"qkv sliding": (8192, HIDDEN, False), "qkv global": (9216, HIDDEN, False),
                 "o sliding": (HIDDEN, 4096, False), "o global": (HIDDEN, 8192, False),
                 "mlp gate/up": (2112, HIDDEN, True), "mlp down": (HIDDEN, 2112, False)}
# 32 configurations around linear.default_config; each checked against the reference before it is timed
LINEAR_SWEEP = {"BLOCK_M": (64, 128), "BLOCK_N": (64, 128), "BLOCK_K": (64, 128), "num_warps": (4, 8),
                "num_stages": (2, 3)}


def bench_linear(report: dict, is_tuning: bool, out: Path | None, save, deadline: float) -> None:
    """Each projection at batch 1 and 4 with FP8 and NF4 weights: the error against the dequantized reference,
    the reference's and the kernel's time; with --tune the sweep until the deadline, batch 1 first."""
    dtype, tuned = torch.bfloat16, tuning.editable("linear")
    cases = []
    for batch, fmt, (name, (out_features, in_features, gated)) in itertools.product(
            (1, 4), ("fp8", "nf4"), LINEAR_SHAPES.items()):
        module = (Fp8Linear if fmt == "fp8" else Nf4Linear)(in_features, out_features * (1 + gated), device="cuda")
        module.load(torch.randn(out_features * (1 + gated), in_features, device="cuda") * in_features**-0.5)
        x = torch.randn(batch * CANVAS, in_features, device="cuda", dtype=dtype)

        def reference(m=module, x=x, gated=gated):
            y = m(x)  # the dequantizing path: the module holds the reference ops here
            return gelu_tanh(y[:, : y.shape[1] // 2]) * y[:, y.shape[1] // 2:] if gated else y

        def fused(config=None, m=module, x=x, gated=gated):
            return linear.quantized_linear(x, *linear_weights(m), m.in_features, config=config, gated=gated)

        want = reference().float()
        row = {"batch": batch, "weights": fmt, "projection": name,
               "max_rel_error": float((fused().float() - want).abs().max() / want.abs().max()),
               "reference_ms": timed_ms(reference), "fused_ms": timed_ms(fused)}
        report["linear"].append(row)
        weight_format = module.weight.dtype if fmt == "fp8" else "nf4"  # as quantized_linear names it
        cases.append((row, fused, want, linear.config_key(out_features, in_features, dtype, weight_format, gated)))
        print(json.dumps(row), flush=True)
        save()
    if not is_tuning:
        return
    configs = [dict(zip(LINEAR_SWEEP, values, strict=True)) for values in itertools.product(*LINEAR_SWEEP.values())]
    for row, fused, want, key in cases:
        best, best_ms = None, float("inf")
        for config in configs:
            if time.monotonic() > deadline:
                break
            try:
                error = float((fused(config).float() - want).abs().max() / want.abs().max())
                if error > 2 * row["max_rel_error"] + 1e-2:  # a tile that computes something else
                    continue
                ms = timed_ms(lambda c=config, f=fused: f(c), repeats=5)
            except Exception:  # out of shared memory for this tile, say: not a candidate
                continue
            if ms < best_ms:
                best, best_ms = config, ms
        if best is None:
            break  # out of time
        row["tuned_ms"], row["tuned_config"] = best_ms, best
        tuning.record(tuned, report["device"], key, row["batch"] * CANVAS, best)
        print(json.dumps(row), flush=True)
        save()
        if out is not None:
            tuning.write("linear", tuned, out)


def print_linear_table(report: dict, num_sms: int) -> None:
    print(f"# FP8/NF4 projections, {report['device']} ({num_sms} SMs), {report['date']}")
    print("| batch | weights | projection | max rel. error | reference ms | fused ms | tuned ms |")
    print("|---|---|---|---|---|---|---|")
    for row in report["linear"]:
        tuned_ms = f"{row['tuned_ms']:.3f}" if "tuned_ms" in row else ""
        print(f"| {row['batch']} | {row['weights']} | {row['projection']} | {row['max_rel_error']:.1e} | "
              f"{row['reference_ms']:.3f} | {row['fused_ms']:.3f} | {tuned_ms} |")


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--tune", action="store_true", help="sweep launch configurations too")
    options.add_argument("--only", choices=("moe", "attention", "linear"),
                         help="one kernel (default: attention and moe; linear only when named)")
    options.add_argument("--tune-seconds", type=float, default=float("inf"),
                         help="stop the MoE (or linear) sweep after this long, keeping the best found so far")
    options = options.parse_args()
    if not torch.cuda.is_available():
        print("bench/kernels.py needs a CUDA device", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    report = {"device": torch.cuda.get_device_name(), "date": datetime.date.today().isoformat(),
              "torch": torch.__version__, "rows": [], "attention": [], "linear": []}
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    name = f"kernels-{options.only}.json" if options.only else "kernels.json"

    def save() -> None:
        if out is not None:
            (out / name).write_text(json.dumps(report, indent=2))

    if options.only == "linear":
        bench_linear(report, options.tune, out, save, time.monotonic() + options.tune_seconds)
    if options.only in (None, "attention"):  # first: seconds, where the MoE sweep takes minutes
        bench_attention(report, options.tune, out, save)
    if options.only in (None, "moe"):
        bench_moe(report, options.tune, out, save, time.monotonic() + options.tune_seconds)
    peak = torch.cuda.get_device_properties(0)
    if report["attention"]:
        print_attention_table(report, peak.multi_processor_count)
    if report["rows"]:
        print_moe_table(report, peak.multi_processor_count)
    if report["linear"]:
        print_linear_table(report, peak.multi_processor_count)
    return 0


def bench_moe(report: dict, is_tuning: bool, out: Path | None, save, deadline: float) -> None:
    """Every case at the default configuration first, then the sweep, batch 1 first, until the deadline: a
    sweep cut short still leaves every default figure and the best configurations found."""
    device, dtype = "cuda", torch.bfloat16
    experts = Experts(EXPERTS, HIDDEN, INTER).to(device, dtype)
    with torch.no_grad():
        experts.gate_up_proj.normal_(0, HIDDEN**-0.5)
        experts.down_proj.normal_(0, INTER**-0.5)
    fp8 = Fp8Experts(EXPERTS, HIDDEN, INTER, device=device)
    nf4 = Nf4Experts(EXPERTS, HIDDEN, INTER, device=device)
    for name in ("gate_up_proj", "down_proj"):
        fp8.load(name, getattr(experts, name).detach())
        nf4.load(name, getattr(experts, name).detach())
    router = Router(HIDDEN, EXPERTS, TOP_K, 1e-6).to(device, dtype)
    with torch.no_grad():
        router.proj.weight.normal_(0, 1.0)
    cases = []
    for batch in (1, 4):
        x = torch.randn(batch * CANVAS, HIDDEN, device=device, dtype=dtype)
        weights, ids = router(x)
        for name, module in (("bf16", experts), ("fp8", fp8), ("nf4", nf4)):
            stored = module.stored_weights()  # gate_up, down, then scales (and NF4's codebook) or Nones
            scales = stored[2:]
            reference = module(x, weights, ids)
            fused = fused_moe(x, module.gate_up_proj, module.down_proj, weights, ids, *scales)
            error = float((fused.float() - reference.float()).abs().max() / reference.float().abs().max())
            weight_bytes = sum(t.numel() * t.element_size() for t in stored if t is not None)
            ref_ms = timed_ms(lambda m=module: m(x, weights, ids))
            fused_ms = timed_ms(lambda m=module, s=scales: fused_moe(x, m.gate_up_proj, m.down_proj, weights, ids, *s))
            row = {"batch": batch, "weights": name, "max_rel_error": error, "reference_ms": ref_ms,
                   "fused_ms": fused_ms, "weight_gb": weight_bytes / 1e9,
                   "fused_gb_per_s": weight_bytes / fused_ms / 1e6}
            report["rows"].append(row)
            cases.append((row, x, module, weights, ids, scales))
            print(json.dumps(row), flush=True)
            save()
    if not is_tuning:
        return
    tuned = tuning.editable("moe")
    for row, x, module, weights, ids, scales in cases:
        config, tuned_ms = tune(x, module, weights, ids, scales, deadline)
        if config is None:
            break  # out of time
        row["tuned_ms"], row["tuned_config"] = tuned_ms, config
        key = config_key(EXPERTS, HIDDEN, INTER, torch.bfloat16, weight_format(module.gate_up_proj))
        tuning.record(tuned, report["device"], key, ids.numel(), config)
        print(json.dumps(row), flush=True)
        save()
        if out is not None:
            tuning.write("moe", tuned, out)  # after every row: the session installs it before the engine step


def print_moe_table(report: dict, num_sms: int) -> None:
    print(f"# fused MoE, one layer, {report['device']} ({num_sms} SMs), {report['date']}")
    print("| batch | weights | max rel. error | reference ms | fused ms | GB/s (weights) | tuned ms |")
    print("|---|---|---|---|---|---|---|")
    for row in report["rows"]:
        tuned_ms = f"{row['tuned_ms']:.2f}" if "tuned_ms" in row else ""
        print(f"| {row['batch']} | {row['weights']} | {row['max_rel_error']:.1e} | {row['reference_ms']:.2f} | "
              f"{row['fused_ms']:.2f} | {row['fused_gb_per_s']:.0f} | {tuned_ms} |")


if __name__ == "__main__":
    sys.exit(main())
