"""Version history: every change recorded with who made it and why, checkpoints to rebuild any version, retention."""
