"""Compiles every kernel of kernels/ at the real 26B-A4B shapes with its default launch configuration for the
GPUs the README names, without a GPU: Triton's compiler and the ptxas in its wheel need none. Hopper (sm_90:
H100, H200) is what the defaults are chosen for; Ada (sm_89: L40S, L4, RTX 4090) and Ampere (sm_80: A100)
must compile them too, except FP8 on Ampere, which Triton refuses and engine/runtime/ops.py refuses first.

The interpreter checks what the kernels compute; only this catches what the interpreter lets through and the
GPU compiler refuses (a global that is not a constexpr, a dot below 16, a tile past the shared memory) before
device time is spent on it, and what the defaults cost in registers on Hopper: ptxas -v on the same PTX
reports the registers a thread uses and the bytes it spills to local memory, which a default should never
do. Run as `python -m tests.kernels.offline_compile` with TRITON_INTERPRET unset (test_offline_compile.py
does): prints one JSON line per architecture and variant.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

import torch

POINTER = {torch.bfloat16: "*bf16", torch.float32: "*fp32", torch.int64: "*i64", torch.int32: "*i32",
           torch.uint8: "*u8", torch.float8_e4m3fn: "*fp8e4nv", torch.bool: "*i1"}
HIDDEN, VOCAB, CANVAS, EXPERTS, INTER, TOP_K = 2816, 262144, 256, 128, 704, 8
DENSE_INTER = 2112  # the dense MLP's intermediate size
# Compute capability -> the shared memory one block may take (bytes)
ARCHITECTURES = {90: 227 * 1024, 89: 99 * 1024, 80: 163 * 1024}


def compile_for(capability: int, kernel, args: dict, num_warps: int = 4, num_stages: int = 3):
    """args: every parameter by name: a torch dtype for a pointer, an int or float for a scalar, anything for a
    constexpr (its value).

    Specialised as a real launch specialises (triton/runtime/jit.py): a pointer aligned to 16 bytes (torch's
    allocations are) and an integer divisible by 16 carry tt.divisibility 16, an integer equal to 1 becomes a
    constant. Those decide whether loads vectorise and the pipeliner stages them, so a variant should pass the
    strides and sizes its launch really passes."""
    import triton
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.compiler import BaseBackend, GPUTarget
    from triton.compiler import ASTSource

    signature, constants, attrs = {}, {}, {}
    for index, name in enumerate(kernel.arg_names):
        value = args[name]
        if index in kernel.constexprs:
            signature[name], constants[name] = "constexpr", value
        elif isinstance(value, torch.dtype):
            signature[name] = POINTER[value]
            attrs[(index,)] = BaseBackend.parse_attr("D")
        elif isinstance(value, float):
            signature[name] = "fp32"
        else:
            kind, spec = native_specialize_impl(BaseBackend, value, False, True, True)
            if kind == "constexpr":
                signature[name], constants[name] = "constexpr", spec
            else:
                signature[name] = kind
                attrs[(index,)] = BaseBackend.parse_attr(spec)
    source = ASTSource(kernel, signature, constants, attrs)
    return triton.compile(source, target=GPUTarget("cuda", capability, 32),
                          options={"num_warps": num_warps, "num_stages": num_stages})


def registers_and_spills(compiled) -> tuple[int, int]:
    """(registers a thread uses, bytes it spills) of a compiled kernel, from ptxas -v on its PTX."""
    import triton

    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    with tempfile.TemporaryDirectory() as directory:
        ptx = os.path.join(directory, "kernel.ptx")
        with open(ptx, "w") as file:
            file.write(compiled.asm["ptx"])
        report = subprocess.run([ptxas, "-v", "--gpu-name", "sm_90a", ptx, "-o", os.path.join(directory, "out")],
                                capture_output=True, text=True, check=True).stderr
    registers = int(re.search(r"Used (\d+) registers", report).group(1))
    spilled = int(re.search(r"(\d+) bytes spill stores", report).group(1))
    return registers, spilled


def head_variants():
    from kernels.head import (
        DEFAULT_CONFIG,
        DRAW_CONFIG,
        NORMALIZE_TILES,
        _draw_kernel,
        _head_kernel,
        _normalize_kernel,
    )

    config = DEFAULT_CONFIG
    blocks = {"BLOCK_N": config["BLOCK_N"], "BLOCK_V": config["BLOCK_V"], "BLOCK_D": config["BLOCK_D"]}
    bf16, f32, i64 = torch.bfloat16, torch.float32, torch.int64
    tiles = VOCAB // config["BLOCK_V"]
    yield "head", _head_kernel, {
        "h_ptr": bf16, "w_ptr": bf16, "temp_ptr": f32, "part_ptr": f32, "argmax_ptr": i64, "probs_ptr": bf16,
        "tile_max_ptr": f32, "tile_sum_ptr": f32, "num_rows": CANVAS, "vocab": VOCAB, "num_tiles": tiles,
        "hidden": HIDDEN, "tiles_per_split": tiles // config["SPLITS"], "stride_h": HIDDEN, "stride_w": HIDDEN,
        "stride_p": VOCAB, "softcap": 30.0, "HAS_CAP": True, "SELF_COND": True, "PRECISION": "tf32", **blocks,
    }, config["num_warps"], config["num_stages"]
    yield "head draw", _draw_kernel, {
        "h_ptr": bf16, "w_ptr": bf16, "temp_ptr": f32, "uniforms_ptr": f32, "part_ptr": f32, "part_argmax_ptr": i64,
        "tile_max_ptr": f32, "tile_sum_ptr": f32, "sample_ptr": i64, "argmax_ptr": i64, "entropy_ptr": f32,
        "lse_ptr": f32, "num_rows": CANVAS, "num_splits": config["SPLITS"], "num_tiles": tiles, "vocab": VOCAB,
        "stride_h": HIDDEN, "stride_w": HIDDEN, "softcap": 30.0, "hidden": HIDDEN, "HAS_CAP": True, "SELF_COND": True,
        "BLOCK_V": config["BLOCK_V"], "BLOCK_D": DRAW_CONFIG["BLOCK_D"], "SPLITS_BLOCK": config["SPLITS"],
        "TILES_BLOCK": tiles,
    }, DRAW_CONFIG["num_warps"], 3
    yield "head normalize", _normalize_kernel, {
        "probs_ptr": bf16, "tile_max_ptr": f32, "lse_ptr": f32, "vocab": VOCAB, "num_tiles": tiles,
        "stride_p": VOCAB, "BLOCK_V": config["BLOCK_V"], "TILES": NORMALIZE_TILES,
    }, 4, 3


def attention_variants():
    from kernels.attention import DEFAULT_CONFIGS, _canvas_attention_kernel

    for name, heads, kv_heads, head_dim, window in (("sliding", 16, 8, 256, 1024), ("global", 16, 2, 512, None)):
        config = DEFAULT_CONFIGS[head_dim]
        strides = {f"stride_{t}{d}": 1000 for t in ("q", "k", "v", "ck", "cv", "o") for d in "brtsh"}
        args = {name_: torch.bfloat16 for name_ in ("q_ptr", "k_ptr", "v_ptr", "cache_k_ptr", "cache_v_ptr", "out_ptr")}
        args.update({"lengths_ptr": torch.int64, "rows_ptr": torch.int64, "start": 0, "kv_len": 2048,
                     "window": window or 0, "canvas_len": CANVAS, **strides, "GROUP": heads // kv_heads,
                     "HAS_ROWS": True, "HAS_WINDOW": window is not None, "PRECISION": "tf32",
                     "BLOCK_M": config["BLOCK_M"], "BLOCK_N": config["BLOCK_N"], "BLOCK_D": head_dim})
        yield f"attention {name}", _canvas_attention_kernel, args, config["num_warps"], config["num_stages"]


def norm_variants():
    from kernels.norms import (
        ROWS_PER_PROGRAM,
        _attn_residual_kernel,
        _ffn_out_kernel,
        _norm_rope_kernel,
        _qkv_kernel,
        _rms_norm_kernel,
    )

    for dim, with_weight in ((HIDDEN, True), (HIDDEN, False), (256, True), (512, False)):
        block = 1 << (dim - 1).bit_length()
        yield f"norm {dim}{'' if with_weight else ' unscaled'}", _rms_norm_kernel, {
            "x_ptr": torch.bfloat16, "w_ptr": torch.bfloat16, "out_ptr": torch.bfloat16, "num_rows": CANVAS,
            "stride_x": dim, "stride_out": dim, "eps": 1e-6, "dim": dim, "HAS_WEIGHT": with_weight,
            "ROWS": ROWS_PER_PROGRAM, "BLOCK": block,
        }, 8 if block >= 2048 else 4, 3
    for dim, heads in ((256, 16), (512, 2)):  # q of a sliding layer, k of a global one
        yield f"norm+rope {dim}", _norm_rope_kernel, {
            "x_ptr": torch.bfloat16, "w_ptr": torch.bfloat16, "cos_ptr": torch.bfloat16, "sin_ptr": torch.bfloat16,
            "out_ptr": torch.bfloat16, "num_rows": CANVAS * heads, "heads": heads, "eps": 1e-6, "dim": dim,
            "HAS_WEIGHT": True, "ROWS": ROWS_PER_PROGRAM, "BLOCK": dim,
        }, 4, 3
    yield "ffn out", _ffn_out_kernel, {  # with the next layer's input norm, as the engine runs it
        **{name: torch.bfloat16 for name in ("x_ptr", "dense_ptr", "moe_ptr", "w_dense_ptr", "w_moe_ptr", "w_sum_ptr",
                                             "scalar_ptr", "w_next_ptr", "out_ptr", "next_ptr")},
        "num_rows": CANVAS, "eps": 1e-6, "dim": HIDDEN, "NEXT": True, "ROWS": ROWS_PER_PROGRAM, "BLOCK": 4096,
    }, 8, 3
    for kind, kv_heads, dim, has_v in (("sliding", 8, 256, True), ("global", 2, 512, False)):
        yield f"qkv {kind}", _qkv_kernel, {
            **{name: torch.bfloat16 for name in ("proj_ptr", "wq_ptr", "wk_ptr", "cos_ptr", "sin_ptr", "q_ptr", "k_ptr",
                                                 "v_ptr")},
            "num_rows": CANVAS * (16 + 2 * kv_heads), "eps": 1e-6, "q_heads": 16, "kv_heads": kv_heads,
            "HAS_V": has_v, "dim": dim, "ROWS": ROWS_PER_PROGRAM, "BLOCK": dim,
        }, 4, 3
    yield "attn residual", _attn_residual_kernel, {
        **{name: torch.bfloat16 for name in ("x_ptr", "attn_ptr", "w_post_ptr", "w_dense_ptr", "w_moe_ptr", "out_ptr",
                                             "dense_ptr", "moe_ptr")},
        "num_rows": CANVAS, "eps": 1e-6, "dim": HIDDEN, "ROWS": ROWS_PER_PROGRAM, "BLOCK": 4096,
    }, 8, 3


def router_variants():
    from kernels.router import BLOCK_D, BLOCK_M, _router_kernel

    yield "router", _router_kernel, {
        "x_ptr": torch.bfloat16, "scale_ptr": torch.bfloat16, "proj_ptr": torch.bfloat16,
        "expert_scale_ptr": torch.bfloat16, "weights_ptr": torch.float32, "ids_ptr": torch.int64,
        "num_rows": CANVAS, "eps": 1e-6, "root_size": HIDDEN**-0.5, "dim": HIDDEN, "num_experts": EXPERTS,
        "top_k": TOP_K, "PRECISION": "tf32", "BLOCK_M": BLOCK_M, "BLOCK_D": BLOCK_D, "BLOCK_E": EXPERTS,
        "BLOCK_K": TOP_K,
    }, 4, 3


def noise_variants():
    from kernels.noise import BLOCK, _draws_kernel

    yield "noise", _draws_kernel, {
        "seeds_ptr": torch.int64, "canvas_ptr": torch.int64, "step_ptr": torch.int64, "uniforms_ptr": torch.float32,
        "renoise_ptr": torch.int64, "length": CANVAS, "vocab": VOCAB, "BLOCK": BLOCK,
    }, 4, 3


def rope_variants():
    from kernels.rope import _rope_kernel

    yield "rope", _rope_kernel, {
        "positions_ptr": torch.int64, "local_freq_ptr": torch.float32, "global_freq_ptr": torch.float32,
        **{name: torch.bfloat16 for name in ("local_cos_ptr", "local_sin_ptr", "global_cos_ptr", "global_sin_ptr")},
        "local_dim": 256, "global_dim": 512, "LOCAL_BLOCK": 256, "GLOBAL_BLOCK": 512,
    }, 4, 3


def sampler_variants():
    from kernels.sampler import CHUNK, _advance_kernel

    i64, f32, b = torch.int64, torch.float32, torch.bool
    yield "sampler advance", _advance_kernel, {
        "entropy_ptr": f32, "samples_ptr": i64, "argmax_ptr": i64, "renoise_ptr": i64, "canvas_ptr": i64,
        "state_argmax_ptr": i64, "state_entropy_ptr": f32, "accepted_ptr": b, "history_ptr": i64, "running_ptr": b,
        "cur_step_ptr": torch.int32, "steps_done_ptr": i64, "self_cond_mask_ptr": b, "stopped_ptr": b,
        "length": CANVAS, "stride_hk": 4 * CANVAS, "stride_hb": CANVAS, "entropy_bound": 0.1,
        "confidence_threshold": 0.005, "HISTORY": 1, "BLOCK_L": CANVAS, "CHUNK": CHUNK,
    }, 4, 3


def moe_variants():
    from kernels.moe import (
        ALIGN_CHUNK,
        FILL_BLOCK,
        PREFIX_ROWS,
        TILE_BLOCK,
        _align_counts,
        _align_scatter,
        _grouped_gemm,
        _top_k_sum_kernel,
        default_config,
        pair_bound,
        row_tile,
    )

    pairs, bins = CANVAS * TOP_K, 256
    block_m = row_tile(pairs, EXPERTS)
    bound = pair_bound(pairs, EXPERTS, block_m)
    chunks, tiles = pairs // ALIGN_CHUNK, bound // block_m
    yield "moe align counts", _align_counts, {
        "ids_ptr": torch.int64, "chunk_counts_ptr": torch.int32, "sorted_ids_ptr": torch.int32, "num_pairs": pairs,
        "bound": bound, "slots_per_program": -(-bound // chunks), "num_experts": EXPERTS, "CHUNK": ALIGN_CHUNK,
        "BINS": bins, "FILL_BLOCK": FILL_BLOCK,
    }, 4, 3
    yield "moe align scatter", _align_scatter, {
        "ids_ptr": torch.int64, "chunk_counts_ptr": torch.int32, "sorted_ids_ptr": torch.int32,
        "tile_experts_ptr": torch.int32, "num_padded_ptr": torch.int32, "num_pairs": pairs, "num_chunks": chunks,
        "num_tiles": tiles, "tiles_per_program": -(-tiles // chunks), "num_experts": EXPERTS, "BLOCK_M": block_m,
        "CHUNK": ALIGN_CHUNK, "BINS": bins, "PREFIX_ROWS": PREFIX_ROWS, "TILE_BLOCK": TILE_BLOCK,
    }, 4, 3

    yield "moe top-k sum", _top_k_sum_kernel, {"pairs_ptr": torch.bfloat16, "out_ptr": torch.bfloat16, "hidden": HIDDEN,
                                               "top_k": TOP_K, "BLOCK": 1024}, 4, 3
    for batch in (1, 4):  # the row tile moe.row_tile picks for a canvas and for four
        pairs = batch * CANVAS * TOP_K
        for weights in ("bf16", "fp8", "nf4"):
            config = default_config(pairs, EXPERTS, weights == "nf4")
            for gated in (True, False):
                n_out, k_in = (INTER, HIDDEN) if gated else (HIDDEN, INTER)
                args = gemm_args(weights, n_out * (2 if gated else 1), k_in, EXPERTS, config)
                args.update({"num_pairs": pairs, "n_out": n_out, "stride_am": k_in, "stride_cm": n_out,
                             "c_ptr": torch.bfloat16, "top_k": TOP_K,
                             "A_BY_TOKEN": gated, "GATED": gated, "ROUTED": not gated, "DENSE": False})
                yield f"moe {weights} {'gate/up' if gated else 'down'} batch {batch}", _grouped_gemm, args, \
                    config["num_warps"], config["num_stages"]


def linear_variants():
    """kernels/linear.py at a canvas (256 rows) and four (1024): a sliding layer's stacked q/k/v, and a dense
    MLP's gate and up with the GELU gate."""
    from kernels.linear import default_config
    from kernels.moe import _grouped_gemm

    for weights in ("fp8", "nf4"):
        for batch in (1, 4):
            rows = batch * CANVAS
            for name, n_out, gated in (("", (16 + 2 * 8) * 256, False), (" gated", DENSE_INTER, True)):
                config = default_config(rows, gated, weights == "nf4")
                args = gemm_args(weights, n_out * (2 if gated else 1), HIDDEN, 0, config)
                args.update({"num_pairs": rows, "n_out": n_out, "stride_am": HIDDEN, "stride_cm": n_out,
                             "c_ptr": torch.bfloat16, "top_k": 1, "A_BY_TOKEN": True, "GATED": gated,
                             "ROUTED": False, "DENSE": True})
                yield f"linear {weights}{name} batch {batch}", _grouped_gemm, args, config["num_warps"], \
                    config["num_stages"]


