"""The ``poetry torch-cuda`` commands."""
