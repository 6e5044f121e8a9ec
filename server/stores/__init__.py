"""Where documents live: an append-only update log per document plus a compacted snapshot."""