def gemm_args(weights: str, rows: int, k_in: int, num_experts: int, config: dict) -> dict:
    """_grouped_gemm's weight arguments with the strides a launch passes: weights [E, rows, k_in] (or one matrix,
    num_experts 0) as stored in bf16, FP8 with a scale per row, or NF4 codes with an absmax per block."""
    from kernels.moe import NF4_BLOCK

    blocks = -(-k_in // NF4_BLOCK)
    row_width = {"bf16": k_in, "fp8": k_in, "nf4": blocks * NF4_BLOCK // 2}[weights]
    scale_strides = {"bf16": (0, 0, 0), "fp8": (rows, 1, 0), "nf4": (rows * blocks, blocks, 1)}[weights]
    weight_dtype = {"bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn, "nf4": torch.uint8}[weights]
    return {
        "a_ptr": torch.bfloat16, "w_ptr": weight_dtype, "scale_ptr": torch.float32, "code_ptr": torch.float32,
        "routing_ptr": torch.float32, "sorted_ids_ptr": torch.int32, "tile_experts_ptr": torch.int32,
        "num_padded_ptr": torch.int32, "k_in": k_in,
        "stride_we": rows * row_width if num_experts else 0, "stride_wn": row_width, "stride_wk": 1,
        **dict(zip(("stride_se", "stride_sn", "stride_sk"),
                   scale_strides if num_experts else (0, *scale_strides[1:]), strict=True)),
        "SCALED": weights == "fp8", "NF4": weights == "nf4", "QBLOCK": NF4_BLOCK if weights == "nf4" else 1,
        "PRECISION": "tf32", "BLOCK_M": config["BLOCK_M"], "BLOCK_N": config["BLOCK_N"],
        "BLOCK_K": config["BLOCK_K"],
    }


def gelu_mul_variants():
    from kernels.linear import _gelu_mul_kernel

    yield "gelu mul", _gelu_mul_kernel, {"in_ptr": torch.bfloat16, "out_ptr": torch.bfloat16, "inter": DENSE_INTER,
                                         "BLOCK": 1024}, 4, 3


def main() -> int:
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("unset TRITON_INTERPRET: the interpreter's kernels cannot be compiled", file=sys.stderr)
        return 2
    for capability in ARCHITECTURES:
        for variants in (head_variants, attention_variants, norm_variants, router_variants, noise_variants,
                         rope_variants, sampler_variants, moe_variants, linear_variants,
                         gelu_mul_variants):
            for name, kernel, args, num_warps, num_stages in variants():
                row = {"arch": capability, "kernel": name}
                try:
                    compiled = compile_for(capability, kernel, args, num_warps, num_stages)
                except Exception as error:  # reported, for the test to judge
                    print(json.dumps({**row, "refused": str(error).strip().splitlines()[-1]}), flush=True)
                    continue
                row["shared"] = compiled.metadata.shared
                if capability == 90:
                    row["registers"], row["spill_bytes"] = registers_and_spills(compiled)
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
