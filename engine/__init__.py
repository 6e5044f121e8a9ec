"""The DiffusionGemma engine (built by the engine issue)."""
