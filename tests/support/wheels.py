"""Build minimal, valid wheels with :mod:`zipfile` only.

The wheels carry a real ``METADATA`` (with ``Requires-Dist`` and extras), a
``WHEEL`` file and a ``RECORD`` with sha256 hashes, so pip and Poetry's
installer accept them exactly like wheels downloaded from PyPI.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from collections.abc import Mapping
    from collections.abc import Sequence
    from pathlib import Path


__all__ = [
    "build_wheel",
    "canonical_name",
    "import_name",
    "read_wheel_metadata",
    "wheel_filename",
    "wheel_metadata",
]

# A fixed timestamp makes the archives byte-for-byte reproducible, so the
# sha256 of a wheel does not change between two builds of the universe.
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def canonical_name(name: str) -> str:
    """Normalise a project name per PEP 503 (``Nvidia_Cublas`` -> ``nvidia-cublas``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def import_name(name: str) -> str:
    """The top-level package a fake wheel ships (``nvidia-cublas`` -> ``nvidia_cublas``)."""
    return canonical_name(name).replace("-", "_")


def _escape(name: str) -> str:
    """Distribution name as it appears in wheel and dist-info file names."""
    return import_name(name)


def wheel_filename(name: str, version: str, tag: str = "py3-none-any") -> str:
    """File name per the binary distribution format spec.

    The local version label is kept verbatim:
    ``wheel_filename("torch", "2.14.1+cu129") == "torch-2.14.1+cu129-py3-none-any.whl"``.
    """
    return f"{_escape(name)}-{version}-{tag}.whl"


def wheel_metadata(
    name: str,
    version: str,
    requires: Sequence[str] = (),
    *,
    extras: Mapping[str, Sequence[str]] | None = None,
    requires_python: str | None = None,
) -> str:
    """The core metadata (``METADATA``) text of a fake wheel."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: Fake {name} for poetry-torch-cuda tests",
    ]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {req}" for req in requires)
    for extra, extra_requires in (extras or {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for req in extra_requires:
            lines.append(f"Requires-Dist: {_add_extra_marker(req, extra)}")
    return "\n".join(lines) + "\n\n"


def _add_extra_marker(requirement: str, extra: str) -> str:
    if ";" in requirement:
        req, marker = requirement.split(";", 1)
        return f'{req.strip()}; ({marker.strip()}) and extra == "{extra}"'
    return f'{requirement.strip()}; extra == "{extra}"'


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def build_wheel(
    dest: Path,
    name: str,
    version: str,
    requires: Sequence[str] = (),
    *,
    extras: Mapping[str, Sequence[str]] | None = None,
    tag: str = "py3-none-any",
    requires_python: str | None = None,
    payload: Mapping[str, bytes] | None = None,
) -> Path:
    """Write ``<dest>/<wheel file name>`` and return its path.

    The wheel contains ``<import_name>/__init__.py`` with
    ``__version__ = "<version>"`` and a dist-info directory with METADATA,
    WHEEL and RECORD. ``requires`` are PEP 508 strings (markers allowed);
    ``extras`` maps an extra's name to its requirements, which get an
    ``extra == "<name>"`` marker. ``payload`` adds files (archive name ->
    bytes), e.g. a large one to make installing the wheel write a lot; a
    payload ``<import_name>/__init__.py`` replaces the default one.
    """
    dest.mkdir(parents=True, exist_ok=True)
    dist_info = f"{_escape(name)}-{version}.dist-info"
    package = import_name(name)

    init = f"{package}/__init__.py"
    files: list[tuple[str, bytes]] = [
        (init, f'__version__ = "{version}"\n'.encode()),
        (
            f"{dist_info}/METADATA",
            wheel_metadata(
                name,
                version,
                requires,
                extras=extras,
                requires_python=requires_python,
            ).encode(),
        ),
        (
            f"{dist_info}/WHEEL",
            (
                "Wheel-Version: 1.0\n"
                "Generator: poetry-torch-cuda-tests\n"
                "Root-Is-Purelib: true\n"
                f"Tag: {tag}\n\n"
            ).encode(),
        ),
    ]
    extra = dict(payload or {})
    if init in extra:  # the payload replaces the default module
        files[0] = (init, extra.pop(init))
    files[1:1] = list(extra.items())
    record_lines = [f"{arc},{_record_hash(data)},{len(data)}" for arc, data in files]
    record_lines.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record_lines) + "\n").encode()))

    path = dest / wheel_filename(name, version, tag)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for arcname, data in files:
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return path


def read_wheel_metadata(path: Path) -> bytes:
    """The raw ``METADATA`` bytes of a wheel (served as PEP 658 metadata)."""
    with zipfile.ZipFile(path) as archive:
        for arcname in archive.namelist():
            parts = arcname.split("/")
            if (
                len(parts) == 2
                and parts[0].endswith(".dist-info")
                and parts[1] == "METADATA"
            ):
                return archive.read(arcname)
    raise ValueError(f"{path} has no .dist-info/METADATA")
