"""GPU kernels a denoising step launches, kernels off against on, counted on the CPU: the `tiny` shapes with
the real model's 30 layers and its 5:1 sliding/global pattern (the count depends on the layers, not on the
widths).

    python bench/launches.py        # a table last; JSON to $OUT/launches.json when $OUT is set

Eager PyTorch ops that run a kernel are counted with torch's profiler (views, allocations and metadata ops
are not kernels), Triton launches by wrapping the kernels; the Triton kernels run through the interpreter, so
this needs no GPU. A CUDA graph replays the same launches without the host's overhead, but each still costs
its few microseconds of GPU time, which is what the fused kernels save. Reported, never asserted.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")  # before anything imports triton

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.model.cache import KVCache, decoder_masks  # noqa: E402
from engine.model.config import MODEL_PRESETS, GenerationArgs, ModelArgs  # noqa: E402
from engine.runtime.generate import denoise_step, new_state, prefill, start_canvases  # noqa: E402
from engine.runtime.noise import make_noise  # noqa: E402
from engine.runtime.ops import enable  # noqa: E402
from engine.weights.checkpoint import random_model  # noqa: E402
from engine.weights.quantize import quantize  # noqa: E402

# aten ops that launch no kernel: views, allocations, metadata
NOT_KERNELS = {
    "aten::view", "aten::reshape", "aten::unsqueeze", "aten::squeeze", "aten::slice", "aten::select",
    "aten::transpose", "aten::t", "aten::expand", "aten::as_strided", "aten::unflatten", "aten::flatten",
    "aten::empty", "aten::empty_like", "aten::empty_strided", "aten::detach", "aten::alias", "aten::lift_fresh",
    "aten::_unsafe_view", "aten::contiguous", "aten::resolve_conj", "aten::resolve_neg", "aten::chunk",
    "aten::split", "aten::unbind", "aten::permute", "aten::result_type", "aten::size", "aten::stride",
    "aten::is_nonzero", "aten::item", "aten::_local_scalar_dense", "aten::to", "aten::numel",
}  # aten::to is the wrapper: a real cast shows as its child aten::_to_copy, counted where it is top-level


INTERPRETER = "triton interpreter"


def _is_kernel(event) -> bool:
    """A top-level aten op that runs a kernel: not a view or allocation, not a child of another aten op (its
    own kernels are counted once), not the interpreter's copying around a Triton launch."""
    if not event.name.startswith("aten::") or event.name in NOT_KERNELS:
        return False
    parent = event.cpu_parent
    if parent is not None and parent.name.startswith("aten::"):
        return False
    while parent is not None:
        if parent.name == INTERPRETER:
            return False
        parent = parent.cpu_parent
    return True


def real_layers() -> ModelArgs:
    tiny = MODEL_PRESETS["tiny"]
    real = MODEL_PRESETS["diffusiongemma-26b-a4b"]
    return dataclasses.replace(tiny, num_layers=real.num_layers, layer_types=real.layer_types)


def count_step(model, args: ModelArgs, mode: str) -> dict[str, int]:
    """Kernels one decoder step launches (batch 1, a 40-token prompt)."""
    from torch.profiler import ProfilerActivity, profile

    import kernels.attention
    import kernels.head
    import kernels.linear
    import kernels.moe
    import kernels.noise
    import kernels.norms
    import kernels.rope
    import kernels.router
    import kernels.sampler

    enable(model, "cpu", mode)
    length = args.canvas_length
    cache = KVCache.allocate(args, 1, 64, model.dtype, "cpu")
    generation = GenerationArgs()
    triton_launches = collections.Counter()
    wrapped = []
    # a triton.jit function (helpers are never run), once however many modules import it
    jitted = {id(kernel): (name, kernel)
              for module in (kernels.attention, kernels.head, kernels.linear, kernels.moe, kernels.noise,
                             kernels.norms, kernels.rope, kernels.router, kernels.sampler)
              for name, kernel in vars(module).items() if hasattr(kernel, "run") and hasattr(kernel, "fn")}
    for name, kernel in jitted.values():
        original = kernel.run

        def run(*a, _original=original, _name=name, **k):
            triton_launches[_name] += 1
            with torch.profiler.record_function(INTERPRETER):  # its own torch ops are no GPU kernels
                return _original(*a, **k)

        kernel.run = run
        wrapped.append((kernel, original))
    try:
        with torch.no_grad():
            prefill(model, cache, [[3] * 40])
            state = new_state(generation, 1, length, [16], args.vocab_size, "cpu", model.dtype)
            noise = make_noise("native", [0], args.vocab_size, length, "cpu")
            start_canvases(state, noise, [0], [40], "cpu", first=True)
            masks = decoder_masks(cache.lengths, 40, length, args.sliding_window, 40)
            triton_launches.clear()  # the prefill's
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                denoise_step(model, cache, state, noise, generation, masks, 40, [True])
    finally:
        for kernel, original in wrapped:
            kernel.run = original
        enable(model, "cpu", "off")
    aten = sum(1 for event in prof.events() if _is_kernel(event))
    return {"torch": aten, "triton": sum(triton_launches.values()), "total": aten + sum(triton_launches.values())}


def main() -> int:
    args = real_layers()
    rows = []
    for fmt in ("none", "fp8", "nf4"):
        # float16 rather than float32: the casts to and from float32 that a bf16 GPU step makes are real
        # kernels then, and the interpreter runs float16 dots (not bfloat16 ones)
        model = quantize(random_model(args, "cpu", torch.float16), fmt)
        for mode in ("off", "on"):
            rows.append({"weights": fmt, "kernels": mode, **count_step(model, args, mode)})
            print(json.dumps(rows[-1]), flush=True)
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "launches.json").write_text(json.dumps(rows, indent=2))
    print(f"# kernels launched by one denoising step, {args.num_layers} layers, batch 1 (counted on the CPU)")
    print("| weights | kernels | PyTorch kernels | Triton launches | total |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['weights']} | {row['kernels']} | {row['torch']} | {row['triton']} | {row['total']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
