"""Triton kernels for the engine's hot paths (built by the kernels issue)."""
