"""Poetry plugin that installs the PyTorch build (CUDA, ROCm, CPU) a project configures."""

from __future__ import annotations


__version__ = "0.1.0"
