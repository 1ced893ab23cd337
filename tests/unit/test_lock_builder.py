"""VariantLocker on a fake index: the closure, extras, ranges, drift."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import pytest

from poetry_torch_cuda.index.client import IndexFile
from poetry_torch_cuda.index.client import ProjectFiles
from poetry_torch_cuda.lockfile.model import LockedPackage
from poetry_torch_cuda.lockfile.model import VariantLock
from poetry_torch_cuda.lockfile.service import DriftError
from poetry_torch_cuda.lockfile.service import LockError
from poetry_torch_cuda.lockfile.service import MissingBuildError
from poetry_torch_cuda.lockfile.service import Root
from poetry_torch_cuda.lockfile.service import VariantLocker
from poetry_torch_cuda.project.variants import parse_variant


URL = "https://mirror.example/whl/cu130"
LINUX = 'platform_system == "Linux"'


class FakeIndex:
    """Pages and metadata of a tiny variant index; each file's bytes are its name."""

    def __init__(
        self, wheels: dict[str, list[str]], described: dict[str, str] | None = None
    ) -> None:
        """``described``: a file's metadata names this ``<name> <version>`` instead."""
        self.cache = tempfile.TemporaryDirectory()  # removed with the index
        self.cache_dir = Path(self.cache.name) / "index"  # metadata: beside it
        self.metadata: dict[str, str] = {}
        self.pages: dict[str, list[IndexFile]] = {}
        for filename, requires in wheels.items():
            name, version = filename.split("-")[:2]
            name = name.replace("_", "-")
            said = (described or {}).get(filename, f"{name} {version}").split()
            text = f"Metadata-Version: 2.1\nName: {said[0]}\nVersion: {said[1]}\n"
            text += "".join(f"Requires-Dist: {r}\n" for r in requires)
            url = f"{URL}/{name}/{filename}"
            self.metadata[url + ".metadata"] = text
            self.pages.setdefault(name, []).append(
                IndexFile(
                    filename,
                    url,
                    hashlib.sha256(filename.encode()).hexdigest(),
                    len(filename),
                    hashlib.sha256(text.encode()).hexdigest(),
                )
            )

    def project(self, index_url: str, project: str) -> ProjectFiles:
        entries = tuple(sorted(self.pages.get(project, []), key=lambda e: e.filename))
        return ProjectFiles(project, project in self.pages, entries)

    def download(self, url: str, into: BinaryIO, size: int | None = None) -> str:
        into.write(self.metadata[url].encode())
        return hashlib.sha256(self.metadata[url].encode()).hexdigest()


def lock(index: FakeIndex, previous: VariantLock | None = None) -> VariantLock:
    locker = VariantLocker(
        index, {"torch"}, lambda v: tuple(map(int, v.split("."))) >= (3, 9)
    )  # type: ignore[arg-type]
    return locker.lock(
        parse_variant("cu130"),
        URL,
        [Root("torch", "2.14.1+cu130")],  # type: ignore[arg-type]
        None
        if previous is None
        else {f[0]: {f[2]} for p in previous.packages for f in p.files},
    )


WHEELS = {
    "torch-2.14.1+cu130-cp311-cp311-linux_x86_64.whl": [
        "filelock",
        f"cuda-toolkit[cublas]==13.0.*; {LINUX}",
        f"nvidia-cudnn-cu13; {LINUX}",
    ],
    "torch-2.14.1+cu130-cp38-cp38-linux_x86_64.whl": [],
    "cuda_toolkit-13.0.2-py3-none-any.whl": [
        'nvidia-cublas==13.0.*; extra == "cublas"',
        'nvidia-cufft; extra == "cufft"',
    ],
    "cuda_toolkit-13.1.0-py3-none-any.whl": [],
    "nvidia_cublas-13.0.2.14-py3-none-any.whl": [],
    "nvidia_cublas-13.0.3.1-py3-none-any.whl": [],
    "nvidia_cublas-13.1.0.3-py3-none-any.whl": [],
    "nvidia_cudnn_cu13-9.13.0.50-py3-none-any.whl": ["nvidia-cublas<13.0.3"],
}


