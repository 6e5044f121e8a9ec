"""Loading: a Hugging Face checkpoint directory, or a named preset with random weights.

Checkpoints are built on the meta device and filled shard by shard, each tensor read straight to the target
device and dtype, so no second full copy of the weights ever exists. Every failure names the file or tensor.
Published FP8 checkpoints (compressed-tensors) load too: engine/weights/compressed.py turns their FP8 weights and
per-expert pieces back into transformers' tensors as they are read.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn
from tqdm import tqdm

from engine.model.config import MODEL_PRESETS, ConfigError, GenerationArgs, ModelArgs, read_json
from engine.model.network import DiffusionGemma
from engine.text.spelling import Lexicon
from engine.text.tokenizer import TURN_END_ID, byte_tokenizer, load_tokenizer
from engine.weights.compressed import Dequantizer, UnsupportedQuantization, published_fp8
from engine.weights.quantize import check_format, load_into, prepare
from engine.weights.quantize import quantize as quantize_loaded
from jobs.tasks import EVERY_TASK, ModelTasks, read_tasks

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# transformers saves the shared weights once, under the decoder (the encoder's copies are tied to them)
DECODER_PREFIX = "model.decoder."
ENCODER_PREFIX = "model.encoder.language_model."
INIT_STD = 0.02  # transformers' initializer_range
# Trained models that ship inside the package (engine/models/<name>/, Hugging Face layout): see README.md.
SHIPPED_MODELS = {"redraft-small": Path(__file__).resolve().parents[1] / "models" / "redraft-small"}


class CheckpointError(ValueError):
    """A checkpoint directory is missing a file or tensor, or holds an inconsistent one; the message names it."""


@dataclass
class LoadedModel:
    model: DiffusionGemma
    args: ModelArgs
    generation: GenerationArgs
    tokenizer: Any  # a transformers tokenizer, or None for a checkpoint without tokenizer files
    source: str  # preset name or checkpoint directory
    tasks: ModelTasks = EVERY_TASK  # what its config.json declares it can do (jobs/tasks.py)
    lexicon: Lexicon | None = None  # the words its fix knows, when it declares a lexicon


def load_model(
    name_or_path: str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    quantize: str = "none",
) -> LoadedModel:
    """A preset name (`tiny`, `diffusiongemma-26b-a4b`: random weights), a shipped model's name
    (`redraft-small`: trained weights in engine/models/), or a checkpoint directory; `quantize` is one of
    engine.model.config.QUANTIZE_FORMATS."""
    check_format(quantize)
    if name_or_path in MODEL_PRESETS:
        args = MODEL_PRESETS[name_or_path]
        model = quantize_loaded(random_model(args, device, dtype, seed), quantize)
        # `tiny` brings its byte tokenizer; the real shapes with random weights take --prompt-ids only
        tokenizer = byte_tokenizer(args.vocab_size) if name_or_path == "tiny" else None
        return LoadedModel(model, args, preset_generation_args(name_or_path), tokenizer, name_or_path)
    loaded = load_checkpoint(resolve_checkpoint(name_or_path), device, dtype, quantize)
    if name_or_path in SHIPPED_MODELS:
        loaded.source = name_or_path
    return loaded


def resolve_checkpoint(name_or_path: str) -> Path:
    """The directory of a shipped model's name, or the path itself."""
    return SHIPPED_MODELS.get(name_or_path, Path(name_or_path))


def preset_generation_args(name: str) -> GenerationArgs:
    """The published generation_config.json; for `tiny`, with its byte tokenizer's <eos> and <turn|> ids."""
    return GenerationArgs(eos_token_ids=(1, TURN_END_ID)) if name == "tiny" else GenerationArgs()


