"""torch-cuda.lock end to end: real Poetry, real pip, the local index.

Lock two variants with the right hashes, install from the lock, refuse a
tampered wheel (same name, new bytes, index page updated: a compromised
mirror) in ``install`` and ``switch``, ``lock --check`` as a CI guard.
"""

from __future__ import annotations

import hashlib
import shutil
import tomllib
from typing import TYPE_CHECKING

import pytest

from tests.support.catalog import build_universe
from tests.support.index import IndexServer
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.wheels import build_wheel


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.catalog import Universe

pytestmark = pytest.mark.e2e

DEPS = {"needs-torch": "*", "torchvision": "*"}
TWO = 'variant = "cu129"\nlock-variants = ["cu129", "cu130"]\n'


@pytest.fixture
def own_universe(tmp_path: Path) -> Universe:
    """A universe of its own: these tests change wheels on the index."""
    return build_universe(tmp_path / "universe")


@pytest.fixture
def own_index(own_universe: Universe) -> Iterator[IndexServer]:
    with IndexServer(own_universe.root) as server:
        yield server


def make_project(tmp_path: Path, index: IndexServer, table: str = TWO) -> Project:
    return Project.create(tmp_path, index, DEPS, table)


def read_lock(project: Project) -> dict:
    return tomllib.loads((project.path / "torch-cuda.lock").read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tamper(universe: Universe, variant: str, project: str, version: str) -> str:
    """Replace a wheel on the index by other bytes under the same name; its new sha256."""
    path = universe.wheel(project, version, variant)
    rebuilt = build_wheel(
        path.parent / "tmp", project, version, ("filelock",), extras=None
    )
    data = rebuilt.read_bytes() + b""
    shutil.rmtree(rebuilt.parent)
    # Same name, new bytes: a comment in the zip changes the sha256.
    import zipfile

    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = b"tampered"
    del data
    return sha256(path)


def test_lock_records_both_variants_with_the_index_hashes(
    tmp_path: Path, own_index: IndexServer, own_universe: Universe
) -> None:
    project = make_project(tmp_path, own_index)
    result = project.run("lock")
    assert "wrote torch-cuda.lock" in result.stdout, describe(result)
    lock = read_lock(project)
    assert lock["metadata"]["lock-variants"] == ["cu129", "cu130"]
    variants = {v["name"]: v for v in lock["variant"]}
    assert sorted(variants) == ["cu129", "cu130"]
    for name in ("cu129", "cu130"):
        packages = {p["name"]: p for p in variants[name]["package"]}
        assert packages["torch"]["version"] == f"2.14.1+{name}"
        assert packages["torchvision"]["version"] == f"0.29.1+{name}"
        for package in packages.values():
            for file in package["files"]:
                wheel = own_universe.wheel(package["name"], package["version"], name)
                assert file["file"] == wheel.name
                assert file["hash"] == f"sha256:{sha256(wheel)}"
        assert variants[name]["index-url"] == own_index.whl_url(name)
    cu129 = {p["name"] for p in variants["cu129"]["package"]}
    assert cu129 == {
        "torch",
        "torchvision",
        "nvidia-cublas-cu12",
        "nvidia-cudnn-cu12",
        "triton",
    }
    cu130 = {p["name"] for p in variants["cu130"]["package"]}
    assert cu130 == {
        "torch",
        "torchvision",
        "nvidia-cublas",
        "nvidia-cudnn-cu13",
        "triton",
    }
    # Deterministic: locking again writes the same bytes.
    before = (project.path / "torch-cuda.lock").read_bytes()
    project.run("torch-cuda", "lock")
    assert (project.path / "torch-cuda.lock").read_bytes() == before
    assert project.run("torch-cuda", "lock", "--check").returncode == 0