def test_closure_follows_extras_and_takes_the_newest_build_all_accept() -> None:
    result = lock(FakeIndex(WHEELS))
    packages = {p.name: p for p in result.packages}
    assert sorted(packages) == [
        "cuda-toolkit",
        "nvidia-cublas",
        "nvidia-cudnn-cu13",
        "torch",
    ]  # filelock is Poetry's; cufft's extra was not asked for
    assert packages["cuda-toolkit"].version == "13.0.2"
    # ==13.0.* from cuda-toolkit and <13.0.3 from cuDNN: 13.0.2.14
    assert packages["nvidia-cublas"].version == "13.0.2.14"
    assert packages["nvidia-cublas"].markers == LINUX
    # cp38 is outside the project's Pythons: not locked
    assert [f[0] for f in packages["torch"].files] == [
        "torch-2.14.1+cu130-cp311-cp311-linux_x86_64.whl"
    ]
    assert packages["torch"].files[0][1] == (
        "torch/torch-2.14.1+cu130-cp311-cp311-linux_x86_64.whl"
    )


def test_a_missing_build_names_what_the_index_has() -> None:
    wheels = {k: v for k, v in WHEELS.items() if not k.startswith("torch-")}
    wheels["torch-2.13.0+cu130-cp311-cp311-linux_x86_64.whl"] = []
    with pytest.raises(MissingBuildError, match=r"it offers 2\.13\.0\+cu130"):
        lock(FakeIndex(wheels))


def test_a_changed_hash_of_a_locked_file_is_an_alarm() -> None:
    first = lock(FakeIndex(WHEELS))
    torch = next(p for p in first.packages if p.name == "torch")
    filename, url, _, size = torch.files[0]
    forged = LockedPackage(
        torch.name, torch.version, "", (), ((filename, url, "0" * 64, size),)
    )
    previous = VariantLock(first.name, first.index_url, (forged,))
    with pytest.raises(DriftError, match="now serves different bytes") as raised:
        lock(FakeIndex(WHEELS), previous)
    assert filename in str(raised.value)
    assert lock(FakeIndex(WHEELS), first) == first  # unchanged: no alarm


def test_a_dependency_cycle_ends() -> None:
    wheels = {
        "torch-2.14.1+cu130-cp311-cp311-linux_x86_64.whl": [f"nvidia-a; {LINUX}"],
        "nvidia_a-1.0-py3-none-any.whl": ['nvidia-b; sys_platform == "linux"'],
        "nvidia_b-1.0-py3-none-any.whl": ['nvidia-a; platform_machine == "x86_64"'],
    }
    names = sorted(p.name for p in lock(FakeIndex(wheels)).packages)
    assert names == ["nvidia-a", "nvidia-b", "torch"]


def test_two_locked_torch_versions_each_get_their_own_pins() -> None:
    """poetry.lock with torch 2.13.0 for old Pythons and 2.14.1 for new ones."""
    wheels = {
        "torch-2.13.0+cu130-py3-none-any.whl": [f"nvidia-a==1.0; {LINUX}"],
        "torch-2.14.1+cu130-py3-none-any.whl": [f"nvidia-a==2.0; {LINUX}"],
        "nvidia_a-1.0-py3-none-any.whl": [],
        "nvidia_a-2.0-py3-none-any.whl": [],
    }
    locker = VariantLocker(FakeIndex(wheels), {"torch"}, lambda v: True)  # type: ignore[arg-type]
    roots = [
        Root("torch", "2.13.0+cu130", markers='python_version < "3.11"'),  # type: ignore[arg-type]
        Root("torch", "2.14.1+cu130", markers='python_version >= "3.11"'),  # type: ignore[arg-type]
    ]
    locked = locker.lock(parse_variant("cu130"), URL, roots)
    assert sorted((p.name, p.version) for p in locked.packages) == [
        ("nvidia-a", "1.0"),
        ("nvidia-a", "2.0"),
        ("torch", "2.13.0+cu130"),
        ("torch", "2.14.1+cu130"),
    ]