def random_model(args: ModelArgs, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> DiffusionGemma:
    """Random weights, each Parameter allocated once.

    Small models are drawn on the CPU in float32, then cast and moved, so that a seed gives the same weights
    on every device and in every dtype (torch's bf16 normal_ is not fp32's rounded, on some versions). Large
    ones are drawn on the device in the target dtype: drawing 25B numbers on the CPU takes minutes, and an
    fp32 copy of them would not fit.
    """
    with torch.device("meta"):
        model = DiffusionGemma(args)
    small = _num_params(model) < 50_000_000
    draw_on = torch.device("cpu") if small else torch.device(device)
    model = (model if small else model.to(dtype)).to_empty(device=draw_on)
    generator = torch.Generator(device=draw_on).manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:  # norm weights, router scales
                param.fill_(1.0)
            else:
                param.normal_(0.0, INIT_STD, generator=generator)
        for layer in model.layers:
            layer.encoder_scalar.fill_(1.0)
            layer.decoder_scalar.fill_(1.0)
    model = model.to(device, dtype)
    return model.eval().requires_grad_(False)


def load_checkpoint(
    directory: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, quantize: str = "none"
) -> LoadedModel:
    args, generation = read_checkpoint_config(directory)
    config_path = directory / "config.json"
    try:
        fp8 = published_fp8(read_json(config_path), str(config_path))  # False, or its block structure
    except (ConfigError, UnsupportedQuantization) as error:
        raise CheckpointError(str(error)) from error
    shards = shard_files(directory)
    with torch.device("meta"):
        model = DiffusionGemma(args)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    prepare(model, quantize)  # quantized modules take their tensors as they load: no full-precision copy
    dequantizer = Dequantizer(args.num_experts, fp8) if fp8 is not False else None
    _load_shards(model, expected, shards, torch.device(device), dtype, directory, dequantizer)
    model.init_buffers(device)
    tasks = read_checkpoint_tasks(directory)
    if tasks.edit_entropy_bound is not None:
        generation = generation.replace(edit_entropy_bound=tasks.edit_entropy_bound)
    tokenizer = load_tokenizer(directory)
    return LoadedModel(model.eval().requires_grad_(False), args, generation, tokenizer, str(directory), tasks,
                       read_lexicon(directory, tasks))


def read_lexicon(directory: Path, tasks: ModelTasks) -> Lexicon | None:
    """The lexicon file the declaration names, read; None when it names none."""
    if tasks.lexicon is None:
        return None
    path = directory / tasks.lexicon
    try:
        return Lexicon.read(path)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{path}: the lexicon config.json declares cannot be read: {error}") from error


def read_checkpoint_tasks(directory: Path) -> ModelTasks:
    """The tasks a checkpoint's config.json declares (every task when it declares none)."""
    config_path = directory / "config.json"
    try:
        return read_tasks(read_json(config_path), str(config_path))
    except (ConfigError, ValueError) as error:
        raise CheckpointError(str(error)) from error


def read_checkpoint_config(directory: Path) -> tuple[ModelArgs, GenerationArgs]:
    """config.json (required) and generation_config.json (optional) of a checkpoint directory."""
    if not directory.is_dir():
        names = ", ".join([*MODEL_PRESETS, *SHIPPED_MODELS])
        raise CheckpointError(f"{directory}: not a checkpoint directory (nor a model name: {names})")
    gen_path = directory / "generation_config.json"
    try:
        config = read_json(directory / "config.json")
        args = ModelArgs.from_hf_config(config, source=str(directory / "config.json"))
        gen_config = read_json(gen_path) if gen_path.exists() else {}
    except ConfigError as error:
        raise CheckpointError(str(error)) from error
    try:
        generation = GenerationArgs.from_hf_dict(gen_config, config)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{gen_path}: {error}") from error
    return args, generation


def native_name(hf_name: str) -> str | None:
    """Maps a transformers parameter name to ours; None for tensors the text path does not use (vision)."""
    if hf_name == "lm_head.weight":
        return "embed_tokens.weight"
    for prefix, role in ((DECODER_PREFIX, "decoder"), (ENCODER_PREFIX, "encoder")):
        if hf_name.startswith(prefix):
            rest = hf_name[len(prefix) :]
            if rest.endswith(".layer_scalar"):
                return rest.removesuffix("layer_scalar") + f"{role}_scalar"
            return rest
    return None


def hf_name(name: str) -> str:
    """The name transformers saves one of our tensors under (the inverse of native_name, decoder copy)."""
    if name.endswith(".encoder_scalar"):
        return ENCODER_PREFIX + name.removesuffix("encoder_scalar") + "layer_scalar"
    if name.endswith(".decoder_scalar"):
        return DECODER_PREFIX + name.removesuffix("decoder_scalar") + "layer_scalar"
    return DECODER_PREFIX + name


def shard_files(directory: Path) -> dict[Path, list[str] | None]:
    """Shard path -> tensor names the index assigns to it (None: a single file, every tensor in it)."""
    index_path = directory / INDEX_FILE
    if index_path.exists():
        try:
            weight_map = read_json(index_path).get("weight_map")
        except ConfigError as error:
            raise CheckpointError(str(error)) from error
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index_path}: no 'weight_map' object")
        shards: dict[Path, list[str] | None] = {}
        for name, file_name in weight_map.items():
            shards.setdefault(directory / file_name, []).append(name)
        for path in shards:
            if not path.is_file():
                raise CheckpointError(f"{path}: shard listed in {INDEX_FILE} is missing")
        return shards
    single = directory / SINGLE_FILE
    if not single.is_file():
        raise CheckpointError(f"{directory}: no {SINGLE_FILE} or {INDEX_FILE}")
    return {single: None}


