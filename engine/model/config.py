"""Model shapes (`ModelArgs`) and sampler defaults (`GenerationArgs`) for the DiffusionGemma text path."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

SLIDING = "sliding_attention"
FULL = "full_attention"
LAYER_TYPES = (SLIDING, FULL)
GLOBAL_ROPE_TYPES = ("proportional", "default")
ACTIVATIONS = ("gelu_pytorch_tanh",)


class ConfigError(ValueError):
    """A config file or preset is malformed; the message names the file or field."""


@dataclass(frozen=True)
class ModelArgs:
    """Shapes of the text model. Defaults are google/diffusiongemma-26B-A4B-it's."""

    vocab_size: int = 262_144
    hidden_size: int = 2816
    num_layers: int = 30
    num_heads: int = 16
    # sliding-window layers
    num_kv_heads: int = 8
    head_dim: int = 256
    sliding_window: int = 1024
    rope_theta: float = 10_000.0
    # full-attention ("global") layers: K = V from k_proj, partial rotary
    num_global_kv_heads: int = 2
    global_head_dim: int = 512
    global_rope_theta: float = 1_000_000.0
    global_rope_type: str = "proportional"
    global_partial_rotary_factor: float = 0.25
    # feed-forward: dense gated MLP and MoE branch in parallel
    intermediate_size: int = 2112
    num_experts: int = 128
    num_experts_per_token: int = 8
    moe_intermediate_size: int = 704
    layer_types: tuple[str, ...] = tuple(FULL if (i + 1) % 6 == 0 else SLIDING for i in range(30))
    rms_norm_eps: float = 1e-6
    final_logit_softcap: float | None = 30.0
    hidden_activation: str = "gelu_pytorch_tanh"
    canvas_length: int = 256
    max_context: int = 262_144
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        positive = (
            "vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "sliding_window",
            "num_global_kv_heads", "global_head_dim", "intermediate_size", "num_experts", "num_experts_per_token",
            "moe_intermediate_size", "canvas_length", "max_context",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ModelArgs.{name} must be a positive integer, got {value!r}")
        if len(self.layer_types) != self.num_layers:
            raise ValueError(
                f"ModelArgs.layer_types has {len(self.layer_types)} entries but num_layers is {self.num_layers}"
            )
        for i, kind in enumerate(self.layer_types):
            if kind not in LAYER_TYPES:
                raise ValueError(f"ModelArgs.layer_types[{i}] must be one of {LAYER_TYPES}, got {kind!r}")
        for name, kv_heads in (("num_kv_heads", self.num_kv_heads), ("num_global_kv_heads", self.num_global_kv_heads)):
            if self.num_heads % kv_heads:
                raise ValueError(f"ModelArgs.num_heads ({self.num_heads}) must be a multiple of {name} ({kv_heads})")
        if self.num_experts_per_token > self.num_experts:
            raise ValueError(
                f"ModelArgs.num_experts_per_token ({self.num_experts_per_token}) exceeds num_experts "
                f"({self.num_experts})"
            )
        if self.global_rope_type not in GLOBAL_ROPE_TYPES:
            raise ValueError(
                f"ModelArgs.global_rope_type must be one of {GLOBAL_ROPE_TYPES}, got {self.global_rope_type!r}"
            )
        if not 0.0 < self.global_partial_rotary_factor <= 1.0:
            raise ValueError(
                f"ModelArgs.global_partial_rotary_factor must be in (0, 1], got {self.global_partial_rotary_factor}"
            )
        if self.global_rope_type == "default" and self.global_partial_rotary_factor != 1.0:
            raise ValueError("ModelArgs.global_partial_rotary_factor must be 1.0 with global_rope_type 'default'")
        if self.hidden_activation not in ACTIVATIONS:
            raise ValueError(
                f"ModelArgs.hidden_activation must be one of {ACTIVATIONS}, got {self.hidden_activation!r}"
            )
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"ModelArgs.pad_token_id must be in [0, vocab_size), got {self.pad_token_id}")
        if self.canvas_length > self.max_context:
            raise ValueError(f"ModelArgs.canvas_length ({self.canvas_length}) exceeds max_context ({self.max_context})")

    def is_global(self, layer: int) -> bool:
        return self.layer_types[layer] == FULL

    def layer_kv_heads(self, layer: int) -> int:
        return self.num_global_kv_heads if self.is_global(layer) else self.num_kv_heads

    def layer_head_dim(self, layer: int) -> int:
        return self.global_head_dim if self.is_global(layer) else self.head_dim

    @classmethod
    def from_hf_config(cls, config: dict[str, Any], source: str = "config.json") -> ModelArgs:
        """From a checkpoint's config.json (outer DiffusionGemmaConfig dict or its text_config).

        transformers resolves the defaults (layer pattern, rope parameters, per-layer head dims), so the native
        model sees exactly the shapes the reference model is built with.
        """
        from transformers import DiffusionGemmaConfig, DiffusionGemmaTextConfig

        outer = config if "text_config" in config else {"text_config": config}
        text_dict = dict(outer.get("text_config") or {})
        if text_dict.get("use_bidirectional_attention") == "all":
            raise ConfigError(f"{source}: text_config.use_bidirectional_attention='all' is not supported")
        if text_dict.get("attention_bias"):
            raise ConfigError(f"{source}: text_config.attention_bias=true is not supported")
        try:
            text = DiffusionGemmaTextConfig(**{k: v for k, v in text_dict.items() if k != "model_type"})
            canvas_length = outer.get("canvas_length", DiffusionGemmaConfig.canvas_length)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{source}: invalid text_config: {error}") from error
        for name in ("num_experts", "top_k_experts", "moe_intermediate_size"):
            if getattr(text, name) is None:
                raise ConfigError(f"{source}: text_config.{name} is required (every layer has the MoE branch)")
        # head dims and kv heads are per-layer attributes in transformers: read them from one layer of each kind
        local_layer = _layer_config(text, SLIDING, text_dict)
        global_layer = _layer_config(text, FULL, text_dict)
        rope = text.rope_parameters
        local_rope, global_rope = rope.get(SLIDING, {}), rope.get(FULL, {})
        if local_rope.get("rope_type", "default") != "default" or local_rope.get("partial_rotary_factor", 1.0) != 1.0:
            raise ConfigError(f"{source}: sliding layers support default full-width RoPE only, got {local_rope}")
        if global_rope.get("factor", 1.0) != 1.0:
            raise ConfigError(f"{source}: RoPE scaling factor on full-attention layers is not supported")
        try:
            return cls(
                vocab_size=text.vocab_size,
                hidden_size=text.hidden_size,
                num_layers=text.num_hidden_layers,
                num_heads=text.num_attention_heads,
                num_kv_heads=local_layer.num_key_value_heads,
                head_dim=local_layer.head_dim,
                sliding_window=text.sliding_window,
                rope_theta=float(local_rope.get("rope_theta", 10_000.0)),
                num_global_kv_heads=global_layer.num_key_value_heads,
                global_head_dim=global_layer.head_dim,
                global_rope_theta=float(global_rope.get("rope_theta", 1_000_000.0)),
                global_rope_type=global_rope.get("rope_type", "default"),
                global_partial_rotary_factor=float(global_rope.get("partial_rotary_factor", 1.0)),
                intermediate_size=text.intermediate_size,
                num_experts=text.num_experts,
                num_experts_per_token=text.top_k_experts,
                moe_intermediate_size=text.moe_intermediate_size,
                layer_types=tuple(text.layer_types),
                rms_norm_eps=text.rms_norm_eps,
                final_logit_softcap=getattr(text, "final_logit_softcapping", 30.0),
                hidden_activation=text.hidden_activation,
                canvas_length=canvas_length,
                max_context=text.max_position_embeddings,
                pad_token_id=text.pad_token_id if text.pad_token_id is not None else 0,
            )
        except ValueError as error:
            raise ConfigError(f"{source}: {error}") from error

    def to_hf_text_config(self) -> dict[str, Any]:
        """The transformers text_config dict that builds the same shapes (used for the random-weight presets)."""
        global_rope = {"rope_type": self.global_rope_type, "rope_theta": self.global_rope_theta}
        if self.global_rope_type == "proportional" or self.global_partial_rotary_factor != 1.0:
            global_rope["partial_rotary_factor"] = self.global_partial_rotary_factor
        return {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "global_head_dim": self.global_head_dim,
            "num_global_key_value_heads": self.num_global_kv_heads,
            "sliding_window": self.sliding_window,
            "layer_types": list(self.layer_types),
            "rope_parameters": {
                SLIDING: {"rope_type": "default", "rope_theta": self.rope_theta},
                FULL: global_rope,
            },
            "num_experts": self.num_experts,
            "top_k_experts": self.num_experts_per_token,
            "moe_intermediate_size": self.moe_intermediate_size,
            "rms_norm_eps": self.rms_norm_eps,
            "hidden_activation": self.hidden_activation,
            "max_position_embeddings": self.max_context,
            "pad_token_id": self.pad_token_id,
        }


