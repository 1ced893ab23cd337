"""Fake torch builds that see GPUs the way a real build does.

Unlike :func:`tests.support.fake_torch.fake_torch` (whose devices are baked in),
a :func:`gpu_build` learns the machine's GPUs at import from ``FAKE_TORCH_GPUS``
(``"7.0:Tesla V100,10.0:NVIDIA B200"``, set by the test next to its stub
``nvidia-smi``), hides them as CUDA does under ``CUDA_VISIBLE_DEVICES`` /
``HIP_VISIBLE_DEVICES`` (empty, ``-1`` or an unknown index hide the rest), and
fails with "no kernel image" on a GPU its arch list does not cover.
``FAKE_TORCH_IMPORT_SECONDS`` makes the import slow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["gpu_build", "gpus_variable"]

_TEMPLATE = '''\
"""A fake torch {version} that sees GPUs like a real build (tests/support/gpu_builds.py)."""
import os as _os
import time as _time
import types as _types

_time.sleep(float(_os.environ.get("FAKE_TORCH_IMPORT_SECONDS") or 0))
__version__ = {version!r}
float32 = "float32"
version = _types.SimpleNamespace(cuda={cuda!r}, hip={hip!r}, __version__=__version__)
_ARCHS = {archs!r}
_NO_KERNEL = "CUDA error: no kernel image is available for execution on the device"


def _gpus():
    found = []
    for item in (_os.environ.get("FAKE_TORCH_GPUS") or "").split(","):
        if item.strip():
            capability, _, name = item.partition(":")
            major, _, minor = capability.partition(".")
            found.append((name, (int(major), int(minor or 0))))
    mask = _os.environ.get("HIP_VISIBLE_DEVICES" if {hip!r} else "CUDA_VISIBLE_DEVICES")
    if mask is None and {hip!r}:
        mask = _os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return found
    visible = []
    for item in mask.split(","):
        if not item.strip().isdigit() or int(item) >= len(found):
            break
        visible.append(found[int(item)])
    return visible


_DEVICES = _gpus() if ({cuda!r} or {hip!r}) else []


def _runs(capability):
    for arch in _ARCHS:
        kind, _, number = arch.partition("_")
        major, minor = int(number[:-1]), int(number[-1])
        if kind == "sm" and major == capability[0] and minor <= capability[1]:
            return True
        if kind == "compute" and (major, minor) <= tuple(capability):
            return True
    return False


class _Tensor:
    def __init__(self, values, device="cpu"):
        self.values = list(values)
        self.device = device

    def __mul__(self, other):
        return _Tensor([a * b for a, b in zip(self.values, other.values)], self.device)

    def sum(self):
        return _Tensor([sum(self.values)], self.device)

    def item(self):
        return self.values[0]

    def tolist(self):
        return list(self.values)


def _check(device):
    device = str(device)
    if device.startswith("cuda"):
        if not _DEVICES:
            raise RuntimeError("No CUDA GPUs are available")
        if not _runs(_DEVICES[int(device.partition(":")[2] or 0)][1]):
            raise RuntimeError(_NO_KERNEL)
    return device


def arange(start, end, dtype=None, device="cpu"):
    return _Tensor([float(x) for x in range(start, end)], _check(device))


def tensor(values, device="cpu"):
    return _Tensor(values, _check(device))


cuda = _types.SimpleNamespace(
    is_available=lambda: bool(_DEVICES),
    get_arch_list=lambda: list(_ARCHS),
    device_count=lambda: len(_DEVICES),
    get_device_name=lambda i: _DEVICES[i][0],
    get_device_capability=lambda i: tuple(_DEVICES[i][1]),
)
backends = _types.SimpleNamespace(cudnn=_types.SimpleNamespace(version=lambda: None))
'''


def gpu_build(
    version: str,
    *,
    cuda: str | None = None,
    hip: str | None = None,
    archs: Sequence[str] = (),
) -> str:
    """The source of a ``torch/__init__.py`` for such a build (``archs``: ``sm_75``,
    ``compute_120`` for PTX)."""
    return _TEMPLATE.format(version=version, cuda=cuda, hip=hip, archs=list(archs))


def gpus_variable(*gpus: tuple[str, str]) -> dict[str, str]:
    """``FAKE_TORCH_GPUS`` for ``gpus`` given as (compute capability, name)."""
    return {"FAKE_TORCH_GPUS": ",".join(f"{cc}:{name}" for cc, name in gpus)}
