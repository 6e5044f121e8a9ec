"""Text in and out of the model: tokenizers and the prompts of each redraft kind."""
