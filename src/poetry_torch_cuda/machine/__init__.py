"""The machine: probes (nvidia-smi, ROCm), fact tables, and the decision behind ``auto``."""