def _layer_config(text: Any, kind: str, text_dict: dict[str, Any]) -> Any:
    """The resolved config of the first layer of a kind (shapes of a kind the model lacks do not matter)."""
    for i, layer_kind in enumerate(text.layer_types):
        if layer_kind == kind:
            return text.per_layer_config[i]
    return SimpleNamespace(
        head_dim=text_dict.get("head_dim", 256), num_key_value_heads=text_dict.get("num_key_value_heads", 1)
    )


def _tiny_layer_types() -> tuple[str, ...]:
    return (SLIDING, FULL, SLIDING, FULL)


MODEL_PRESETS: dict[str, ModelArgs] = {
    "diffusiongemma-26b-a4b": ModelArgs(),
    # A few layers with both attention kinds (the global ones keep the K=V, partial-rotary, wider-head layout),
    # a handful of experts and a vocabulary just large enough for the byte tokenizer: tests and CPU use.
    "tiny": ModelArgs(
        vocab_size=320,
        hidden_size=64,
        num_layers=4,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        sliding_window=24,
        num_global_kv_heads=1,
        global_head_dim=32,
        intermediate_size=96,
        num_experts=8,
        num_experts_per_token=2,
        moe_intermediate_size=32,
        layer_types=_tiny_layer_types(),
        canvas_length=32,
        max_context=2048,
    ),
}


