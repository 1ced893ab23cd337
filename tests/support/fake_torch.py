"""Fake ``torch`` packages that behave like each variant's real build, for verification tests.

:func:`fake_torch` returns the source of a ``torch/__init__.py`` that answers
what ``poetry torch-cuda verify`` asks (``torch.version``, ``torch.cuda``,
``torch.backends.cudnn``, ``torch.arange`` and a tiny tensor) as the real build
does: ``torch.version.cuda``/``hip`` and the arch list are the build's; a CUDA or
ROCm build sees the GPUs the driver reports (``FAKE_TORCH_GPUS``, set by
:func:`gpus_variable` next to the test's stub ``nvidia-smi``, or the ``sees`` a
test gives it), hides them as CUDA does under ``CUDA_VISIBLE_DEVICES`` /
``HIP_VISIBLE_DEVICES`` (empty, ``-1`` or an unknown index hide the rest), and
fails with "no kernel image" on a GPU its arch list does not cover.
``FAKE_TORCH_IMPORT_SECONDS`` makes the import slow, ``FAKE_TORCH_HANG_AT_EXIT`` the
exit hang. :func:`broken_import`
returns one whose import raises like a build missing a CUDA library;
:func:`replace_module` puts either into a built universe's wheel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.support.wheels import build_wheel
from tests.support.wheels import canonical_name


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Sequence

    from tests.support.catalog import Universe

__all__ = [
    "CORE",
    "DEMO_ARCHS",
    "LIBCUDNN_MISSING",
    "NMS_MISSING",
    "NO_KERNEL_IMAGE",
    "broken_import",
    "demo_torch",
    "fake_torch",
    "fake_torchvision",
    "gpus_variable",
    "make_demo_builds",
    "make_verifiable",
    "replace_module",
]

LIBCUDNN_MISSING = (
    "libcudnn.so.9: cannot open shared object file: No such file or directory"
)
NO_KERNEL_IMAGE = "CUDA error: no kernel image is available for execution on the device"

_TEMPLATE = '''\
"""A fake torch {version} that behaves like the real build (tests/support/fake_torch.py)."""
import os as _os
import time as _time
import types as _types

_time.sleep(float(_os.environ.get("FAKE_TORCH_IMPORT_SECONDS") or 0))
if _os.environ.get("FAKE_TORCH_HANG_AT_EXIT"):  # a thread the exit waits for, forever
    __import__("threading").Thread(target=_time.sleep, args=(3600,)).start()
__version__ = {version!r}
float32 = "float32"
version = _types.SimpleNamespace(cuda={cuda!r}, hip={hip!r}, __version__=__version__)
_ARCHS = {archs!r}
_SEES = {sees!r}


def _gpus():
    """The GPUs the driver reports (or the build is told it sees), less those
    CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES hide."""
    if _SEES is not None:
        found = [(name, tuple(capability)) for name, capability in _SEES]
    else:
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
            raise RuntimeError({no_kernel!r})
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
backends = _types.SimpleNamespace(
    cudnn=_types.SimpleNamespace(version=lambda: {cudnn!r})
)
'''


def fake_torch(
    version: str,
    *,
    cuda: str | None = None,
    hip: str | None = None,
    archs: Sequence[str] = (),
    cudnn: int | None = None,
    sees: Sequence[tuple[str, tuple[int, int]]] | None = None,
) -> str:
    """The source of a fake ``torch/__init__.py`` for such a build (``archs``:
    ``sm_75``, ``compute_120`` for PTX). A CUDA/ROCm build sees the GPUs of
    ``FAKE_TORCH_GPUS``, or ``sees`` (name, compute capability) if given."""
    return _TEMPLATE.format(
        version=version,
        cuda=cuda,
        hip=hip,
        archs=list(archs),
        cudnn=cudnn,
        sees=None if sees is None else [[name, list(cc)] for name, cc in sees],
        no_kernel=NO_KERNEL_IMAGE,
    )


def gpus_variable(*gpus: tuple[str, str]) -> dict[str, str]:
    """``FAKE_TORCH_GPUS`` for ``gpus`` given as (compute capability, name)."""
    return {"FAKE_TORCH_GPUS": ",".join(f"{cc}:{name}" for cc, name in gpus)}


def broken_import(version: str, message: str = LIBCUDNN_MISSING) -> str:
    """A ``torch/__init__.py`` whose import fails as a build missing a library does."""
    return f"__version__ = {version!r}\nraise OSError({message!r})\n"


#: What torchvision says when it was built for another torch.
NMS_MISSING = "operator torchvision::nms does not exist"


def fake_torchvision(version: str, *, mismatched: bool = False) -> str:
    """A ``torchvision/__init__.py`` whose ``ops.nms`` answers like the real one
    (or, ``mismatched``, fails like a torchvision built for another torch)."""
    nms = f"_fail({NMS_MISSING!r})" if mismatched else "_torch.tensor([0, 2])"
    return (
        f"import types as _types\nimport torch as _torch\n__version__ = {version!r}\n"
        "def _fail(message):\n    raise RuntimeError(message)\n"
        f"ops = _types.SimpleNamespace(nms=lambda boxes, scores, iou: {nms})\n"
    )


def replace_module(
    universe: Universe, index: str, project: str, version: str, source: str
) -> None:
    """Rebuild ``project==version`` on ``index`` with ``source`` as its ``__init__.py``.

    Name, version and requirements stay those of the wheel the universe built.
    """
    for built in universe.wheels:
        if (
            built.index == index
            and built.spec.project == canonical_name(project)
            and built.spec.version == version
        ):
            package = canonical_name(project).replace("-", "_")
            build_wheel(
                built.path.parent,
                project,
                version,
                built.spec.requires,
                extras=built.spec.extras,
                payload={f"{package}/__init__.py": source.encode()},
            )
            return
    raise KeyError(f"no {project} {version} on {index}")


#: What the verifiable CUDA builds of :func:`make_verifiable` see.
SEEN_GPU = ("NVIDIA GeForce RTX 4090", (8, 9))


def make_verifiable(universe: Universe, indexes: Iterable[str]) -> None:
    """Make every torch and torchvision on ``indexes`` pass ``torch-cuda verify``,
    on a machine without GPU or with one sm_89 GPU (CUDA builds see :data:`SEEN_GPU`)."""
    for index in indexes:
        cuda = f"{index[2:-1]}.{index[-1]}" if index.startswith("cu") else None
        for built in list(universe.wheels):
            version = built.spec.version
            if built.index != index:
                continue
            if built.spec.project == "torch":
                source = fake_torch(
                    version,
                    cuda=cuda,
                    archs=["sm_80", "sm_86", "sm_90"] if cuda else [],
                    sees=[SEEN_GPU],
                )
            elif built.spec.project == "torchvision":
                source = fake_torchvision(version)
            else:
                continue
            replace_module(universe, index, built.spec.project, version, source)


#: The compiled architectures of PyTorch's Linux x86_64 builds, per CUDA variant
#: (``torch.cuda.get_arch_list()`` of the 2.14 wheels), for the demo's builds.
DEMO_ARCHS = {
    "cu126": ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"],
    "cu130": ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"],
    "cu132": ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"],
}
#: The part of a demo build the demo deletes, as a broken install loses a library.
CORE = "torch/lib/libc10.so"
#: How a real build fails when that library is gone.
_LOAD_CORE = """\
import os as _os

