"""Where documents live: an append-only update log per document plus a compacted snapshot, and beside them
the document's history (every update with who made it and why) and its checkpoints, which compaction leaves."""
