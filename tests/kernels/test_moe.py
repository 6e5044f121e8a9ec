"""kernels/moe.py against the engine's reference experts (engine/model/layers.py, engine/weights/quantize.py) on odd
shapes, with fresh random inputs and intermediate buffers poisoned with NaN: a pair the kernel skips, or a
padding row it writes, shows. Full-precision, FP8 and NF4 weights."""

from __future__ import annotations

import pytest
import torch

from engine.model.layers import Experts, Router
from engine.weights.quantize import NF4_BLOCK, Fp8Experts, Nf4Experts
from kernels import moe
from kernels.moe import NF4_BLOCK as KERNEL_NF4_BLOCK
from kernels.moe import align, align_fused, config_key, fused_moe, row_tile, top_k_sum
from kernels.tuning import lookup

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# The interpreter's bfloat16 dot is broken (Triton 3.6): CPU runs cover float32 and float16.
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])


def test_align_pads_each_experts_pairs_to_whole_tiles():
    experts = torch.tensor([[3, 0], [3, 1], [0, 3], [4, 3], [3, 2]])
    sorted_ids, tile_experts, num_padded = align(experts, num_experts=6, block_m=4)
    pairs = experts.numel()
    ids = sorted_ids[: int(num_padded)].view(-1, 4)
    flat = experts.reshape(-1)
    # expert 0: pairs 1, 4; expert 1: 3; expert 2: 9; expert 3: 0, 2, 5, 7, 8 (two tiles); expert 4: 6
    assert tile_experts[: ids.shape[0]].tolist() == [0, 1, 2, 3, 3, 4]
    assert ids.tolist() == [[1, 4, pairs, pairs], [3, pairs, pairs, pairs], [9, pairs, pairs, pairs],
                            [0, 2, 5, 7], [8, pairs, pairs, pairs], [6, pairs, pairs, pairs]]
    assert all(int(flat[i]) == int(e) for row, e in zip(ids.tolist(), tile_experts.tolist(), strict=False)
               for i in row if i < pairs)
    assert torch.all(sorted_ids[int(num_padded):] == pairs)  # the static bound's slack is padding too


def routed(tokens: int, hidden: int, num_experts: int, top_k: int, dtype, seed: int):
    generator = torch.Generator().manual_seed(seed)
    router = Router(hidden, num_experts, top_k, 1e-6)
    with torch.no_grad():
        router.proj.weight.copy_(torch.randn(num_experts, hidden, generator=generator))
    x = torch.randn(tokens, hidden, generator=generator)
    weights, experts = router(x)
    return x.to(dtype), weights, experts


def experts_module(num_experts: int, hidden: int, inter: int, dtype, seed: int) -> Experts:
    generator = torch.Generator().manual_seed(seed + 1)
    module = Experts(num_experts, hidden, inter)
    with torch.no_grad():
        module.gate_up_proj.copy_(torch.randn(num_experts, 2 * inter, hidden, generator=generator) * hidden**-0.5)
        module.down_proj.copy_(torch.randn(num_experts, hidden, inter, generator=generator) * inter**-0.5)
    return module.to(dtype)



# (tokens, hidden, intermediate, experts, top_k): hidden and intermediate off the 64-wide tiles, pairs per
# expert under, at and over a 16-row tile (row_tile picks 16 or 32), experts that get no token, one token.
SHAPES = [(1, 40, 24, 4, 2), (7, 72, 40, 8, 3), (16, 48, 88, 5, 2), (37, 96, 56, 16, 4)]
# Float32: both sides accumulate in float32 in another order. Float16: the intermediate and each pair's
# output are rounded to float16 on both sides, at different points (the pair before the routing weight in
# the reference, after it here; relative error 2^-11 per rounding); both bounds are a few
# hundred times tighter than a missing pair, a wrong expert or a dropped scale would be.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_the_reference_experts(shape, dtype, poisoned):
    tokens, hidden, inter, num_experts, top_k = shape
    x, weights, experts = routed(tokens, hidden, num_experts, top_k, dtype, seed=sum(shape))
    module = experts_module(num_experts, hidden, inter, dtype, seed=sum(shape)).to(DEVICE)
    x, weights, experts = x.to(DEVICE), weights.to(DEVICE), experts.to(DEVICE)
    want = module(x, weights, experts).float()
    got = fused_moe(x, module.gate_up_proj, module.down_proj, weights, experts).float()
    assert got.dtype == want.dtype and not torch.isnan(got).any()
    assert (got - want).abs().max() <= TOLERANCE[dtype] * want.abs().max()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES[1:3])
