"""Running the model: denoising steps, continuous batching, CUDA graphs, the sampler, and redraft jobs as text."""
