"""The real-scale world of issue 23: the real torch 2.14.1 CUDA 13.0 family, and a CUDA 12 one.

Wheels are kept in a cache that survives runs (``~/.cache/ptc-real``, or
``$PTC_REAL_CACHE``): ``cu130/`` holds torch 2.14.1, torchvision 0.29.1 and their
whole closure (PyPI's build is CUDA 13.0), taken from the wheel folders on this
disk first (hard links) and downloaded from PyPI only where one is missing;
``cu12/`` holds the ``nvidia-*-cu12`` set a torch 2.8.0 wheel requires
(``CU12``). ``relabelled/`` holds torch and torchvision relabelled ``+cu130``
and ``+cu126``: the dist-info renamed, ``Version`` (and for ``+cu126`` the CUDA
``Requires-Dist`` lines) rewritten in METADATA and RECORD's lines with it; every
other zip entry is copied byte for byte, compressed as it was, streamed.

:func:`build` lays out the tree :class:`RealIndex` serves (the tests' index
layout: ``pypi/`` for ``/simple/``, ``whl/<variant>/``), hard links all the way,
with a ``<wheel>.metadata`` file (PEP 658) beside each wheel and a PEP 503
``index.html`` with sha256 fragments in each project folder.
"""

from __future__ import annotations

import email.parser
import hashlib
import html
import json
import mmap
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.index import IndexServer
from tests.support.index import _FileInfo
from tests.support.index import _NotFound
from tests.support.index import _parse_range
from tests.support.wheels import canonical_name


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Sequence

    from tests.support.index import RequestRecord
    from tests.support.index import _Handler

TORCH = "2.14.1"
TORCHVISION = "0.29.1"
NEW, OLD = "cu130", "cu126"
#: Wheel folders on this disk searched before PyPI.
LOCAL = (Path("/opt/pypi-more/files"), Path("/opt/pypi/files"), Path("/opt/wheels"))
#: What torch 2.8.0's wheel requires from the CUDA 12 set (its METADATA on PyPI).
CU12 = (
    "nvidia-cuda-nvrtc-cu12==12.8.93",
    "nvidia-cuda-runtime-cu12==12.8.90",
    "nvidia-cuda-cupti-cu12==12.8.90",
    "nvidia-cudnn-cu12==9.10.2.21",
    "nvidia-cublas-cu12==12.8.4.1",
    "nvidia-cufft-cu12==11.3.3.83",
    "nvidia-curand-cu12==10.3.9.90",
    "nvidia-cusolver-cu12==11.7.3.90",
    "nvidia-cusparse-cu12==12.5.8.93",
    "nvidia-cusparselt-cu12==0.7.1",
    "nvidia-nccl-cu12==2.27.3",
    "nvidia-nvtx-cu12==12.8.90",
    "nvidia-nvjitlink-cu12==12.8.93",
    "nvidia-cufile-cu12==1.13.1.3",
)
#: pip before 23.3 does not widen ``--platform``: every tag the wheels use.
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_25_x86_64",
    "manylinux_2_18_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_12_x86_64",
    "manylinux2010_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)
#: The torch requirements a ``+cu126`` relabel drops (CUDA 13 only).
CU13_ONLY = re.compile(r"^(cuda-toolkit|cuda-bindings|nvidia-[a-z-]+-cu13)\b")


class Unreachable(Exception):
    """PyPI was needed for a wheel that is not on this disk and could not be reached."""


def cache_root() -> Path:
    return Path(os.environ.get("PTC_REAL_CACHE", Path.home() / ".cache" / "ptc-real"))


