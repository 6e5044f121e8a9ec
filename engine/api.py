"""The engine's public surface for the server: imported lazily, only when the engine is on.

For now the `redraft generate` command; the async `Engine` facade (submit, iterate snapshots, cancel) joins it.
"""

from engine.cli import add_generate_arguments, run_generate

__all__ = ["add_generate_arguments", "run_generate"]
