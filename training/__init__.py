"""Training and evaluating the small model: corpora, corruption tasks, the training loop and the quality measures."""