def _pip(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    command = [sys.executable, "-m", "pip", *args]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def _targets() -> list[str]:
    args = ["--only-binary", ":all:", "--python-version", "3.11"]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    return args


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def cu130_closure(cache: Path) -> list[Path]:
    """torch 2.14.1 + torchvision 0.29.1 and all they need, as files in ``cache/cu130``."""
    folder = cache / "cu130"
    listed = folder / "closure.json"
    if listed.is_file():
        names = json.loads(listed.read_text())
        if all((folder / name).is_file() for name in names):
            return [folder / name for name in names]
    folder.mkdir(parents=True, exist_ok=True)
    links = [f"--find-links={d}" for d in (*LOCAL, folder) if d.is_dir()]
    report = folder / "report.json"
    for _ in range(10):  # each round fetches one missing requirement from PyPI
        result = _pip(
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-index",
            *links,
            *_targets(),
            "--target",
            str(folder / "unused"),
            "--report",
            str(report),
            f"torch=={TORCH}",
            f"torchvision=={TORCHVISION}",
            cwd=folder,
        )
        if result.returncode == 0:
            break
        missing = re.search(
            r"No matching distribution found for (.+?)\s*$", result.stderr, re.MULTILINE
        )
        if missing is None:
            raise SystemExit(
                f"bench: resolving the cu130 family failed\n{result.stderr}"
            )
        requirement = missing.group(1).split(";")[0].strip()
        _say(f"{requirement} is not on this disk: pip download from PyPI")
        _download(folder, [requirement])
    else:
        raise SystemExit("bench: the cu130 family still misses wheels after 10 rounds")
    names = []
    for item in json.loads(report.read_text())["install"]:
        url = item["download_info"]["url"]
        source = Path(url.removeprefix("file://"))
        names.append(source.name)
        if source.parent != folder and not (folder / source.name).exists():
            _link(source, folder / source.name)
    listed.write_text(json.dumps(sorted(names), indent=1))
    return [folder / name for name in sorted(names)]


def cu12_set(cache: Path) -> list[Path]:
    """The CUDA 12 wheels (``CU12``) in ``cache/cu12``, downloaded from PyPI once."""
    folder = cache / "cu12"
    folder.mkdir(parents=True, exist_ok=True)
    have = {canonical_name(p.name.split("-")[0]): p for p in folder.glob("*.whl")}
    missing = [r for r in CU12 if canonical_name(r.split("==")[0]) not in have]
    if missing:
        _say(f"downloading {len(missing)} CUDA 12 wheels from PyPI into {folder}")
        _download(folder, missing)
        have = {canonical_name(p.name.split("-")[0]): p for p in folder.glob("*.whl")}
    return [have[canonical_name(r.split("==")[0])] for r in CU12]


def _download(folder: Path, requirements: Sequence[str]) -> None:
    result = _pip(
        "download", "--no-deps", "--progress-bar", "off", *_targets(), "-d", str(folder),
        *requirements, cwd=folder,
    )  # fmt: skip
    if result.returncode != 0:
        raise Unreachable(
            result.stderr.strip().splitlines()[-1] if result.stderr else ""
        )


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


# -- relabelling ------------------------------------------------------------


def relabel(
    source: Path, folder: Path, label: str, requires: Sequence[str] = ()
) -> Path:
    """``source`` as ``<version>+<label>``; ``requires`` replace its CUDA 13 requirements.

    Only the dist-info's name, METADATA and RECORD change; every other entry is
    copied compressed, as it was. Done once per cache (the result is kept).
    """
    name, version, rest = source.name.split("-", 2)
    target = folder / f"{name}-{version}+{label}-{rest}"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    old_info, new_info = (
        f"{name}-{version}.dist-info/",
        f"{name}-{version}+{label}.dist-info/",
    )
    with zipfile.ZipFile(source) as archive:
        metadata = archive.read(old_info + "METADATA").decode()
        record = archive.read(old_info + "RECORD").decode()
        metadata = re.sub(
            r"^Version: .*$",
            f"Version: {version}+{label}",
            metadata,
            count=1,
            flags=re.MULTILINE,
        )
        if requires:
            lines = metadata.split("\n")
            kept = [
                line
                for line in lines
                if not (
                    line.startswith("Requires-Dist: ") and CU13_ONLY.match(line[15:])
                )
            ]
            at = max(
                i for i, line in enumerate(kept) if line.startswith("Requires-Dist: ")
            )
            added = [
                f'Requires-Dist: {r}; platform_system == "Linux"' for r in requires
            ]
            metadata = "\n".join([*kept[: at + 1], *added, *kept[at + 1 :]])
        data = metadata.encode()
        digest = hashlib.sha256(data).digest()
        hashed = "sha256=" + _b64(digest)
        lines = []
        for line in record.splitlines():
            path, *fields = line.rsplit(",", 2)
            if path == old_info + "METADATA":
                fields = [hashed, str(len(data))]
            lines.append(",".join([path.replace(old_info, new_info, 1), *fields]))
        record = "\n".join(lines) + "\n"
        temporary = target.with_name(target.name + ".tmp")
        with source.open("rb") as raw, zipfile.ZipFile(temporary, "w") as out:
            for info in archive.infolist():
                renamed = info.filename.replace(old_info, new_info, 1)
                if info.filename == old_info + "METADATA":
                    out.writestr(_fresh(info, renamed), data, zipfile.ZIP_DEFLATED)
                elif info.filename == old_info + "RECORD":
                    out.writestr(_fresh(info, renamed), record, zipfile.ZIP_DEFLATED)
                else:
                    _copy_raw(raw, info, renamed, out)
    temporary.rename(target)
    return target


def _b64(digest: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _fresh(info: zipfile.ZipInfo, name: str) -> zipfile.ZipInfo:
    made = zipfile.ZipInfo(name, info.date_time)
    made.external_attr = info.external_attr
    return made


def _copy_raw(
    raw: object, info: zipfile.ZipInfo, name: str, out: zipfile.ZipFile
) -> None:
    """Copy one entry's compressed bytes under ``name``, without decompressing them."""
    import struct

    assert hasattr(raw, "seek") and hasattr(raw, "read")
    raw.seek(info.header_offset)
    header = raw.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    raw.seek(info.header_offset + 30 + name_length + extra_length)
    copied = zipfile.ZipInfo(name, info.date_time)
    copied.compress_type = info.compress_type
    copied.external_attr = info.external_attr
    copied.create_system = info.create_system
    copied.flag_bits = (
        info.flag_bits & ~0x08 & ~0x800
    )  # sizes in the header; ascii name
    copied.CRC = info.CRC
    copied.compress_size = info.compress_size
    copied.file_size = info.file_size
    copied.header_offset = out.fp.tell()  # type: ignore[union-attr]
    out.fp.write(copied.FileHeader())  # type: ignore[union-attr]
    left = info.compress_size
    while left:
        chunk = raw.read(min(left, 16 * 1024 * 1024))
        out.fp.write(chunk)  # type: ignore[union-attr]
        left -= len(chunk)
    out.filelist.append(copied)
    out.NameToInfo[name] = copied
    out.start_dir = out.fp.tell()  # type: ignore[union-attr]
    out._didModify = True  # type: ignore[attr-defined]


# -- the served tree --------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The tree to serve and what each variant installs (canonical names)."""

    root: Path
    families: dict[str, frozenset[str]]
    megabytes: dict[str, int]

    def orphans(self, old: str, new: str) -> list[str]:
        """What ``old``'s family leaves behind after ``new`` is installed over it."""
        return sorted(self.families[old] - self.families[new])


def build(root: Path, cache: Path | None = None) -> World:
    """The world under ``root`` (links into the cache); raises :class:`Unreachable`.

    A missing CUDA 12 set leaves ``cu126`` out (``families`` has no ``cu126``).
    """
    cache = cache or cache_root()
    closure = cu130_closure(cache)
    try:
        cu12: list[Path] | None = cu12_set(cache)
    except Unreachable as unreachable:
        _say(f"the cu126 family is skipped: PyPI cannot be reached ({unreachable})")
        cu12 = None
    by_name = {canonical_name(p.name.split("-")[0]): p for p in closure}
    relabelled = cache / "relabelled"
    variants: dict[str, list[Path]] = {}
    shared = [p for n, p in by_name.items() if n not in ("torch", "torchvision")]
    variants[NEW] = [
        relabel(by_name["torch"], relabelled, NEW),
        relabel(by_name["torchvision"], relabelled, NEW),
        *shared,
    ]
    if cu12 is not None:
        requires = list(CU12)
        common = [
            p for p in shared if not _cuda13(canonical_name(p.name.split("-")[0]))
        ]
        variants[OLD] = [
            relabel(by_name["torch"], relabelled, OLD, requires),
            relabel(by_name["torchvision"], relabelled, OLD),
            *common,
            *cu12,
        ]
    shutil.rmtree(root, ignore_errors=True)
    _lay_out(root / "pypi", closure)
    for variant, files in variants.items():
        _lay_out(root / "whl" / variant, files)
    families = {
        v: frozenset(canonical_name(p.name.split("-")[0]) for p in files)
        for v, files in variants.items()
    }
    sizes = {
        v: sum(p.stat().st_size for p in files) >> 20 for v, files in variants.items()
    }
    return World(root, families, sizes)


def _cuda13(name: str) -> bool:
    return name.startswith(("cuda-", "nvidia-"))


def _lay_out(directory: Path, files: Iterable[Path]) -> None:
    hashes = _Hashes(cache_root() / "sha256.json")
    projects: dict[str, list[Path]] = {}
    for path in files:
        project = directory / canonical_name(path.name.split("-")[0])
        project.mkdir(parents=True, exist_ok=True)
        placed = project / path.name
        _link(path, placed)
        metadata = _wheel_metadata(path)
        (project / f"{path.name}.metadata").write_bytes(metadata)
        projects.setdefault(project.name, []).append(placed)
    for name, placed in sorted(projects.items()):
        anchors = []
        for path in sorted(placed):
            meta = hashlib.sha256((path.parent / f"{path.name}.metadata").read_bytes())
            anchors.append(
                f'<a href="{html.escape(path.name)}#sha256={hashes.of(path)}" '
                f'data-dist-info-metadata="sha256={meta.hexdigest()}" '
                f'data-core-metadata="sha256={meta.hexdigest()}">{html.escape(path.name)}</a><br/>'
            )
        page = (
            "<!DOCTYPE html><html><body>\n" + "\n".join(anchors) + "\n</body></html>\n"
        )
        (directory / name / "index.html").write_text(page)
    names = sorted(projects)
    links = "".join(f'<a href="{n}/">{n}</a><br/>\n' for n in names)
    (directory / "index.html").write_text(
        f"<!DOCTYPE html><html><body>\n{links}</body></html>\n"
    )
    hashes.save()


def _wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            parts = name.split("/")
            if (
                len(parts) == 2
                and parts[0].endswith(".dist-info")
                and parts[1] == "METADATA"
            ):
                return archive.read(name)
    raise ValueError(f"{path} has no METADATA")


class _Hashes:
    """sha256 of the cache's files, kept in a JSON file (keyed by name, size, mtime)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known: dict[str, str] = (
            json.loads(path.read_text()) if path.is_file() else {}
        )

    def of(self, path: Path) -> str:
        stat = path.stat()
        key = f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
        if key not in self.known:
            with path.open("rb") as handle:
                self.known[key] = hashlib.file_digest(handle, "sha256").hexdigest()
        return self.known[key]

    def save(self) -> None:
        fd, name = tempfile.mkstemp(dir=self.path.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.known, handle)
        Path(name).replace(self.path)


class RealIndex(IndexServer):
    """The tests' index server, fit for gigabytes: hashes from the cache, bodies from mmap."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._hashes = _Hashes(cache_root() / "sha256.json")

    def _file_info(self, path: Path) -> _FileInfo:
        stat = path.stat()
        key = (path, stat.st_mtime_ns, stat.st_size)
        cached = self._file_cache.get(key)
        if cached is not None:
            return cached
        metadata = (path.parent / f"{path.name}.metadata").read_bytes()
        parsed = email.parser.BytesParser().parsebytes(metadata, headersonly=True)
        info = _FileInfo(
            sha256=self._hashes.of(path),
            size=stat.st_size,
            metadata=metadata,
            metadata_sha256=hashlib.sha256(metadata).hexdigest(),
            requires_python=parsed.get("Requires-Python"),
        )
        self._file_cache[key] = info
        return info

    def _file(
        self,
        handler: _Handler,
        record: RequestRecord,
        directory: Path,
        project: str,
        filename: str,
        *,
        head: bool,
    ) -> None:
        if filename.endswith(".metadata"):
            super()._file(handler, record, directory, project, filename, head=head)
            return
        path = directory / canonical_name(project) / filename
        if "/" in filename or filename.startswith(".") or not path.is_file():
            raise _NotFound
        with path.open("rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        view = memoryview(mapped)
        try:
            headers = {**self._file_headers(), "Accept-Ranges": "bytes"}
            wanted = _parse_range(handler.headers.get("Range"), len(view))
            status, body = 200, view
            if wanted == "unsatisfiable":
                status, body = 416, view[:0]
                headers["Content-Range"] = f"bytes */{len(view)}"
            elif wanted is not None:
                start, end = wanted
                status, body = 206, view[start : end + 1]
                headers["Content-Range"] = f"bytes {start}-{end}/{len(view)}"
            self._send(
                handler, record, status, body, "application/octet-stream",  # type: ignore[arg-type]
                head=head, headers=headers,
            )  # fmt: skip
        finally:
            del body
            view.release()
            mapped.close()
