"""Weights: loading checkpoints, published FP8 layouts, low-bit quantization and LoRA adapters."""
