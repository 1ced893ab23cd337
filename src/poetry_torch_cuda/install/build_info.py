"""Which build of torch (or torchvision…) is installed, from its metadata alone.

The local version label says it for PyTorch's indexes (``+cu129``); PyPI's builds
carry none, so their CUDA is read from what they require, or their ``version.py``.
Nothing is imported: importing torch takes seconds and may need a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from poetry_torch_cuda.environment.installed import unlabelled_cuda
from poetry_torch_cuda.machine.tables import dotted
from poetry_torch_cuda.project.variants import label_of
from poetry_torch_cuda.project.variants import parse_variant


if TYPE_CHECKING:
    from collections.abc import Iterable

    from poetry_torch_cuda.environment.installed import InstalledEnvironment

PYPI_DEFAULT = "PyPI default build"


@dataclass(frozen=True)
class InstalledBuild:
    """One installed package: its version, label and what build that is."""

    version: str
    label: str | None
    build: str
    cuda: str | None = None


def describe_build(
    version: str, requires: Iterable[str] = (), version_py: str | None = None
) -> InstalledBuild:
    """Describe the build of ``version`` from its requirements and version.py."""
    label = label_of(version)
    if label is not None:
        return InstalledBuild(version, label, *_labelled(label))
    cuda = unlabelled_cuda(requires, version_py)
    kind = f", CUDA {cuda}" if cuda else ", CPU only" if cuda == "" else ""
    return InstalledBuild(version, None, PYPI_DEFAULT + kind, cuda or None)


def read_builds(
    names: Iterable[str], installed: InstalledEnvironment
) -> dict[str, InstalledBuild]:
    """The installed builds of ``names``, from the environment's installed view."""
    return {
        name: describe_build(dist.version, dist.lines, dist.version_py)
        for name in map(canonicalize_name, names)
        if (dist := installed.get(name)) is not None
    }


def _labelled(label: str) -> tuple[str, str | None]:
    try:
        variant = parse_variant(label)
    except ValueError:
        return f"local build +{label}", None
    if variant.kind == "cuda" and variant.cuda_version is not None:
        cuda = dotted(variant.cuda_version)
        return f"CUDA {cuda} build", cuda
    if variant.kind == "rocm":
        return f"ROCm {label.removeprefix('rocm')} build", None
    if variant.kind == "xpu":
        return "Intel XPU build", None
    return "CPU build", None
