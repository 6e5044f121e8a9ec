"""AI redrafts in the shared document: the HTTP API, the lifecycle, the merge, and where the engine runs."""
