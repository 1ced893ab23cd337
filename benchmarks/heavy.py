"""Give the switched wheels a share of their real size.

The tests' wheels are a few hundred bytes, so pip's fixed cost dominates every
install. Real CUDA wheels are hundreds of megabytes: this pads the wheels a
switch between cu129 and cu130 installs with incompressible bytes, to
``scale`` times the approximate real size of each (Linux x86_64, 2.8/2.9
era), so that the switch row can also be read at a realistic proportion.
"""

from __future__ import annotations

import os
import zipfile
from typing import TYPE_CHECKING

from tests.support.wheels import canonical_name


if TYPE_CHECKING:
    from tests.support.catalog import Universe

#: Approximate size in MB of the real wheel of each project.
REAL_MB = {
    "torch": 880,
    "torchvision": 8,
    "nvidia-cublas-cu12": 590,
    "nvidia-cudnn-cu12": 700,
    "nvidia-cublas": 420,
    "nvidia-cudnn-cu13": 650,
}


def pad_universe(universe: Universe, variants: tuple[str, ...], scale: float) -> int:
    """Pad every ``REAL_MB`` wheel on the ``variants`` indexes; total MB added."""
    total = 0
    for built in universe.wheels:
        if built.index not in variants:
            continue
        real = REAL_MB.get(canonical_name(built.spec.name))
        if real is None:
            continue
        size = int(real * scale * 1024 * 1024)
        _pad_wheel(built.path, size)
        total += size
    return total // (1024 * 1024)


def _pad_wheel(path: os.PathLike[str], size: int) -> None:
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    package = entries[0][0].filename.split("/")[0]
    payload = f"{package}/_payload.bin"
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            if info.filename.endswith(".dist-info/RECORD"):
                archive.writestr(payload, os.urandom(size), zipfile.ZIP_STORED)
                data = data.replace(b"\n", f"\n{payload},,\n".encode(), 1)
            archive.writestr(info, data)
