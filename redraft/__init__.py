"""The `redraft` command: composes the server, the engine, the worker and training."""