def test_fp8_weights_match_the_dequantized_reference(shape, dtype, poisoned):
    tokens, hidden, inter, num_experts, top_k = shape
    x, weights, experts = routed(tokens, hidden, num_experts, top_k, dtype, seed=7 * sum(shape))
    full = experts_module(num_experts, hidden, inter, torch.float32, seed=7 * sum(shape))
    fp8 = Fp8Experts(num_experts, hidden, inter)
    for name in ("gate_up_proj", "down_proj"):
        fp8.load(name, getattr(full, name).detach())
    fp8 = fp8.to(DEVICE)
    x, weights, experts = x.to(DEVICE), weights.to(DEVICE), experts.to(DEVICE)
    want = fp8(x, weights, experts).float()
    got = fused_moe(x, fp8.gate_up_proj, fp8.down_proj, weights, experts, fp8.gate_up_scale, fp8.down_scale).float()
    assert fp8.gate_up_proj.dtype == torch.float8_e4m3fn  # read as stored, one byte per weight
    assert (got - want).abs().max() <= TOLERANCE[dtype] * want.abs().max()


def test_the_row_tile_is_twice_the_pairs_per_expert():
    # a canvas routes 2048 pairs to 128 experts (16 each): 32 rows; four canvases (64 each): 128, the cap
    assert [row_tile(256 * batch * 8, 128) for batch in (1, 2, 4, 8)] == [32, 64, 128, 128]
    assert [row_tile(pairs, 16) for pairs in (1, 128, 129, 256, 257, 512, 513)] == [16, 16, 32, 32, 64, 64, 128]


# (tokens, hidden, intermediate, experts, top_k) with the pairs per expert of a canvas (15: 32-row tiles) and of
# two and four (27, 65: 64 and 128 rows), hidden and intermediate off every tile
BATCH_SHAPES = [(60, 72, 40, 16, 4), (70, 56, 88, 8, 3), (130, 72, 40, 8, 4)]


@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_wide_row_tiles_match_the_reference_experts(shape, poisoned, monkeypatch):
    tokens, hidden, inter, num_experts, top_k = shape
    dtype = torch.float16  # float32 runs the same tiles; float16 adds the intermediate's rounding
    blocks = []
    monkeypatch.setattr(moe, "align_fused", lambda *args: blocks.append(args[2]) or align_fused(*args))
    x, weights, experts = routed(tokens, hidden, num_experts, top_k, dtype, seed=3 * sum(shape))
    module = experts_module(num_experts, hidden, inter, dtype, seed=3 * sum(shape)).to(DEVICE)
    x, weights, experts = x.to(DEVICE), weights.to(DEVICE), experts.to(DEVICE)
    want = module(x, weights, experts).float()
    got = fused_moe(x, module.gate_up_proj, module.down_proj, weights, experts).float()
    assert blocks == [row_tile(tokens * top_k, num_experts)] and blocks[0] >= 32
    assert not torch.isnan(got).any()
    assert (got - want).abs().max() <= TOLERANCE[dtype] * want.abs().max()


@pytest.mark.parametrize("quantized", ["fp8", "nf4"])
def test_wide_row_tiles_read_quantized_experts(quantized, poisoned):
    tokens, hidden, inter, num_experts, top_k = BATCH_SHAPES[2]  # 128-row tiles
    x, weights, experts = routed(tokens, hidden, num_experts, top_k, torch.float32, seed=41)
    full = experts_module(num_experts, hidden, inter, torch.float32, seed=41)
    if quantized == "nf4":
        module = nf4_experts(full)
    else:
        module = Fp8Experts(num_experts, hidden, inter)
        for name in ("gate_up_proj", "down_proj"):
            module.load(name, getattr(full, name).detach())
        module = module.to(DEVICE)
    x, weights, experts = x.to(DEVICE), weights.to(DEVICE), experts.to(DEVICE)
    want = module(x, weights, experts)
    gate_up, down, *scales = module.stored_weights()
    got = fused_moe(x, gate_up, down, weights, experts, *scales)
    assert (got - want).abs().max() <= TOLERANCE[torch.float32] * want.abs().max()