# Weight formats of --quantize (engine/weights/quantize.py): bf16 as loaded, FP8 per row, bitsandbytes' NF4 per 64 weights.
QUANTIZE_FORMATS = ("none", "fp8", "nf4")
# --kernels: the Triton kernels of kernels/ in the hot paths (engine/runtime/ops.py), CUDA only.
KERNEL_MODES = ("off", "on")


def check_choice(name: str, value: str, allowed: tuple[str, ...], hint: str = "") -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}{hint}")
    return value


def check_engine_options(device: str | None, dtype: str | None, quantize: str, kernels: str) -> None:
    """The options EngineConfig and WorkerConfig share (torch-free, so the worker's flags check early)."""
    if device not in (None, "cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, not {device!r}")
    if dtype not in (None, "float32", "bfloat16"):
        raise ValueError(f"dtype must be float32 or bfloat16, not {dtype!r}")
    check_choice("kernels", kernels, KERNEL_MODES)
    check_choice("quantize", quantize, QUANTIZE_FORMATS)

# The model used when none is configured, on CPU and GPU alike: the shipped trained one (engine/models/).
DEFAULT_MODEL = "redraft-small"

# Shapes trained from scratch by `redraft train --corpus ...` (weights: engine/models/<name>/, found by
# engine.weights.checkpoint.load_model under the same name). Every DiffusionGemma part at a size two CPU cores train in
# about an hour: both attention kinds (K=V, partial rotary and wider heads on the full layers), the dense MLP
# and a 4-expert top-2 MoE branch in every layer, self-conditioning. The canvas holds a normal paragraph (128
# tokens of an 8,192-token English vocabulary, ~95 words), so a paragraph is one canvas and its live preview
# shows all of it. `redraft-small-wide` is the larger shape measured against it (README, "The small model").
_SMALL = ModelArgs(
    vocab_size=8192,
    hidden_size=128,
    num_layers=4,
    num_heads=4,
    num_kv_heads=2,
    head_dim=32,
    sliding_window=128,
    num_global_kv_heads=1,
    global_head_dim=64,
    intermediate_size=256,
    num_experts=4,
    num_experts_per_token=2,
    moe_intermediate_size=128,
    layer_types=_tiny_layer_types(),
    canvas_length=128,
    max_context=1024,
)
TRAINABLE_CONFIGS: dict[str, ModelArgs] = {
    "redraft-small": _SMALL,
    "redraft-small-wide": replace(
        _SMALL,
        hidden_size=192,
        num_layers=6,
        num_heads=6,
        intermediate_size=384,
        moe_intermediate_size=192,
        layer_types=(SLIDING, FULL) * 3,
    ),
}


