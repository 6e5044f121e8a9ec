"""`--engine openai`: redrafts from an OpenAI-compatible server, torch-free."""