def test_an_index_of_every_variant_locks_the_variants_build_as_a_dependency() -> None:
    """One index for every variant (a source or index-url without {variant}, as
    download.pytorch.org/whl itself): torchvision's ``torch==2.14.1`` took the
    newest build of any label (+rocm6.4), so cu130's entry held two torch builds,
    `lock --check` passed and pip refused the install (ResolutionImpossible)."""
    wheels = {
        "torch-2.14.1+cu130-py3-none-any.whl": [f"nvidia-a==1.0; {LINUX}"],
        "torch-2.14.1+rocm6.4-py3-none-any.whl": [f"pytorch-triton-rocm; {LINUX}"],
        "torchvision-0.29.1+cu130-py3-none-any.whl": ["torch==2.14.1"],
        "nvidia_a-1.0-py3-none-any.whl": [],
        "pytorch_triton_rocm-3.4.0-py3-none-any.whl": [],
    }
    configured = {"torch", "torchvision"}
    locker = VariantLocker(FakeIndex(wheels), configured, lambda v: True)  # type: ignore[arg-type]
    roots = [Root("torch", "2.14.1+cu130"), Root("torchvision", "0.29.1+cu130")]  # type: ignore[arg-type]
    locked = locker.lock(parse_variant("cu130"), URL, roots)
    assert sorted((p.name, p.version) for p in locked.packages) == [
        ("nvidia-a", "1.0"),
        ("torch", "2.14.1+cu130"),
        ("torchvision", "0.29.1+cu130"),
    ]


def test_a_negated_extra_holds_when_no_extra_was_asked_for() -> None:
    """As pip: ``extra != "x"`` holds for a package installed without extras."""
    wheels = {
        "torch-2.14.1+cu130-cp311-cp311-linux_x86_64.whl": [
            'nvidia-a; extra != "slim"',
            'nvidia-b; extra == "slim"',
        ],
        "nvidia_a-1.0-py3-none-any.whl": [],
        "nvidia_b-1.0-py3-none-any.whl": [],
    }
    names = sorted(p.name for p in lock(FakeIndex(wheels)).packages)
    assert names == ["nvidia-a", "torch"]


def test_metadata_of_another_build_is_refused() -> None:
    """A PEP 658 file that describes another build than its wheel (a mirror that
    mixed them up, its hash listed all the same): as pip, refused, not locked."""
    wheel = "torch-2.14.1+cu130-cp311-cp311-linux_x86_64.whl"
    index = FakeIndex(WHEELS, {wheel: "torch 2.13.0+cu130"})
    with pytest.raises(LockError) as raised:
        lock(index)
    assert f"{wheel}.metadata describes torch 2.13.0+cu130, not this file" in str(
        raised.value
    )
    assert not list(Path(index.cache.name).rglob("*.metadata"))  # nothing kept


@pytest.mark.parametrize("kept", [0.0, 0.5, 0.9])
def test_a_cached_metadata_file_cut_short_is_read_again(kept: float) -> None:
    """A cached METADATA left empty or cut short (a crash of the disk under it)
    was taken as it was: the dependencies it lost were missing from the lock,
    which ``lock --check`` then passed."""
    index = FakeIndex(WHEELS)
    whole = lock(index)
    cached = list(Path(index.cache.name).rglob("metadata/*"))
    assert cached
    for path in cached:
        text = path.read_text()
        path.write_text(text[: int(len(text) * kept)])
    assert lock(index) == whole


def test_a_wheel_that_is_no_wheel_names_a_way_on() -> None:
    """The index lists the file's true sha256, so re-locking meets it again: the
    error says whom to tell and what else to lock."""
    name = "torch-2.14.1+cu130-cp311-cp311-linux_x86_64.whl"
    broken = b"<html>not a zip</html>"
    index = FakeIndex({})
    index.pages["torch"] = [
        IndexFile(name, f"{URL}/torch/{name}", hashlib.sha256(broken).hexdigest())
    ]
    index.metadata[f"{URL}/torch/{name}"] = broken.decode()
    with pytest.raises(LockError) as raised:
        lock(index)
    message = str(raised.value)
    assert f"{name} is not a wheel with a METADATA file" in message
    assert "Tell whoever runs it" in message
    assert "`poetry torch-cuda switch <variant>`" in message


