"""The fused MoE kernel at the real 26B-A4B shapes on a GPU: correctness against the reference experts,
then time and achieved bandwidth, bf16 and FP8 weights, one layer, in one run.

    python bench/kernels.py            # on a lent GPU (about a minute); prints a table last
    python bench/kernels.py --tune     # also sweeps launch configurations; writes $OUT/moe.json in the
                                       # format of kernels/configs/moe.json (merge it there and commit)
    python -m pytest -q tests/kernels  # the CPU tests, here in bf16 on the GPU too

Shapes: 128 experts, hidden 2816, expert intermediate 704, top-8; tokens = batch x 256 canvas positions.
At batch 1 all 128 experts are touched, so a layer reads every expert weight once: the time is bounded below
by expert bytes / memory bandwidth (bf16 2 x 3 x 2816 x 704 x 128 = 1.52 GB per layer; FP8 half). Writes
JSON to $OUT/kernels.json when $OUT is set. Speed is reported, never asserted.
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

from engine.layers import Experts, Router  # noqa: E402
from engine.quantize import Fp8Experts  # noqa: E402
from kernels.moe import TUNED, config_key, fused_moe  # noqa: E402

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


# The sweep: row tiles for few to many pairs per expert, column and reduction tiles, warps. 24 configurations,
# each compiled twice (gate/up, down) per weight format: a few minutes, inside one 10-minute device call.
SWEEP = {"BLOCK_M": (16, 32, 64), "BLOCK_N": (64, 128), "BLOCK_K": (64, 128), "num_warps": (4, 8), "num_stages": (3,)}


def tune(x, module, weights, ids, scales) -> tuple[dict, float]:
    """The fastest configuration of SWEEP for this input (ms), among those that compile and run."""
    best, best_ms = None, float("inf")
    for values in itertools.product(*SWEEP.values()):
        config = dict(zip(SWEEP, values, strict=True))
        try:
            ms = timed_ms(lambda c=config: fused_moe(x, module.gate_up_proj, module.down_proj, weights, ids, *scales,
                                                     config=c), repeats=5)
        except Exception:  # out of shared memory for this tile, say: not a candidate
            continue
        if ms < best_ms:
            best, best_ms = config, ms
    return best, best_ms


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--tune", action="store_true", help="sweep launch configurations too")
    options = options.parse_args()
    if not torch.cuda.is_available():
        print("bench/kernels.py needs a CUDA device", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    device, dtype = "cuda", torch.bfloat16
    experts = Experts(EXPERTS, HIDDEN, INTER).to(device, dtype)
    with torch.no_grad():
        experts.gate_up_proj.normal_(0, HIDDEN**-0.5)
        experts.down_proj.normal_(0, INTER**-0.5)
    fp8 = Fp8Experts(EXPERTS, HIDDEN, INTER, device=device)
    for name in ("gate_up_proj", "down_proj"):
        fp8.load(name, getattr(experts, name).detach())
    router = Router(HIDDEN, EXPERTS, TOP_K, 1e-6).to(device, dtype)
    with torch.no_grad():
        router.proj.weight.normal_(0, 1.0)
    peak = torch.cuda.get_device_properties(0)
    report = {"device": torch.cuda.get_device_name(), "date": datetime.date.today().isoformat(),
              "torch": torch.__version__, "rows": []}
    tuned = json.loads(TUNED.read_text()) if TUNED.exists() else {}
    for batch in (1, 4):
        x = torch.randn(batch * CANVAS, HIDDEN, device=device, dtype=dtype)
        weights, ids = router(x)
        for name, module, scales in (("bf16", experts, (None, None)),
                                     ("fp8", fp8, (fp8.gate_up_scale, fp8.down_scale))):
            reference = module(x, weights, ids)
            fused = fused_moe(x, module.gate_up_proj, module.down_proj, weights, ids, *scales)
            error = float((fused.float() - reference.float()).abs().max() / reference.float().abs().max())
            weight_bytes = sum(t.numel() * t.element_size() for t in (module.gate_up_proj, module.down_proj))
            ref_ms = timed_ms(lambda m=module: m(x, weights, ids))
            fused_ms = timed_ms(lambda m=module, s=scales: fused_moe(x, m.gate_up_proj, m.down_proj, weights, ids, *s))
            row = {"batch": batch, "weights": name, "max_rel_error": error, "reference_ms": ref_ms,
                   "fused_ms": fused_ms, "weight_gb": weight_bytes / 1e9,
                   "fused_gb_per_s": weight_bytes / fused_ms / 1e6}
            if options.tune:
                config, row["tuned_ms"] = tune(x, module, weights, ids, scales)
                key = config_key(EXPERTS, HIDDEN, INTER, dtype, module.gate_up_proj.dtype)
                tuned.setdefault(report["device"], {}).setdefault(key, {})[str(ids.numel())] = config
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "kernels.json").write_text(json.dumps(report, indent=2))
        if options.tune:
            (Path(os.environ["OUT"]) / "moe.json").write_text(json.dumps(tuned, indent=2, sort_keys=True) + "\n")
    print(f"# fused MoE, one layer, {report['device']} ({peak.multi_processor_count} SMs), {report['date']}")
    print("| batch | weights | max rel. error | reference ms | fused ms | GB/s (weights) | tuned ms |")
    print("|---|---|---|---|---|---|---|")
    for row in report["rows"]:
        tuned_ms = f"{row['tuned_ms']:.2f}" if "tuned_ms" in row else ""
        print(f"| {row['batch']} | {row['weights']} | {row['max_rel_error']:.1e} | {row['reference_ms']:.2f} | "
              f"{row['fused_ms']:.2f} | {row['fused_gb_per_s']:.0f} | {tuned_ms} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
