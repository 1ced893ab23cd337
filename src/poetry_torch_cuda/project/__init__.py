"""The project: configuration, variants, the poetry.lock reader, pyproject edits and the torch family rule."""
