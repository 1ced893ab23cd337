"""Configuration mistakes that leave a wrong build behind without an error.

- A ``packages`` entry that names nothing (``"troch"``): no build is managed for it.
- A package PyTorch's index publishes per variant (``torchvision``…) that is
  installed but not configured: Poetry installs PyPI's build, made for PyPI's
  torch, next to the configured variant's torch.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name


if TYPE_CHECKING:
    from collections.abc import Iterable

    from poetry_torch_cuda.install.installed import InstalledEnvironment
    from poetry_torch_cuda.project.config import TorchCudaConfig

#: Packages download.pytorch.org/whl/<variant> publishes in a build per variant
#: (``+cu129`` local labels), read from its per-variant indexes 2026-11-27.
PER_VARIANT: frozenset[NormalizedName] = frozenset(
    canonicalize_name(name)
    for name in (
        "torch",
        "torchvision",
        "torchaudio",
        "torchtext",
        "torchrec",
        "torchao",
        "torchcodec",
        "fbgemm-gpu",
        "fbgemm-gpu-genai",
        "xformers",
        "torch-tensorrt",
    )
)


def unknown_entries(config: TorchCudaConfig, lock_names: Iterable[str]) -> list[str]:
    """A message for each ``packages`` entry that names no package the plugin can manage.

    An entry counts when the lock has it, when it has a version specifier (the
    plugin installs it itself), or when it is a package PyTorch builds per
    variant (the default list names torchaudio, which many projects lack).
    """
    names = sorted({canonicalize_name(name) for name in lock_names})
    messages = []
    for requirement in config.packages:
        name = canonicalize_name(requirement.name)
        if name in names or requirement.specifier or name in PER_VARIANT:
            continue
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "fix or remove the entry"
        messages.append(
            f'[tool.poetry-torch-cuda] packages entry "{requirement}" names no '
            f"package in the lock, so no build is managed for it: {hint}"
        )
    return messages


def left_to_poetry(
    config: TorchCudaConfig, installed: InstalledEnvironment
) -> list[str]:
    """A message for each installed per-variant package the configuration leaves out."""
    configured = config.package_names
    if not any(installed.get(name) is not None for name in configured):
        return []
    messages = []
    entries = [f'"{requirement}"' for requirement in config.packages]
    for name in sorted(PER_VARIANT - configured):
        distribution = installed.get(name)
        if distribution is None:
            continue
        fix = ", ".join([*entries, f'"{name}"'])
        messages.append(
            f"{name} {distribution.version} is installed but left to Poetry: PyTorch "
            f"builds it per variant, so PyPI's build does not fit the configured "
            f"torch. Add it to [tool.poetry-torch-cuda]: packages = [{fix}]"
        )
    return messages
