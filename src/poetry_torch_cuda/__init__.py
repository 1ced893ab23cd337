"""Poetry plugin that installs the PyTorch build (CUDA, ROCm, CPU) a project configures."""

from __future__ import annotations


#: Every command, by name: the module and class that cleo builds lazily.
COMMANDS = {
    "torch-cuda": "poetry_torch_cuda.commands.overview:OverviewCommand",
    "torch-cuda switch": "poetry_torch_cuda.commands.switch:SwitchCommand",
    "torch-cuda status": "poetry_torch_cuda.commands.status:StatusCommand",
    "torch-cuda sync": "poetry_torch_cuda.commands.switch:SyncCommand",
    "torch-cuda detect": "poetry_torch_cuda.commands.detect:DetectCommand",
    "torch-cuda variants": "poetry_torch_cuda.commands.variants:VariantsCommand",
    "torch-cuda verify": "poetry_torch_cuda.commands.verify:VerifyCommand",
    "torch-cuda lock": "poetry_torch_cuda.commands.lock:LockCommand",
    "torch-cuda export": "poetry_torch_cuda.commands.export:ExportCommand",
}
