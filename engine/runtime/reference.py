"""The reference backend: transformers' own DiffusionGemmaForBlockDiffusion and its `generate`, for comparison.

Same sources as the native backend: a checkpoint directory through `from_pretrained`, the `tiny` preset as a
copy of the native random weights (so both backends hold the same model), and the real shapes with random
weights built without a second copy of the encoder/decoder-shared weights.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.model.config import MODEL_PRESETS, GenerationArgs, ModelArgs
from engine.text.tokenizer import load_tokenizer
from engine.weights.checkpoint import (
    LoadedModel,
    hf_name,
    load_model,
    preset_generation_args,
    read_checkpoint_config,
    resolve_checkpoint,
    shard_files,
)

# DiffusionGemmaConfig(vision_config=None) still builds the full default vision tower: pass a tiny one
TINY_VISION = {
    "model_type": "gemma4_vision",
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "head_dim": 8,
}


@dataclass
class ReferenceModel:
    model: Any  # DiffusionGemmaForBlockDiffusion
    generation: GenerationArgs
    tokenizer: Any
    source: str


def hf_config(args: ModelArgs):
    from transformers import DiffusionGemmaConfig

    return DiffusionGemmaConfig(
        text_config=args.to_hf_text_config(), vision_config=dict(TINY_VISION), canvas_length=args.canvas_length
    )


def load_reference(name_or_path: str, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> ReferenceModel:
    from transformers import DiffusionGemmaForBlockDiffusion

    if name_or_path == "tiny":
        native = load_model(name_or_path, "cpu", torch.float32, seed)
        # through a saved checkpoint and from_pretrained, so that dtype handling is transformers' own (a plain
        # .to(bfloat16) would also round the fp32 RoPE frequencies that from_pretrained keeps)
        with tempfile.TemporaryDirectory() as directory:
            reference_from_native(native).save_pretrained(directory)
            model = DiffusionGemmaForBlockDiffusion.from_pretrained(directory, dtype=dtype, local_files_only=True)
        return ReferenceModel(model.to(device).eval(), native.generation, native.tokenizer, "tiny")
    if name_or_path in MODEL_PRESETS:
        args = MODEL_PRESETS[name_or_path]
        model = random_reference_model(args, torch.device(device), dtype, seed)
        return ReferenceModel(model, preset_generation_args(name_or_path), None, name_or_path)
    directory = resolve_checkpoint(name_or_path)
    # the native loader's checks first, so that a broken directory gets the same error naming the culprit
    args, generation = read_checkpoint_config(directory)
    shard_files(directory)
    model = DiffusionGemmaForBlockDiffusion.from_pretrained(str(directory), dtype=dtype, local_files_only=True)
    return ReferenceModel(model.to(device).eval(), generation, load_tokenizer(directory), str(directory))


def reference_from_native(native: LoadedModel):
    """transformers' model holding a copy of a (small) native model's weights."""
    from transformers import DiffusionGemmaForBlockDiffusion

    model = DiffusionGemmaForBlockDiffusion(hf_config(native.args))
    weights = {hf_name(name): tensor for name, tensor in native.model.state_dict().items()}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # the encoder's copies of shared weights and lm_head are tied to the decoder's, so they load through them
    if unexpected or any(name.startswith("model.decoder") for name in missing):
        raise RuntimeError(f"weight names do not map: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()


def random_reference_model(args: ModelArgs, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """The real shapes with random weights, as transformers would run them, in one copy of the weights.

    Building the model on the GPU directly allocates the encoder's and the decoder's copies before tying them
    (~100 GB for the real shapes), and `to_empty` breaks the ties. So: build on meta, give every module that
    held a Parameter the same freshly allocated one, initialise, and set the layer scalars (left uninitialised).
    """
    from transformers import DiffusionGemmaForBlockDiffusion

    with torch.device("meta"):
        model = DiffusionGemmaForBlockDiffusion(hf_config(args))
    allocated: dict[int, nn.Parameter] = {}
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is not None:
                if id(param) not in allocated:
                    allocated[id(param)] = nn.Parameter(torch.empty(param.shape, dtype=dtype, device=device), False)
                module._parameters[name] = allocated[id(param)]
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.is_meta:
                # rotary frequencies and the embedding scale stay fp32, as transformers keeps them
                buffer_dtype = dtype if name == "layer_scalar" else buffer.dtype
                module._buffers[name] = torch.empty(buffer.shape, dtype=buffer_dtype, device=device)
    torch.manual_seed(seed)
    model.init_weights()
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("layer_scalar"):
                buffer.fill_(1.0)
    return model.eval()


class _StepCounter:
    """A draft-aware streamer that counts decoder passes per canvas (transformers calls put_draft per step)."""

    def __init__(self):
        self.steps: list[int] = []
        self._current = 0
        self._seen_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if not self._seen_prompt:
            self._seen_prompt = True
            return
        self.steps.append(self._current)
        self._current = 0

    def put_draft(self, value: torch.Tensor) -> None:
        self._current += 1

    def end(self) -> None:
        pass


@torch.no_grad()
def reference_generate(
    reference: ReferenceModel, prompt_ids: list[int], generation: GenerationArgs, seed: int
) -> tuple[list[int], list[int]]:
    """transformers' generate from torch.manual_seed(seed): (generated ids after the prompt, passes per canvas)."""
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import DiffusionGemmaGenerationConfig

    model = reference.model
    config = DiffusionGemmaGenerationConfig(**generation.to_hf_dict())
    counter = _StepCounter()
    torch.manual_seed(seed)
    input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=model.device)
    output = model.generate(input_ids, generation_config=config, streamer=counter)
    return output.sequences[0, len(prompt_ids) :].tolist(), counter.steps
