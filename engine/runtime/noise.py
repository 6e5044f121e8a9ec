"""Random draws for the sampler: initial canvases, token samples and renoising tokens, per request.

Two sources, both seeded per request so that a request's output does not depend on what else shares its batch:

- `ReferenceNoise` ("reference"): one torch.Generator per request drawing exactly what transformers' `generate`
  draws at batch size 1, in the same order and shapes (randint for the canvas; then per step a multinomial
  over [L, V] and a randint for renoising). With CPU float32 logits this reproduces transformers' token ids.
- `CounterNoise` ("native"): stateless counter-based numbers, a hash of (seed, canvas, step, stream, position).
  No generator state and no host round trip, so a whole step can be captured in a CUDA graph; a token is
  drawn by inverse CDF from one uniform per position, which the fused sampling head (kernels/head.py) takes
  too and draws the same token from.
"""

from __future__ import annotations

import torch

RNG_MODES = ("native", "reference")
_MASK32 = 0xFFFFFFFF
SEED_OFFSET = 0x9E3779B9  # 2^32 / golden ratio: any odd constant would do (see CounterNoise._bits)
_STREAM_SAMPLE, _STREAM_RENOISE, _STREAM_CANVAS = 0, 1, 2


class ReferenceNoise:
    def __init__(self, seeds: list[int], vocab_size: int, canvas_length: int, device: torch.device):
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
        self.vocab_size, self.canvas_length, self.device = vocab_size, canvas_length, device

    def canvas(self, rows: list[int], canvas_index: torch.Tensor) -> torch.Tensor:
        """Initial canvases for `rows`: [len(rows), L]."""
        return torch.cat([self._uniform_tokens(row) for row in rows])

    def samples(self, processed: torch.Tensor, active: list[bool], canvas_index, step_index) -> torch.Tensor:
        """One token per position from the processed logits [B, L, V] fp32, by multinomial over their softmax
        as transformers draws; rows not active draw nothing (garbage returned)."""
        probs = torch.softmax(processed, dim=-1, dtype=torch.float32)
        out = torch.zeros(probs.shape[:2], dtype=torch.long, device=probs.device)
        for row, is_active in enumerate(active):
            if is_active:
                out[row] = torch.multinomial(probs[row], num_samples=1, generator=self.generators[row]).squeeze(-1)
        return out

    def renoise(self, active: list[bool], canvas_index, step_index) -> torch.Tensor:
        out = torch.zeros(len(active), self.canvas_length, dtype=torch.long, device=self.device)
        for row, is_active in enumerate(active):
            if is_active:
                out[row] = self._uniform_tokens(row)[0]
        return out

    def reseed(self, row: int, seed: int) -> None:
        """A new request takes over `row` (continuous batching)."""
        self.generators[row] = torch.Generator(device=self.device).manual_seed(seed)

    def _uniform_tokens(self, row: int) -> torch.Tensor:
        # shape (1, L) as transformers' EntropyBoundSampler.initialize_canvas draws it at batch size 1
        return torch.randint(
            0, self.vocab_size, (1, self.canvas_length), generator=self.generators[row], device=self.device
        )


class CounterNoise:
    def __init__(self, seeds: list[int], vocab_size: int, canvas_length: int, device: torch.device):
        self.seeds = torch.tensor(seeds, dtype=torch.long, device=device)
        self.positions = torch.arange(canvas_length, dtype=torch.long, device=device)
        self.vocab_size, self.device = vocab_size, device

    def canvas(self, rows: list[int], canvas_index: torch.Tensor) -> torch.Tensor:
        rows_t = torch.tensor(rows, dtype=torch.long, device=self.device)
        zeros = torch.zeros_like(rows_t)
        bits = self._bits(self.seeds[rows_t], canvas_index[rows_t], zeros, _STREAM_CANVAS)
        return bits % self.vocab_size

    def samples(self, processed: torch.Tensor, active, canvas_index: torch.Tensor, step_index: torch.Tensor):
        """One token per position from the processed (tempered) logits [B, L, V] fp32, by inverse CDF."""
        probs = torch.softmax(processed, dim=-1, dtype=torch.float32)
        return inverse_cdf(probs, self.uniforms(canvas_index, step_index))

    def uniforms(self, canvas_index: torch.Tensor, step_index: torch.Tensor) -> torch.Tensor:
        """The uniform in [0, 1) each position's draw takes this step: [B, L] fp32."""
        bits = self._bits(self.seeds, canvas_index, step_index, _STREAM_SAMPLE)
        return (bits >> 8).to(torch.float32) * 2.0**-24

    def renoise(self, active, canvas_index: torch.Tensor, step_index: torch.Tensor) -> torch.Tensor:
        return self._bits(self.seeds, canvas_index, step_index, _STREAM_RENOISE) % self.vocab_size

    def draws(self, canvas_index: torch.Tensor, step_index: torch.Tensor, kernel=None):
        """This step's (uniforms, renoising tokens); `kernel` (kernels/noise.py's `counter_draws`) computes both
        in one launch, bit for bit these methods' results."""
        if kernel is None:
            return self.uniforms(canvas_index, step_index), self.renoise(None, canvas_index, step_index)
        return kernel(self.seeds, canvas_index, step_index, self.positions.shape[0], self.vocab_size)

    def reseed(self, row: int, seed: int) -> None:
        """A new request takes over `row` (continuous batching)."""
        self.seeds[row] = seed

    def _bits(self, seeds: torch.Tensor, canvas: torch.Tensor, step: torch.Tensor, stream: int) -> torch.Tensor:
        """32 random bits per (row, position): [B, L] int64."""
        # the offset keeps an all-zero input (seed 0, canvas 0, step 0, position 0) off the mix's fixed point 0,
        # which drew the uniform 0 and with it token 0 whatever the model said
        h = _mix32((seeds & _MASK32) ^ SEED_OFFSET)
        h = _mix32(h ^ ((seeds >> 32) & _MASK32))
        h = _mix32(h ^ (canvas & _MASK32))
        h = _mix32(h ^ ((step * 4 + stream) & _MASK32))
        return _mix32(h[:, None] ^ self.positions[None, :])


Noise = ReferenceNoise | CounterNoise


def make_noise(mode: str, seeds: list[int], vocab_size: int, canvas_length: int, device: torch.device) -> Noise:
    if mode == "reference":
        return ReferenceNoise(seeds, vocab_size, canvas_length, device)
    if mode == "native":
        return CounterNoise(seeds, vocab_size, canvas_length, device)
    raise ValueError(f"rng must be one of {RNG_MODES}, got {mode!r}")


def inverse_cdf(weights: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """The first index whose cumulative weight passes u x total, per row: weights [..., V] >= 0, uniforms [...].
    right=True, so a zero weight is never drawn; past the end (rounding) the last index."""
    cdf = weights.cumsum(dim=-1)
    target = (uniforms * cdf[..., -1]).unsqueeze(-1)
    return torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_(max=weights.shape[-1] - 1)


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xorshift-multiply rounds) on int64 holding values < 2**32. The multipliers are
    below 2**31, so no product overflows int64 and the result is the same on every device."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & _MASK32
    return x ^ (x >> 16)
