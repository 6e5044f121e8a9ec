"""The DiffusionGemma engine: the network (model/), its weights (weights/), text in and out (text/), running it
(runtime/), and OpenAI-compatible servers in its place (remote/). It imports kernels/ and jobs/, nothing above."""
