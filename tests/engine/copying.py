"""A tiny model that copies its canvas: the stand-in for a model trained to edit a passage in place.

Random weights predict noise, and `tiny._make_confident` predicts one token whatever it sees; neither can show
that a passage-started canvas comes back as the passage. This one predicts, at every canvas position, the
token it is shown there, near-certainly, for the tokens it is given (at most hidden_size of them): so a canvas
that starts from a passage is accepted as it stands and stops at its second step, while one that starts from
noise stays noise.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from engine.model.network import DiffusionGemma

LOGIT = 40.0  # the copied token's logit (26 after the soft cap of 30); every other token's is 0


@torch.no_grad()
def make_copying(model: DiffusionGemma, tokens: Iterable[int]) -> DiffusionGemma:
    """Rewrites the native model's weights in place so that it copies `tokens` and returns it.

    Each token's embedding becomes its own unit axis (every other token's is zero), so the decoder's input at a
    position is the scaled axis of the token there. The attention, the feed-forward branches and the
    self-conditioning MLP are silenced (their output norms or projection zeroed): the residual stream carries
    that axis through every layer, times the layer scalars, which the final norm undoes. The tied lm_head then
    gives the token LOGIT and every other token 0.
    """
    tokens = sorted(set(tokens))
    width = model.args.hidden_size
    if len(tokens) > width:
        raise ValueError(f"a copying model holds at most {width} tokens, not {len(tokens)}")
    embed = model.embed_tokens.weight
    embed.zero_()
    for axis, token in enumerate(tokens):
        embed[token, axis] = 1.0
    model.self_conditioning.down_proj.weight.zero_()
    for layer in model.layers:
        layer.post_attention_layernorm.weight.zero_()
        layer.post_feedforward_layernorm.weight.zero_()
    # after the final norm the axis holds sqrt(width) (a one-hot vector's RMS is 1/sqrt(width) of its entry)
    model.norm.weight.fill_(LOGIT / width**0.5)
    return model
