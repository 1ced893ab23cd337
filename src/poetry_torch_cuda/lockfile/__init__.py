"""torch-cuda.lock: the variant builds with every file's sha256, beside poetry.lock."""