@dataclass(frozen=True)
class GenerationArgs:
    """Sampler settings; defaults are transformers' and the checkpoint's generation_config.json."""

    max_new_tokens: int = 256
    max_denoising_steps: int = 48
    entropy_bound: float = 0.1
    t_min: float = 0.4
    t_max: float = 0.8
    stability_threshold: int = 1
    confidence_threshold: float = 0.005
    eos_token_ids: tuple[int, ...] = (1, 106, 50)
    pad_token_id: int | None = 0
    bos_token_id: int | None = 2
    # A passage-started canvas (jobs/tasks.py) commits a change to the passage only where the model's last step
    # was this sure (entropy in nats at most this); elsewhere the passage's token stays. None: the argmax as is.
    # Redraft's own: a checkpoint declares it in config.json's "redraft" block (transformers' generation config
    # refuses keys it does not know), and the loader sets it here.
    edit_entropy_bound: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_denoising_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GenerationArgs.{name} must be a positive integer, got {value!r}")
        if not self.entropy_bound > 0:
            raise ValueError(f"GenerationArgs.entropy_bound must be > 0, got {self.entropy_bound}")
        if not 0 <= self.t_min < self.t_max:
            raise ValueError(f"GenerationArgs needs 0 <= t_min < t_max, got t_min={self.t_min} t_max={self.t_max}")
        if not isinstance(self.stability_threshold, int) or self.stability_threshold < 0:
            raise ValueError(
                f"GenerationArgs.stability_threshold must be an integer >= 0, got {self.stability_threshold}"
            )
        if not self.confidence_threshold > 0:
            raise ValueError(f"GenerationArgs.confidence_threshold must be > 0, got {self.confidence_threshold}")
        if self.edit_entropy_bound is not None and not self.edit_entropy_bound >= 0:
            raise ValueError(f"GenerationArgs.edit_entropy_bound must be >= 0, got {self.edit_entropy_bound}")

    def replace(self, **changes: Any) -> GenerationArgs:
        """A copy with the given fields changed; None values keep the current one (handy for CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_hf_dict(cls, config: dict[str, Any], model_config: dict[str, Any] | None = None) -> GenerationArgs:
        """From generation_config.json; null or absent fields take transformers' defaults (eos/pad/bos: config.json)."""
        text = (model_config or {}).get("text_config", model_config or {})
        sampler = config.get("sampler_config") or {}
        picks = {
            "max_new_tokens": config.get("max_new_tokens"),
            "max_denoising_steps": config.get("max_denoising_steps"),
            "entropy_bound": sampler.get("entropy_bound"),
            "t_min": config.get("t_min"),
            "t_max": config.get("t_max"),
            "stability_threshold": config.get("stability_threshold"),
            "confidence_threshold": config.get("confidence_threshold"),
        }
        args = cls().replace(**picks)
        eos = config.get("eos_token_id", text.get("eos_token_id"))
        eos_ids = () if eos is None else tuple(eos) if isinstance(eos, list) else (int(eos),)
        return dataclasses.replace(
            args,
            eos_token_ids=eos_ids,
            pad_token_id=config.get("pad_token_id", text.get("pad_token_id")),
            bos_token_id=config.get("bos_token_id", text.get("bos_token_id")),
        )

    def to_hf_dict(self) -> dict[str, Any]:
        """The generation_config.json that makes transformers' generate use these settings."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "max_denoising_steps": self.max_denoising_steps,
            "sampler_config": {"entropy_bound": self.entropy_bound, "_cls_name": "EntropyBoundSamplerConfig"},
            "t_min": self.t_min,
            "t_max": self.t_max,
            "stability_threshold": self.stability_threshold,
            "confidence_threshold": self.confidence_threshold,
            "eos_token_id": list(self.eos_token_ids),
            "pad_token_id": self.pad_token_id,
            "bos_token_id": self.bos_token_id,
        }


def read_json(path: Path) -> dict[str, Any]:
    """Reads a JSON object, naming the file in any error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: file not found") from error
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: invalid JSON ({error})") from error
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value
