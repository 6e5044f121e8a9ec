"""Random draws for the sampler: initial canvases, token samples and renoising tokens, per request.

Two sources, both seeded per request so that a request's output does not depend on what else shares its batch:

- `ReferenceNoise` ("reference"): one torch.Generator per request drawing exactly what transformers' `generate`
  draws at batch size 1, in the same order and shapes (randint for the canvas; then per step a multinomial
  over [L, V] and a randint for renoising). With CPU float32 logits this reproduces transformers' token ids.
- `CounterNoise` ("native"): stateless counter-based numbers, a hash of (seed, canvas, step, stream, position).
  No generator state and no host round trip, so a whole step can be captured in a CUDA graph. A token is
  drawn by the Gumbel-max rule, argmax over the vocabulary of (processed logit + Gumbel noise), with one
  hashed uniform per (position, token): an exact draw from the softmax that needs no normalised
  probabilities and no cumulative sum, so the fused sampling head (kernels/head.py) draws the very same
  token while streaming over vocabulary tiles.
"""

from __future__ import annotations

import torch

RNG_MODES = ("native", "reference")
_MASK32 = 0xFFFFFFFF
_STREAM_SAMPLE, _STREAM_RENOISE, _STREAM_CANVAS = 0, 1, 2
_SAMPLE_CHUNK = 32768


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
        """One token per position from the processed (tempered) logits [B, L, V] fp32, by Gumbel-max."""
        keys = self.sample_keys(canvas_index, step_index)  # [B, L]
        best = torch.full(keys.shape, -torch.inf, device=processed.device)
        tokens = torch.zeros(keys.shape, dtype=torch.long, device=processed.device)
        # In vocabulary chunks: [B, L, chunk] int64 hashes rather than [B, L, V] ones (2 GB at batch 4)
        for start in range(0, self.vocab_size, _SAMPLE_CHUNK):
            vocab = torch.arange(start, min(start + _SAMPLE_CHUNK, self.vocab_size), device=processed.device)
            scores = processed[..., start : start + vocab.numel()] + gumbel(keys[..., None], vocab)
            chunk_best, chunk_token = scores.max(dim=-1)
            better = chunk_best > best  # strictly: ties keep the lower token id, as the kernel does
            best = torch.where(better, chunk_best, best)
            tokens = torch.where(better, chunk_token + start, tokens)
        return tokens

    def sample_keys(self, canvas_index: torch.Tensor, step_index: torch.Tensor) -> torch.Tensor:
        """The per-(row, position) keys the token draws of this step hash with each token id: [B, L] int64."""
        return self._bits(self.seeds, canvas_index, step_index, _STREAM_SAMPLE)

    def renoise(self, active, canvas_index: torch.Tensor, step_index: torch.Tensor) -> torch.Tensor:
        return self._bits(self.seeds, canvas_index, step_index, _STREAM_RENOISE) % self.vocab_size

    def reseed(self, row: int, seed: int) -> None:
        """A new request takes over `row` (continuous batching)."""
        self.seeds[row] = seed

    def _bits(self, seeds: torch.Tensor, canvas: torch.Tensor, step: torch.Tensor, stream: int) -> torch.Tensor:
        """32 random bits per (row, position): [B, L] int64."""
        h = _mix32(seeds & _MASK32)
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


def gumbel(keys: torch.Tensor, vocab: torch.Tensor) -> torch.Tensor:
    """Gumbel noise -log(-log(u)) fp32 for each key (int64 < 2**32) and token id, broadcast together.

    u = (24 hashed bits + 0.5) / 2**24 lies strictly inside (0, 1), so the noise is finite (|g| < 17.4); 24
    bits because float32 holds them exactly. kernels/head.py computes the same numbers in the same order."""
    bits = _mix32(keys ^ vocab)
    uniform = ((bits >> 8).to(torch.float32) + 0.5) * 2.0**-24
    return -torch.log(-torch.log(uniform))


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xorshift-multiply rounds) on int64 holding values < 2**32. The multipliers are
    below 2**31, so no product overflows int64 and the result is the same on every device."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & _MASK32
    return x ^ (x >> 16)
