"""Model assembly: DiffusionGemma's text path as one weight stack run two ways.

`encode` is the causal encoder: it writes the prompt (or a finished canvas) into the KV cache.
`decode` is the bidirectional denoiser: it reads the cache, never writes it, and returns soft-capped fp32
logits for a batch of canvases. Both use the same layers; only the per-layer scalar differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.model.cache import AttentionMask, KVCache, cached_rows, decoder_masks, encoder_masks
from engine.model.config import FULL, SLIDING, ModelArgs
from engine.model.functional import rope_inv_freq
from engine.model.layers import Experts, GatedMLP, RMSNorm, Router
from engine.model.ops import REFERENCE_OPS, Ops, scaled_attention


class Attention(nn.Module):
    """q/k RMSNorm, RoPE, attention scale 1.0. Global layers have no v_proj: V is the raw k_proj output
    through a scale-free norm, K the same output through k_norm and RoPE."""

    qkv_proj = None  # engine/model/fused.py: q_proj, k_proj and v_proj as one projection

    def __init__(self, args: ModelArgs, layer: int):
        super().__init__()
        self.num_heads = args.num_heads
        self.num_kv_heads = args.layer_kv_heads(layer)
        self.head_dim = args.layer_head_dim(layer)
        self.sliding_window = None if args.is_global(layer) else args.sliding_window
        dim, eps = args.hidden_size, args.rms_norm_eps
        self.q_proj = nn.Linear(dim, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, self.num_kv_heads * self.head_dim, bias=False)
        self.v_proj = None if args.is_global(layer) else nn.Linear(dim, self.num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, dim, bias=False)
        self.q_norm = RMSNorm(self.head_dim, eps)
        self.k_norm = RMSNorm(self.head_dim, eps)
        self.v_norm = RMSNorm(self.head_dim, eps, with_scale=False)
        self.ops = REFERENCE_OPS  # the model's table (DiffusionGemma.use_ops)

    def query(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        q = self.q_proj(x).unflatten(-1, (self.num_heads, self.head_dim))  # [B, T, H, Dh]
        return self.normed_rope(q, self.q_norm, cos, sin)

    def key_value(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.num_kv_heads, self.head_dim)
        k = self.k_proj(x).unflatten(-1, shape)  # [B, T, Hkv, Dh]
        v = k if self.v_proj is None else self.v_proj(x).unflatten(-1, shape)
        return self.normed_rope(k, self.k_norm, cos, sin), self.v_norm(v)

    def query_key_value(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q [B, T, H, Dh] and k, v [B, T, Hkv, Dh] of normed x: with the kernels, one GEMM and one launch for
        the norms and rotations."""
        if self.ops.qkv is not None and self.qkv_proj is not None:
            return self.ops.qkv(self.qkv_proj(x), self.q_norm.weight, self.k_norm.weight, self.q_norm.eps, cos, sin,
                                  self.num_heads, self.num_kv_heads, self.head_dim)
        return self.query(x, cos, sin), *self.key_value(x, cos, sin)

    def normed_rope(self, x: torch.Tensor, norm: RMSNorm, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        return self.ops.norm_rope(x, norm.weight, norm.eps, cos, sin)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """q [B, T, H, Dh], k/v [B, S, Hkv, Dh], mask [B, 1, T or 1, S] bool -> [B, T, D]."""
        return self.o_proj(scaled_attention(q, k, v, mask).flatten(2))

    def decoder_attention(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache, layer: int,
        rows: torch.Tensor | None, mask: AttentionMask, kv_len: int,
    ) -> torch.Tensor:
        """The decoder's attention sublayer on normed x [B, L, D]: the canvas over cache layer `layer`'s slots
        [mask.start, kv_len) of `rows` (all when None) and over itself -> [B, L, D]. The cache is only read.

        With the kernel the slots are read in place and masked from cache.lengths; the reference
        concatenates the cached prefix and the canvas (a copy per layer and step) under mask.mask."""
        q, k, v = self.query_key_value(x, cos, sin)
        out = self.ops.attention(q, k, v, cache.keys[layer], cache.values[layer], cache.lengths, rows, mask, kv_len,
                                 self.sliding_window)  # [B, L, H, Dh]
        return self.o_proj(out.flatten(2))


class Block(nn.Module):
    """Attention, then a dense gated MLP and an MoE branch in parallel, each post-normed; x layer scalar."""

    def __init__(self, args: ModelArgs, layer: int):
        super().__init__()
        dim, eps = args.hidden_size, args.rms_norm_eps
        self.layer_type = args.layer_types[layer]
        self.self_attn = Attention(args, layer)
        self.mlp = GatedMLP(dim, args.intermediate_size)
        self.router = Router(dim, args.num_experts, args.num_experts_per_token, eps)
        self.experts = Experts(args.num_experts, dim, args.moe_intermediate_size)
        self.input_layernorm = RMSNorm(dim, eps)
        self.post_attention_layernorm = RMSNorm(dim, eps)
        self.pre_feedforward_layernorm = RMSNorm(dim, eps)  # dense MLP input
        self.post_feedforward_layernorm_1 = RMSNorm(dim, eps)  # dense MLP output
        self.pre_feedforward_layernorm_2 = RMSNorm(dim, eps)  # experts input
        self.post_feedforward_layernorm_2 = RMSNorm(dim, eps)  # experts output
        self.post_feedforward_layernorm = RMSNorm(dim, eps)  # their sum
        # The only weights the encoder and decoder do not share.
        self.encoder_scalar = nn.Buffer(torch.ones(1))
        self.decoder_scalar = nn.Buffer(torch.ones(1))
        self.ops = REFERENCE_OPS  # the model's table (DiffusionGemma.use_ops)

    def branches(self, x: torch.Tensor, dense_in: torch.Tensor, experts_in: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The dense MLP's and the experts' outputs before their post-norms: the router reads the residual x,
        the branches their own norms of it."""
        dense = self.mlp(dense_in)
        tokens = x.reshape(-1, x.shape[-1])  # [B*T, D]
        weights, experts = self.router(tokens)
        moe = self.experts(experts_in.reshape(tokens.shape), weights, experts).reshape(x.shape)
        return dense, moe

    def finish(self, x: torch.Tensor, attn_out: torch.Tensor, scalar: torch.Tensor,
               next_norm: RMSNorm) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's output h on the residual x and its attention's output, and next_norm(h): the next
        layer's input norm, or the final norm after the last layer (with the kernels, in the same launch).
        Every norm of the model shares one eps (ModelArgs.rms_norm_eps)."""
        norms = (self.post_attention_layernorm, self.pre_feedforward_layernorm, self.pre_feedforward_layernorm_2)
        # the sum and the three norms (one launch with the kernels)
        x, dense_in, experts_in = self.ops.attn_residual(x, attn_out, *(norm.weight for norm in norms), norms[0].eps)
        dense, moe = self.branches(x, dense_in, experts_in)
        norms = (self.post_feedforward_layernorm_1, self.post_feedforward_layernorm_2, self.post_feedforward_layernorm)
        # the four norms, the sums and the scalar (one launch with the kernels)
        return self.ops.ffn_out(x, dense, moe, *(norm.weight for norm in norms), norms[0].eps, scalar,
                                next_norm.weight)


class SelfConditioning(GatedMLP):
    """pre-norm -> gated MLP on the previous step's soft embeddings, added to the token embeddings -> post-norm."""

    def __init__(self, args: ModelArgs):
        super().__init__(args.hidden_size, args.intermediate_size)
        self.pre_norm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.post_norm = RMSNorm(args.hidden_size, args.rms_norm_eps, with_scale=False)

    def forward(self, embeds: torch.Tensor, soft_embeds: torch.Tensor) -> torch.Tensor:
        return self.post_norm(embeds + super().forward(self.pre_norm(soft_embeds)))


class DiffusionGemma(nn.Module):
    def __init__(self, args: ModelArgs, ops: Ops = REFERENCE_OPS):
        super().__init__()
        self.args = args
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size)  # also the (tied) lm_head
        self.layers = nn.ModuleList(Block(args, i) for i in range(args.num_layers))
        self.norm = RMSNorm(args.hidden_size, args.rms_norm_eps)
        self.self_conditioning = SelfConditioning(args)
        self.embed_scale = nn.Buffer(torch.empty(()), persistent=False)
        self.local_inv_freq = nn.Buffer(torch.empty(args.head_dim // 2), persistent=False)
        self.global_inv_freq = nn.Buffer(torch.empty(args.global_head_dim // 2), persistent=False)
        self.init_buffers()
        self.use_ops(ops)

    def use_ops(self, ops: Ops) -> None:
        """Hands the table of ops (engine/model/ops.py) to the model and every layer that runs one of them, the
        stacked projections of engine/model/fused.py too (they sit outside the module tree). The sampling step
        reads the model's (engine/runtime/generate.py)."""
        self.ops = ops
        for module in self.modules():
            stacked = (module.__dict__.get("qkv_proj"), module.__dict__.get("gate_up"))
            for taker in (module, *(projection for projection in stacked if projection is not None)):
                if "ops" in taker.__dict__:
                    taker.ops = ops

    @torch.no_grad()
    def init_buffers(self, device: torch.device | str | None = None) -> None:
        """(Re)computes the derived buffers; call after building on the meta device and loading weights."""
        args = self.args
        device = device or self.embed_tokens.weight.device
        if torch.device(device).type == "meta":
            return
        # The reference keeps sqrt(hidden) as an fp32 tensor and casts it to the weight dtype at use:
        # 53.0 in bf16 for the real model, not 53.066.
        self.embed_scale = torch.tensor(args.hidden_size**0.5, dtype=torch.float32, device=device)
        self.local_inv_freq = rope_inv_freq(args.head_dim, args.rope_theta, "default", 1.0).to(device)
        self.global_inv_freq = rope_inv_freq(
            args.global_head_dim, args.global_rope_theta, args.global_rope_type, args.global_partial_rotary_factor
        ).to(device)

    def _apply(self, fn, recurse=True):
        # .to(bfloat16) would round the RoPE frequencies, which the reference keeps in fp32: recompute them
        # after any move or cast instead of letting it touch them
        super()._apply(fn, recurse)
        self.init_buffers()
        return self

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(tokens) * self.embed_scale.to(self.dtype)

    def rope(self, positions: torch.Tensor, dtype: torch.dtype) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        # both tables at once (one launch with the kernels)
        local, full = self.ops.rope(positions, self.local_inv_freq, self.global_inv_freq, dtype)
        return {SLIDING: local, FULL: full}

    def encode(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCache,
        rows: torch.Tensor | None = None,
        kv_len: int | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor | None:
        """Runs the causal encoder over tokens [B, T] at positions [B, T] and writes their K/V into cache rows
        `rows` (all rows when None) at slot == position. Returns nothing: the cache is the encoder's output.

        kv_len (static, for graph capture) bounds the slots read; default: the highest position + 1.
        return_hidden: also run the last layer and return the normed final hidden states [B, T, D] (training's
        next-token loss on the encoder; inference never needs them).
        """
        kv_len = kv_len if kv_len is not None else int(positions.max()) + 1
        masks = encoder_masks(positions, kv_len, self.args.sliding_window, int(positions[:, 0].min()))
        row_index = (torch.arange(tokens.shape[0], device=tokens.device) if rows is None else rows)[:, None]
        h = self.embed(tokens)  # [B, T, D]
        rope = self.rope(positions, h.dtype)
        last = len(self.layers) - 1
        x = self.layers[0].input_layernorm(h)  # each later layer's comes with its predecessor's output
        for i, layer in enumerate(self.layers):
            cos, sin = rope[layer.layer_type]
            # the last layer's output feeds nothing: its K/V is all the cache needs
            only_kv = i == last and not return_hidden
            q, k, v = (None, *layer.self_attn.key_value(x, cos, sin)) if only_kv else \
                layer.self_attn.query_key_value(x, cos, sin)
            cache.keys[i][row_index, positions] = k
            cache.values[i][row_index, positions] = v
            if only_kv:
                break
            mask = masks[layer.layer_type]
            keys = cached_rows(cache.keys[i], rows, mask.start, kv_len)
            values = cached_rows(cache.values[i], rows, mask.start, kv_len)
            attn_out = layer.self_attn.attend(q, keys, values, mask.mask)
            h, x = layer.finish(h, attn_out, layer.encoder_scalar, self._next_norm(i))
        return x if return_hidden else None

    def decode(
        self,
        canvas: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCache,
        self_cond_logits: torch.Tensor | None = None,
        self_cond_mask: torch.Tensor | None = None,
        rows: torch.Tensor | None = None,
        kv_len: int | None = None,
        masks: dict[str, AttentionMask] | None = None,
        self_cond_probs: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor:
        """Denoises canvas [B, L] at positions [B, L] against cache rows `rows` (all when None).

        self_cond_logits [B, L, V]: the previous step's processed logits; rows where self_cond_mask [B] is
        False (first step of a canvas) get zero self-conditioning. Returns soft-capped logits [B, L, V] fp32.
        masks: decoder_masks(...) precomputed once per canvas (they only change when the cache grows).
        self_cond_probs [B, L, V]: instead of the logits, their softmax in the model dtype, as the fused
        sampling head (kernels/head.py) leaves it. return_hidden: the final-normed hidden states [B, L, D]
        instead of the logits, for that head.
        """
        lengths = cache.lengths if rows is None else cache.lengths[rows]
        kv_len = kv_len if kv_len is not None else int(lengths.max())
        if masks is None:
            masks = decoder_masks(lengths, kv_len, canvas.shape[1], self.args.sliding_window, int(lengths.min()))
        soft = self.soft_embeddings(canvas, self_cond_logits, self_cond_mask, self_cond_probs)
        h = self.self_conditioning(self.embed(canvas), soft)
        rope = self.rope(positions, h.dtype)
        x = self.layers[0].input_layernorm(h)  # each later layer's comes with its predecessor's output
        for i, layer in enumerate(self.layers):
            cos, sin = rope[layer.layer_type]
            attn_out = layer.self_attn.decoder_attention(x, cos, sin, cache, i, rows, masks[layer.layer_type], kv_len)
            h, x = layer.finish(h, attn_out, layer.decoder_scalar, self._next_norm(i))
        return x if return_hidden else self.logits(x)  # x: the last layer's output through the final norm

    def _next_norm(self, layer: int) -> RMSNorm:
        """The norm that reads layer `layer`'s output: the next layer's input norm, after the last the final one."""
        return self.layers[layer + 1].input_layernorm if layer + 1 < len(self.layers) else self.norm

    def soft_embeddings(
        self,
        canvas: torch.Tensor,
        self_cond_logits: torch.Tensor | None,
        self_cond_mask: torch.Tensor | None,
        self_cond_probs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """softmax(previous logits) @ embedding matrix x embed scale: [B, L, D]; zeros where there is none yet.
        self_cond_probs: that softmax already taken (in the weight dtype), in place of the logits."""
        weight = self.embed_tokens.weight
        if self_cond_logits is None and self_cond_probs is None:
            return torch.zeros(*canvas.shape, weight.shape[1], dtype=weight.dtype, device=weight.device)
        # A second lm_head-sized product per step. The fused sampling head spares only the softmax's fp32
        # passes: this product is a plain GEMM, which cuBLAS runs near the tensor cores' peak.
        probs = self_cond_probs
        if probs is None:
            probs = F.softmax(self_cond_logits, dim=-1, dtype=torch.float32).to(weight.dtype)
        soft = torch.matmul(probs, weight) * self.embed_scale.to(weight.dtype)
        if self_cond_mask is not None:
            zero = torch.zeros((), dtype=soft.dtype, device=soft.device)
            soft = torch.where(self_cond_mask[:, None, None], soft, zero)
        return soft

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        logits = F.linear(h, self.embed_tokens.weight).float()
        cap = self.args.final_logit_softcap
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