def test_a_changed_hash_is_worded_as_the_download_words_it() -> None:
    """Lock time and install time meet the same fault: one sentence says it."""
    first = lock(FakeIndex(WHEELS))
    forged = [
        replace(p, files=tuple((f[0], f[1], "0" * 64, f[3]) for f in p.files))
        for p in first.packages
    ]
    with pytest.raises(DriftError) as raised:
        lock(FakeIndex(WHEELS), replace(first, packages=tuple(forged)))
    assert (
        "the index or mirror now serves different bytes for the same file.\nA "
        "published file never changes: treat this as a compromised or broken mirror "
        "and tell whoever runs it; if the change is legitimate, re-lock trusting the "
        "index as it is now: `poetry torch-cuda lock --accept-drift`."
    ) in str(raised.value)


def test_a_wheel_read_for_its_metadata_is_not_held_in_memory(tmp_path: Path) -> None:
    """An index without PEP 658 files: each wheel (~900 MB for a CUDA torch, up to
    8 at once) is read for its METADATA from disk, not from memory."""
    import os
    import subprocess
    import sys

    from tests.support.fixtures import served
    from tests.support.wheels import build_wheel

    size = 16 * 1024 * 1024
    payload = {"torch/blob.bin": os.urandom(size)}
    build_wheel(
        tmp_path / "whl" / "cu130" / "torch", "torch", "2.14.1+cu130", payload=payload
    )
    child = (
        "import sys, tracemalloc\n"
        "from poetry.config.config import Config\n"
        "from poetry_torch_cuda.index.client import IndexClient\n"
        "from poetry_torch_cuda.lockfile.service import Root, VariantLocker\n"
        "from poetry_torch_cuda.project.variants import parse_variant\n"
        "config = Config()\n"
        "config.merge({'cache-dir': sys.argv[2], 'keyring': {'enabled': False}})\n"
        "locker = VariantLocker(IndexClient(config), {'torch'}, lambda v: True)\n"
        "tracemalloc.start()\n"
        "locker.lock(parse_variant('cu130'), sys.argv[1], [Root('torch', '2.14.1+cu130')])\n"
        "print(tracemalloc.get_traced_memory()[1])\n"
    )
    for server in served(tmp_path):
        server.serve_metadata = False
        ran = subprocess.run(
            [sys.executable, "-c", child, server.whl_url("cu130"), str(tmp_path / "c")],
            capture_output=True,
            text=True,
            check=False,
        )
    assert ran.returncode == 0, ran.stderr
    assert int(ran.stdout) < size // 4, f"peak {int(ran.stdout) >> 20} MiB"


