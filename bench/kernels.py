"""The fused MoE kernel at the real 26B-A4B shapes on a GPU: correctness against the reference experts,
then time and achieved bandwidth, bf16 and FP8 weights, one layer, in one run.

    python bench/kernels.py            # on a lent GPU (about a minute); prints a table last
    python -m pytest -q tests/kernels  # the CPU tests, here in bf16 on the GPU too

Shapes: 128 experts, hidden 2816, expert intermediate 704, top-8; tokens = batch x 256 canvas positions.
At batch 1 all 128 experts are touched, so a layer reads every expert weight once: the time is bounded below
by expert bytes / memory bandwidth (bf16 2 x 3 x 2816 x 704 x 128 = 1.52 GB per layer; FP8 half). Writes
JSON to $OUT/kernels.json when $OUT is set. Speed is reported, never asserted.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.layers import Experts, Router  # noqa: E402
from engine.quantize import Fp8Experts  # noqa: E402
from kernels.moe import fused_moe  # noqa: E402

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


def main() -> int:
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
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "kernels.json").write_text(json.dumps(report, indent=2))
    print(f"# fused MoE, one layer, {report['device']} ({peak.multi_processor_count} SMs), {report['date']}")
    print("| batch | weights | max rel. error | reference ms | fused ms | GB/s (weights) |")
    print("|---|---|---|---|---|---|")
    for row in report["rows"]:
        print(f"| {row['batch']} | {row['weights']} | {row['max_rel_error']:.1e} | {row['reference_ms']:.2f} | "
              f"{row['fused_ms']:.2f} | {row['fused_gb_per_s']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
