"""DiffusionGemma's network: shapes, layers, the KV cache, and the weight stack run as encoder and decoder."""