def _load_shards(
    model: nn.Module,
    expected: dict[str, tuple[int, ...]],
    shards: dict[Path, list[str] | None],
    device: torch.device,
    dtype: torch.dtype,
    directory: Path,
    dequantizer: Dequantizer | None = None,
) -> None:
    loaded: set[str] = set()
    with tqdm(total=len(expected), desc=f"loading {directory.name}", unit="tensor", file=sys.stderr) as progress:
        for path, names in shards.items():
            try:
                with safe_open(str(path), framework="pt", device=str(device)) as shard:
                    present = set(shard.keys())
                    for name in names if names is not None else sorted(present):
                        if name not in present:
                            raise CheckpointError(f"{path}: tensor {name} listed in {INDEX_FILE} is missing")
                        if dequantizer is not None and dequantizer.wants(name, shard.get_slice(name).get_dtype()):
                            try:
                                ready = dequantizer.feed(name, shard.get_tensor(name))
                            except UnsupportedQuantization as error:
                                raise CheckpointError(f"{path}: tensor {name}: {error}") from error
                        else:
                            ready = [(name, None)]  # read below, once its name and shape are checked
                        for hf, tensor in ready:
                            target = native_name(hf)
                            if target is None or target in loaded:
                                continue  # vision tower, or the encoder's copy of a shared weight
                            if target not in expected:
                                raise CheckpointError(f"{path}: unexpected tensor {hf} (does config.json match?)")
                            shape = tuple(tensor.shape if tensor is not None else shard.get_slice(name).get_shape())
                            if shape != expected[target]:
                                raise CheckpointError(
                                    f"{path}: tensor {hf} has shape {list(shape)}, config.json implies "
                                    f"{list(expected[target])}"
                                )
                            _assign(model, target, shard.get_tensor(name) if tensor is None else tensor, dtype)
                            loaded.add(target)
                            progress.update(1)
            except SafetensorError as error:
                raise CheckpointError(f"{path}: unreadable safetensors file ({error})") from error
    unfinished = dequantizer.unfinished() if dequantizer is not None else []
    if unfinished:
        raise CheckpointError(f"{directory}: incomplete FP8 tensors: {', '.join(unfinished[:5])}")
    missing = sorted(set(expected) - loaded)
    if missing:
        listed = ", ".join(hf_name(name) for name in missing[:5])
        raise CheckpointError(f"{directory}: {len(missing)} tensor(s) missing from the checkpoint: {listed}")


def _assign(model: nn.Module, name: str, tensor: torch.Tensor, dtype: torch.dtype) -> None:
    """Quantized modules take the tensor as read (they quantize from its full precision); others in dtype."""
    if load_into(model, name, tensor):
        return
    tensor = tensor.to(dtype)
    module_name, _, leaf = name.rpartition(".")
    module = model.get_submodule(module_name)
    if leaf in module._parameters:
        module._parameters[leaf] = nn.Parameter(tensor, requires_grad=False)
    else:
        module._buffers[leaf] = tensor


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