if not _os.path.exists(_os.path.join(_os.path.dirname(__file__), "lib", "libc10.so")):
    raise ImportError("libc10.so: cannot open shared object file: No such file or directory")
"""


def demo_torch(version: str, variant: str) -> dict[str, bytes]:
    """The files of a demo torch build that answers like the real one on a CPU machine.

    Its version, ``torch.version.cuda`` and arch list are the variant's, it
    computes on the CPU, and ``torch.cuda.is_available()`` is false on a machine
    without GPU. Its import needs :data:`CORE`, as a real build loads its compiled
    core: delete that file and the import fails as the real one does.
    """
    cuda = f"{variant[2:-1]}.{variant[-1]}" if variant.startswith("cu") else None
    source = fake_torch(
        version,
        cuda=cuda,
        archs=DEMO_ARCHS.get(variant, []),
        cudnn=91002 if cuda else None,
    )
    return {
        "torch/__init__.py": (_LOAD_CORE + source).encode(),
        CORE: b"stands in for the compiled core of a real build\n",
    }


def make_demo_builds(universe: Universe, indexes: Iterable[str]) -> None:
    """Rebuild every torch and torchvision on ``indexes`` as :func:`demo_torch` builds,
    which pass ``poetry torch-cuda verify`` on a machine without a GPU."""
    for index in indexes:
        for built in list(universe.wheels):
            if built.index != index or built.spec.project not in (
                "torch",
                "torchvision",
            ):
                continue
            if built.spec.project == "torch":
                payload = demo_torch(built.spec.version, index)
            else:
                payload = {
                    "torchvision/__init__.py": fake_torchvision(
                        built.spec.version
                    ).encode()
                }
            build_wheel(
                built.path.parent,
                built.spec.project,
                built.spec.version,
                built.spec.requires,
                extras=built.spec.extras,
                payload=payload,
            )
