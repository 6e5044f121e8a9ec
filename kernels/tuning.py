"""Launch configurations as data: kernels/configs/<kernel>.json, written by the benchmarks' --tune sweeps on a
GPU and read when a kernel launches.

A table is {device name: {shape key: {size: config}}}: the device as torch.cuda.get_device_name() names it
(an H100 and an H200 want different tiles), a shape key each kernel builds from its model dimensions and
dtypes, and the work size the sweep ran at (token-expert pairs, canvas positions), since small and large
batches want different tiles too. A kernel takes the configuration tuned at the smallest size that is at
least its own, and its built-in default where the table has nothing.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

CONFIGS = Path(__file__).parent / "configs"


def path(kernel: str) -> Path:
    return CONFIGS / f"{kernel}.json"


@functools.cache
def table(kernel: str) -> dict:
    file = path(kernel)
    return json.loads(file.read_text()) if file.exists() else {}


def tuned(kernel: str, device: torch.device, key: str, size: int) -> dict:
    """The stored configuration for this kernel, device, shape and size; {} off CUDA or when none is stored."""
    if device.type != "cuda":
        return {}
    return lookup(table(kernel), torch.cuda.get_device_name(device), key, size)


def lookup(by_device: dict, device_name: str, key: str, size: int) -> dict:
    by_size = by_device.get(device_name, {}).get(key, {})
    if not by_size:
        return {}
    sizes = sorted(int(count) for count in by_size)
    chosen = next((count for count in sizes if count >= size), sizes[-1])
    return by_size[str(chosen)]


def editable(kernel: str) -> dict:
    """A copy of the kernel's stored table, for a sweep to `record` its results in and `write` out."""
    return json.loads(json.dumps(table(kernel)))


def record(by_device: dict, device_name: str, key: str, size: int, config: dict) -> None:
    """Puts a sweep's best configuration for this device, shape and work size where `lookup` finds it."""
    by_device.setdefault(device_name, {}).setdefault(key, {})[str(size)] = config


def write(kernel: str, by_device: dict, directory: Path) -> None:
    """The table as kernels/configs/<kernel>.json holds it, into directory (a benchmark's $OUT): merge, commit."""
    (directory / f"{kernel}.json").write_text(json.dumps(by_device, indent=2, sort_keys=True) + "\n")


def dtype_name(dtype: torch.dtype | str) -> str:
    """torch.bfloat16 -> "bfloat16"; a format that is no torch dtype ("nf4") is named as given."""
    return dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