def test_a_tuned_row_tile_wins_and_the_align_pads_to_it(monkeypatch, poisoned):
    tokens, hidden, inter, num_experts, top_k = BATCH_SHAPES[2]
    blocks = []
    monkeypatch.setattr(moe, "align_fused", lambda *args: blocks.append(args[2]) or align_fused(*args))
    monkeypatch.setattr(moe, "tuned_config", lambda *args: {"BLOCK_M": 16})
    x, weights, experts = routed(tokens, hidden, num_experts, top_k, torch.float32, seed=13)
    module = experts_module(num_experts, hidden, inter, torch.float32, seed=13).to(DEVICE)
    x, weights, experts = x.to(DEVICE), weights.to(DEVICE), experts.to(DEVICE)
    got = fused_moe(x, module.gate_up_proj, module.down_proj, weights, experts)
    want = module(x, weights, experts)
    assert blocks == [16]
    assert (got - want).abs().max() <= TOLERANCE[torch.float32] * want.abs().max()


def nf4_experts(full: Experts) -> Nf4Experts:
    num_experts, double_inter, hidden = full.gate_up_proj.shape
    nf4 = Nf4Experts(num_experts, hidden, double_inter // 2)
    for name in ("gate_up_proj", "down_proj"):
        nf4.load(name, getattr(full, name).detach())
    return nf4.to(DEVICE)


# Rows 40, 24, 48 and 88 wide end in a part-filled (zero-padded) 64-weight block; rows 200 and 136 wide span
# several, and with BLOCK_K 128 a tile holds two blocks: the last tile of a 200-wide row one partly past its
# end, that of a 136-wide row one partly and one wholly past it.
NF4_SHAPES = [SHAPES[0], SHAPES[2], (9, 200, 136, 6, 2)]


@pytest.mark.parametrize("block_k", [64, 128])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", NF4_SHAPES)
def test_nf4_weights_match_the_dequantized_reference(shape, dtype, block_k, poisoned):
    tokens, hidden, inter, num_experts, top_k = shape
    seed = 11 * sum(shape) + block_k
    x, weights, experts = routed(tokens, hidden, num_experts, top_k, dtype, seed=seed)
    nf4 = nf4_experts(experts_module(num_experts, hidden, inter, torch.float32, seed=seed))
    x, weights, experts = x.to(DEVICE), weights.to(DEVICE), experts.to(DEVICE)
    want = nf4(x, weights, experts).float()  # the reference: every expert dequantized, then grouped GEMMs
    gate_up, down, *scales = nf4.stored_weights()  # codes, absmax and the codebook
    got = fused_moe(x, gate_up, down, weights, experts, *scales, config={"BLOCK_K": block_k}).float()
    assert nf4.gate_up_proj.dtype == torch.uint8 and nf4.gate_up_proj.shape[-1] == -(-hidden // 64) * 32
    assert KERNEL_NF4_BLOCK == NF4_BLOCK == 64
    # The kernel dequantizes each weight as the reference does (float32 level x absmax, then the activation
    # dtype), so only the order of the sums differs: TOLERANCE's bounds hold unchanged.
    assert not torch.isnan(got).any()
    assert (got - want).abs().max() <= TOLERANCE[dtype] * want.abs().max()


def test_nf4_launches_refuse_what_the_kernel_cannot_read():
    x, weights, experts = routed(3, 72, 4, 2, torch.float32, seed=5)
    nf4 = nf4_experts(experts_module(4, 72, 40, torch.float32, seed=5)).to("cpu")
    gate_up, down, gate_up_absmax, down_absmax, codebook = nf4.stored_weights()
    with pytest.raises(ValueError, match="BLOCK_K must be a multiple of the NF4 block"):
        fused_moe(x, gate_up, down, weights, experts, gate_up_absmax, down_absmax, codebook, config={"BLOCK_K": 32})
    with pytest.raises(ValueError, match="need both absmax tensors and the 16-entry codebook"):
        fused_moe(x, gate_up, down, weights, experts, gate_up_absmax, down_absmax)
    with pytest.raises(ValueError, match=r"NF4 gate_up: codes \[4, 80, 63\] and absmax \[4, 80, 2\] do not hold 4 x 80"
                                         r" rows of 72 weights in blocks of 64"):
        fused_moe(x, gate_up[..., :-1], down, weights, experts, gate_up_absmax, down_absmax, codebook)
    with pytest.raises(ValueError, match=r"NF4 down: .* 4 x 72 rows of 40 weights"):
        fused_moe(x, gate_up, down[:, :-1], weights, experts, gate_up_absmax, down_absmax, codebook)


def test_tuned_configs_are_found_by_device_shape_and_pair_count():
    key = config_key(128, 2816, 704, torch.bfloat16, torch.float8_e4m3fn)
    assert key == "E=128,D=2816,I=704,bfloat16,float8_e4m3fn"
    table = {"NVIDIA H100 80GB HBM3": {key: {"256": {"BLOCK_M": 16}, "2048": {"BLOCK_M": 64}}}}
    assert lookup(table, "NVIDIA H100 80GB HBM3", key, 100)["BLOCK_M"] == 16
    assert lookup(table, "NVIDIA H100 80GB HBM3", key, 1000)["BLOCK_M"] == 64
    assert lookup(table, "NVIDIA H100 80GB HBM3", key, 9000)["BLOCK_M"] == 64  # beyond the tuned range
    assert lookup(table, "NVIDIA H200", key, 100) == {} and lookup(table, "NVIDIA H100 80GB HBM3", "other", 1) == {}
    assert config_key(128, 2816, 704, torch.bfloat16, "nf4") == "E=128,D=2816,I=704,bfloat16,nf4"


# one chunk of pairs to 128 (four canvases: 8 prefix steps of 16 chunks), 19 chunks (a part-filled step)
@pytest.mark.parametrize("tokens, num_experts, top_k, block_m", [(1, 4, 2, 16), (37, 8, 3, 16), (256, 128, 8, 16),
                                                                 (200, 16, 4, 32), (5, 128, 8, 64), (300, 16, 4, 64),
                                                                 (256, 128, 8, 32), (1024, 128, 8, 128)])
def test_the_fused_align_equals_the_reference(tokens, num_experts, top_k, block_m, poisoned):
    generator = torch.Generator().manual_seed(tokens + num_experts)
    # top-k experts are distinct per token; skewed so some experts get many pairs and some none
    scores = torch.rand(tokens, num_experts, generator=generator) ** 3 + torch.linspace(0, 0.5, num_experts)
    experts = scores.topk(top_k, dim=-1).indices.to(DEVICE)
    expected = align(experts, num_experts, block_m)
    ours = align_fused(experts, num_experts, block_m)
    for name, mine, theirs in zip(("sorted ids", "tile experts", "padded count"), ours, expected, strict=True):
        assert mine.dtype == theirs.dtype and torch.equal(mine, theirs), name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 16), (5, 8, 2816), (3, 2, 1500)])
@pytest.mark.parametrize("pairs_in_dtype", [False, True])  # fused_moe stores them in the activation dtype
def test_top_k_sum_adds_each_tokens_pairs_in_order_then_casts(shape, dtype, pairs_in_dtype, poisoned):
    pairs = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape))).to(DEVICE)
    pairs = pairs.to(dtype) if pairs_in_dtype else pairs
    in_order = pairs[:, 0].to(torch.float32, copy=True)
    for k in range(1, shape[1]):  # the kernel's order: float32 sums, rounded the same way at each addition
        in_order += pairs[:, k].float()
    got = top_k_sum(pairs, dtype)
    assert got.dtype == dtype and torch.equal(got, in_order.to(dtype))