def test_a_wheel_read_for_an_install_stays_where_the_install_finds_it(
    tmp_path: Path,
) -> None:
    """Without PEP 658 the lock reads whole wheels: the one an install that locks
    first needs stays in Poetry's artifact cache, where its download finds it
    (tests/e2e/test_artifact_cache.py); another platform's wheel, and every wheel
    a plain lock reads, do not."""
    from poetry.config.config import Config

    from poetry_torch_cuda.index.client import IndexClient
    from tests.support.client import LINUX_311
    from tests.support.fixtures import served
    from tests.support.wheels import build_wheel

    wheels = [
        build_wheel(
            tmp_path / "whl" / "cu130" / "torch", "torch", "2.14.1+cu130", tag=tag
        )
        for tag in ("py3-none-manylinux_2_28_x86_64", "py3-none-win_amd64")
    ]
    config = Config()
    config.merge({"cache-dir": str(tmp_path / "c"), "keyring": {"enabled": False}})
    artifacts = Path(config.artifacts_cache_directory)
    for server in served(tmp_path):
        server.serve_metadata = False
        for keep, kept in ((None, []), (LINUX_311, [wheels[0].name])):
            shutil.rmtree(tmp_path / "c", ignore_errors=True)  # metadata: read again
            locker = VariantLocker(IndexClient(config), {"torch"}, lambda v: True, keep)
            root = Root("torch", "2.14.1+cu130")  # type: ignore[arg-type]
            locker.lock(parse_variant("cu130"), server.whl_url("cu130"), [root])
            assert [p.name for p in artifacts.rglob("*") if p.is_file()] == kept
        # Listed without a sha256, a wheel has no place the install would look in.
        server.hashless_paths.add("/whl/cu130/")
        shutil.rmtree(tmp_path / "c", ignore_errors=True)
        locker = VariantLocker(
            IndexClient(config), {"torch"}, lambda v: True, LINUX_311
        )
        with pytest.raises(LockError, match="lists no sha256"):  # refused, and
            locker.lock(parse_variant("cu130"), server.whl_url("cu130"), [root])
        assert [p for p in artifacts.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("json", [True, False], ids=["json", "html"])
@pytest.mark.parametrize("pep658", [True, False], ids=["pep658", "wheel"])
def test_an_index_listing_uppercase_sha256_locks_them_lowercase(
    tmp_path: Path, json: bool, pep658: bool
) -> None:
    """PEP 503 allows any case of the hex digest (some mirrors list it uppercase):
    the same bytes, locked, written lowercase as pip and the download compare it."""
    from poetry.config.config import Config

    from poetry_torch_cuda.index.client import IndexClient
    from tests.support.fixtures import served
    from tests.support.wheels import build_wheel

    wheel = build_wheel(tmp_path / "whl" / "cu130" / "torch", "torch", "2.14.1+cu130")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    config = Config()
    config.merge({"cache-dir": str(tmp_path / "c"), "keyring": {"enabled": False}})
    for server in served(tmp_path):
        server.serve_json, server.serve_metadata = json, pep658
        server.upper_hashes = True
        client = IndexClient(config)
        locker = VariantLocker(client, {"torch"}, lambda v: True)
        root = Root("torch", "2.14.1+cu130")  # type: ignore[arg-type]
        result = locker.lock(
            parse_variant("cu130"), server.whl_url("cu130"), [root], {wheel.name: {sha}}
        )
        (entry,) = client.project(server.whl_url("cu130"), "torch").entries
    (torch,) = result.packages
    assert [f[2] for f in torch.files] == [sha]
    if pep658:  # its hash is read too (and the metadata was checked against it)
        assert entry.metadata_sha256
        assert entry.metadata_sha256 == entry.metadata_sha256.lower()


@pytest.mark.parametrize(
    ("variant", "marker", "left_to_pypi"),
    [
        ("cu128", 'sys_platform == "darwin"', True),
        ("cu128", 'platform_system == "Darwin"', True),
        ("cu128", 'platform_system == "Darwin" and platform_machine == "x86_64"', True),
        ("cu128", 'platform_system != "Darwin"', False),
        ("cu128", 'platform_system == "Windows"', False),
        ("rocm6.4", 'platform_system == "Windows"', True),
        ("rocm6.4", 'sys_platform == "win32"', True),
        ("rocm6.4", 'os_name == "nt"', True),
        ("rocm6.4", 'platform_system == "Linux"', False),
    ],
)
def test_a_pin_for_where_the_variant_has_no_builds_is_left_to_pypi(
    variant: str, marker: str, left_to_pypi: bool
) -> None:
    """However the marker names the platform: `platform_system == "Darwin"` is
    the same Intel Mac pin as `sys_platform == "darwin"`."""
    from poetry.core.packages.package import Package
    from poetry.core.version.markers import parse_marker

    from poetry_torch_cuda.lockfile.service import built_for

    selected = [(Package("torch", "2.13.0"), parse_marker(marker))]
    kept = built_for(selected, parse_variant(variant))  # type: ignore[arg-type]
    assert kept == ([] if left_to_pypi else selected)
