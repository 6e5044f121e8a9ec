"""The entropy-bound sampler as tiny pure functions over batched tensors, op for op transformers' own.

Every function takes per-row state ([B] tensors for the step, the step budget and the flags), so rows of a
batch may be at different steps of different canvases. Nothing here syncs with the host.
"""

from __future__ import annotations

import torch


def temperature(cur_step: torch.Tensor, num_steps: torch.Tensor, t_min: float, t_max: float) -> torch.Tensor:
    """Linear schedule [B] fp32; cur_step counts the steps *remaining*, N..1, as in transformers.

    Same ops and dtypes as LinearTemperatureScheduleLogitsProcessor: an int32 tensor divided by the budget
    gives fp32, so the temperatures match it bit for bit.
    """
    return t_min + ((t_max - t_min) * (cur_step.to(torch.int32) / num_steps.to(torch.int32)))


def apply_temperature(logits: torch.Tensor, temp: torch.Tensor) -> torch.Tensor:
    """logits [B, L, V] / temp [B] -> processed logits."""
    return logits / temp[:, None, None]


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each position's softmax, [B, L]: torch.distributions.Categorical(logits=...).entropy()."""
    normalized = logits - logits.logsumexp(dim=-1, keepdim=True)
    probs = torch.softmax(normalized, dim=-1)
    clamped = torch.clamp(normalized, min=torch.finfo(normalized.dtype).min)
    return -(clamped * probs).sum(-1)


def accept_mask(entropy: torch.Tensor, entropy_bound: float) -> torch.Tensor:
    """Accept the lowest-entropy positions while the cumulative entropy *before* each stays <= the bound.

    [B, L] bool; the lowest-entropy position is always accepted (its preceding sum is 0).
    """
    sorted_entropy, order = torch.sort(entropy, dim=-1, descending=False)
    selected = torch.cumsum(sorted_entropy, dim=-1) - sorted_entropy <= entropy_bound
    return torch.scatter(input=torch.zeros_like(selected), dim=-1, index=order, src=selected)


def next_canvas(
    canvas: torch.Tensor, samples: torch.Tensor, accepted: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """Accepted positions take the samples, all others fresh uniform noise: nothing is frozen, so the model
    can still correct any position. [B, L]"""
    accepted_canvas = torch.where(accepted, samples, canvas)
    return torch.where(~accepted, noise, accepted_canvas)


def stop_test(
    history: torch.Tensor, argmax: torch.Tensor, entropy: torch.Tensor, confidence_threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """StableAndConfidentStoppingCriteria: stop [B] when the argmax canvas equals each of the last k
    (history [k, B, L], -1 filled at a canvas start) and the mean entropy is under the threshold.

    Returns (stop [B] bool, the updated history).
    """
    if history.shape[0] == 0:  # stability_threshold 0: confidence alone
        stable = torch.ones(argmax.shape[0], dtype=torch.bool, device=argmax.device)
    else:
        stable = (history == argmax[None]).all(dim=-1).all(dim=0)
        history = torch.cat((history[1:], argmax[None]), dim=0)
    confident = entropy.mean(dim=-1) < confidence_threshold
    return stable & confident, history


def pad_after_eos(tokens: torch.Tensor, eos_ids: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every token after a row's first EOS becomes pad (the EOS itself stays). Returns (tokens, has_eos [B])."""
    is_eos = torch.isin(tokens, eos_ids)
    seen = is_eos.cumsum(dim=-1)
    after_first = (seen > 0) & ~((seen == 1) & is_eos)
    return torch.where(after_first, torch.full_like(tokens, pad_id), tokens), is_eos.any(dim=-1)
