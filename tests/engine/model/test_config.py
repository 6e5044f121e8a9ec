"""ModelArgs and GenerationArgs: presets, validation messages, and reading Hugging Face config files."""

from __future__ import annotations

import dataclasses

import pytest

from engine.model.config import FULL, MODEL_PRESETS, SLIDING, ConfigError, GenerationArgs, ModelArgs


def test_real_shapes_preset_is_diffusiongemma_26b_a4b():
    args = MODEL_PRESETS["diffusiongemma-26b-a4b"]
    assert (args.hidden_size, args.num_layers, args.vocab_size, args.canvas_length) == (2816, 30, 262_144, 256)
    assert [i for i in range(30) if args.is_global(i)] == [5, 11, 17, 23, 29]
    assert (args.layer_kv_heads(0), args.layer_head_dim(0)) == (8, 256)
    assert (args.layer_kv_heads(5), args.layer_head_dim(5)) == (2, 512)
    assert (args.num_experts, args.num_experts_per_token) == (128, 8)
    assert (args.moe_intermediate_size, args.intermediate_size) == (704, 2112)
    assert (args.sliding_window, args.global_partial_rotary_factor, args.final_logit_softcap) == (1024, 0.25, 30.0)


def test_hf_config_round_trip_gives_the_same_args():
    for args in MODEL_PRESETS.values():
        config = {"text_config": args.to_hf_text_config(), "canvas_length": args.canvas_length}
        assert ModelArgs.from_hf_config(config) == args


def test_hf_config_defaults_are_transformers_defaults():
    text = MODEL_PRESETS["tiny"].to_hf_text_config()
    for key in ("layer_types", "rope_parameters", "sliding_window"):
        del text[key]
    args = ModelArgs.from_hf_config({"text_config": text})
    assert args.canvas_length == 256 and args.sliding_window == 512
    assert args.layer_types == (SLIDING, SLIDING, SLIDING, FULL)  # 5:1 pattern, last layer forced global
    assert (args.global_rope_type, args.global_rope_theta, args.rope_theta) == ("proportional", 1e6, 1e4)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"use_bidirectional_attention": "all"}, "use_bidirectional_attention='all' is not supported"),
        ({"attention_bias": True}, "attention_bias=true is not supported"),
        ({"num_experts": None}, "text_config.num_experts is required"),
        ({"hidden_activation": "relu"}, "hidden_activation must be one of"),
    ],
)
def test_unsupported_hf_configs_name_the_field(change, message):
    text = {**MODEL_PRESETS["tiny"].to_hf_text_config(), **change}
    with pytest.raises(ConfigError, match=f"my/config.json: .*{message}"):
        ModelArgs.from_hf_config({"text_config": text}, source="my/config.json")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_layers": 0}, "ModelArgs.num_layers must be a positive integer, got 0"),
        ({"layer_types": ("sliding_attention",) * 3}, "layer_types has 3 entries but num_layers is 4"),
        ({"layer_types": ("sliding_attention",) * 3 + ("global",)}, r"layer_types\[3\] must be one of"),
        ({"num_kv_heads": 3}, r"num_heads \(4\) must be a multiple of num_kv_heads \(3\)"),
        ({"num_experts_per_token": 9}, r"num_experts_per_token \(9\) exceeds num_experts \(8\)"),
        ({"global_rope_type": "yarn"}, "global_rope_type must be one of"),
        ({"canvas_length": 4096}, r"canvas_length \(4096\) exceeds max_context \(2048\)"),
    ],
)
def test_model_args_validation_names_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(MODEL_PRESETS["tiny"], **change)


def test_generation_args_from_generation_config_json():
    published = {
        "max_new_tokens": 256, "max_denoising_steps": 48, "t_min": 0.4, "t_max": 0.8,
        "sampler_config": {"entropy_bound": 0.1, "_cls_name": "EntropyBoundSamplerConfig"},
        "stability_threshold": 1, "confidence_threshold": 0.005, "eos_token_id": [1, 106, 50], "pad_token_id": 0,
        "bos_token_id": 2,
    }
    assert GenerationArgs.from_hf_dict(published) == GenerationArgs()
    # nulls (what save_pretrained writes for a bare model) take transformers' defaults; eos comes from config.json
    nulls = dict.fromkeys(("max_new_tokens", "max_denoising_steps", "t_min", "t_max", "sampler_config",
                           "stability_threshold", "confidence_threshold"))
    model_config = {"text_config": {"eos_token_id": 1, "pad_token_id": 0, "bos_token_id": 2}}
    args = GenerationArgs.from_hf_dict(nulls, model_config)
    assert args == GenerationArgs(eos_token_ids=(1,))
    assert GenerationArgs.from_hf_dict(GenerationArgs(max_new_tokens=64).to_hf_dict()).max_new_tokens == 64


@pytest.mark.parametrize(
    "change, message",
    [
        ({"max_denoising_steps": 0}, "max_denoising_steps must be a positive integer"),
        ({"t_min": 0.9}, "0 <= t_min < t_max"),
        ({"entropy_bound": 0.0}, "entropy_bound must be > 0"),
        ({"stability_threshold": -1}, "stability_threshold must be an integer >= 0"),
    ],
)
def test_generation_args_validation_names_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        GenerationArgs().replace(**change)
