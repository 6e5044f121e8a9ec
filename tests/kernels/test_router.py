"""kernels/router.py against engine/model/layers.py's Router on odd shapes: the same experts in the same order and
the same weights, with fresh random inputs and the outputs poisoned beforehand."""

from __future__ import annotations

import pytest
import torch

from engine.model.layers import Router
from kernels.router import route

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])


def router(hidden: int, num_experts: int, top_k: int, dtype, seed: int) -> Router:
    generator = torch.Generator().manual_seed(seed)
    module = Router(hidden, num_experts, top_k, 1e-6)
    with torch.no_grad():
        module.proj.weight.copy_(torch.randn(num_experts, hidden, generator=generator))
        module.scale.copy_(1.0 + 0.2 * torch.randn(hidden, generator=generator))
        module.per_expert_scale.copy_(0.5 + torch.rand(num_experts, generator=generator))
    return module.to(DEVICE, dtype)


# (tokens, hidden, experts, top_k): tokens under, at and over the 16-token tile, hidden sizes off the 64-wide
# chunk, expert counts under and at a power of two, one expert picked and many
@pytest.mark.parametrize("shape", [(1, 40, 5, 2), (16, 64, 8, 3), (37, 96, 16, 4), (20, 130, 128, 8), (9, 64, 4, 1)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_routes_as_the_reference_router(shape, dtype, poisoned):
    tokens, hidden, num_experts, top_k = shape
    module = router(hidden, num_experts, top_k, dtype, seed=sum(shape))
    x = (2.0 * torch.randn(tokens, hidden, generator=torch.Generator().manual_seed(tokens))).to(DEVICE, dtype)
    expected_weights, expected_ids = module(x)
    weights, ids = route(x, module.norm.eps, module.scale, module.root_size, module.proj.weight,
                         module.per_expert_scale, top_k)
    assert weights.dtype == torch.float32 and ids.dtype == torch.int64 and not weights.isnan().any()
    # float32: the projection summed in another order can only swap experts a rounding apart, which random
    # weights do not produce; half precision: a logit one rounding off may, so compare where the reference's
    # k-th and (k+1)-th probabilities are clearly apart
    probs = torch.softmax(module.proj(module.norm(x) * module.scale * module.root_size).float(), dim=-1)
    top = probs.topk(min(top_k + 1, num_experts), dim=-1).values
    margin = 1e-6 if dtype == torch.float32 else 2e-2  # relative: a logit off by a float16 step moves ~1 %
    clear = ((top[:, :-1] - top[:, 1:]) / top[:, :-1]).min(dim=-1).values > margin
    assert clear.any()  # the comparison below is not vacuous
    assert torch.equal(ids[clear], expected_ids[clear])
    rtol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(weights[clear], expected_weights[clear], rtol=rtol, atol=rtol)
