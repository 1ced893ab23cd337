"""The project: configuration, variants, the lock readers and pyproject edits."""
