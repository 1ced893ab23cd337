"""``verify`` on the real thing: this machine's torch CPU wheel, served from ``/whl/cpu/``.

The wheel comes from pip's find-links folder on this machine (torch 2.13.0+cpu
for CPython 3.11); its real dependencies from the machine's local package
folders. Nothing is downloaded from the internet. Skipped, with the reason,
where the wheel or the matching Python is missing.
"""

from __future__ import annotations

import configparser
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.catalog import WheelSpec
from tests.support.catalog import build_universe
from tests.support.fixtures import served
from tests.support.gpus import machine_env
from tests.support.gpus import no_real_driver
from tests.support.poetry_project import VERIFY_ON
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe


if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.index import IndexServer


TORCH = "2.13.0+cpu"
WHEEL_GLOB = f"torch-{TORCH}-cp311-cp311-*linux*_x86_64.whl"
#: torch 2.13.0's Requires-Dist, and what those need in turn.
TORCH_REQUIRES = (
    "filelock",
    "typing-extensions>=4.10.0",
    "setuptools>=77.0.3",
    "sympy>=1.13.3",
    "networkx>=2.5.1",
    "jinja2",
    "fsspec>=0.8.5",
)
DEPENDENCIES = (
    "filelock",
    "typing_extensions",
    "setuptools",
    "sympy",
    "mpmath",
    "networkx",
    "jinja2",
    "markupsafe",
    "fsspec",
)
#: Where this machine keeps wheels besides pip's find-links (file:// indexes).
LOCAL_WHEEL_DIRS = (Path("/opt/pypi/files"), Path("/opt/pypi-more/files"))


def find_links() -> list[Path]:
    """pip's find-links folders on this machine (its config files and environment)."""
    found = [Path(p) for p in os.environ.get("PIP_FIND_LINKS", "").split()]
    for config in (Path("/etc/pip.conf"), *Path("/etc/xdg/pip").glob("*.conf")):
        parser = configparser.ConfigParser()
        try:
            parser.read(config)
        except configparser.Error:
            continue
        for section in parser.sections():
            found += [Path(p) for p in parser[section].get("find-links", "").split()]
    return [path for path in found if path.is_dir()]


def real_torch_wheel() -> Path | None:
    for folder in [*find_links(), Path("/opt/wheels")]:
        for wheel in sorted(folder.glob(WHEEL_GLOB)):
            return wheel
    return None


def dependency_wheels() -> list[Path]:
    wheels = []
    for name in DEPENDENCIES:
        for folder in LOCAL_WHEEL_DIRS:
            for wheel in sorted(folder.glob(f"{name}-*.whl")):
                tags = wheel.name.rsplit("-", 3)[1:]
                if "py3-none-any" in wheel.name or (
                    tags[0] == "cp311" and "x86_64" in tags[2]
                ):
                    wheels.append(wheel)
    return wheels


WHEEL = real_torch_wheel()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        WHEEL is None, reason=f"no {WHEEL_GLOB} in pip's find-links on this machine"
    ),
    pytest.mark.skipif(
        sys.version_info[:2] != (3, 11),
        reason=f"the real torch wheel is for CPython 3.11, not {sys.version.split()[0]}",
    ),
    no_real_driver,
]


@pytest.fixture(scope="module")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """A fake PyPI whose torch 2.13.0 needs the real dependencies, and /whl/cpu/
    with the real torch wheel (the dependencies on both, as download.pytorch.org has them)."""
    assert WHEEL is not None
    universe = build_universe(
        tmp_path_factory.mktemp("real-torch"),
        {"pypi": [WheelSpec("torch", "2.13.0", TORCH_REQUIRES)], "cpu": []},
    )
    wheels = dependency_wheels()
    missing = [
        name
        for name in DEPENDENCIES
        if not any(w.name.lower().startswith(f"{name}-") for w in wheels)
    ]
    if missing:
        pytest.skip(f"this machine has no local wheels of {', '.join(missing)}")
    for index in ("pypi", "cpu"):
        for wheel in wheels:
            project = universe.project_dir(wheel.name.split("-")[0], index)
            project.mkdir(parents=True, exist_ok=True)
            (project / wheel.name).symlink_to(wheel)
    torch_dir = universe.project_dir("torch", "cpu")
    torch_dir.mkdir(parents=True, exist_ok=True)
    (torch_dir / WHEEL.name).symlink_to(WHEEL)
    for server in served(universe.root):
        # The test index hashes a wheel when a page first lists it; for the real
        # torch wheel that can outlast the plugin's 4 s page timeout on a loaded
        # machine. A real index has its hashes ready: hash it before the tests.
        with urllib.request.urlopen(f"{server.whl_url('cpu')}/torch/") as page:
            assert WHEEL.name in page.read().decode()
        yield server


def test_verify_runs_the_real_cpu_build_and_sync_repairs_it(
    tmp_path: Path, real_index: IndexServer
) -> None:
    project = Project.create(
        tmp_path,
        real_index,
        {"torch": "2.13.0"},
        'variant = "cpu"\npackages = ["torch"]',
    )
    project.write_pyproject(
        project.pyproject_text().replace(
            'requires-python = ">=3.9"', 'requires-python = ">=3.11,<3.12"'
        )
    )
    env = {**machine_env(tmp_path / "machine"), **VERIFY_ON}

    installed = project.run("install", env_extra=env)
    assert f"verified torch {TORCH}: imports, computes on the CPU" in installed.stdout
    assert project.installed()["torch"] == TORCH

    verify = project.run("torch-cuda", "verify", env_extra=env)
    assert f"torch {TORCH} imports" in verify.stdout
    assert f"torch {TORCH}: CPU-only build" in verify.stdout
    assert "computes on the CPU" in verify.stdout
    assert "cpu build verified" in verify.stdout
    data = json.loads(
        project.run("torch-cuda", "verify", "--json", env_extra=env).stdout
    )
    assert data["ok"] is True
    assert data["packages"]["torch"]["version"] == TORCH
    assert data["packages"]["torch"]["label"] == "cpu"
    assert data["torch"]["cuda"] is None
    assert data["torch"]["is_available"] is False
    assert data["compute"] == [{"device": "cpu", "ok": True, "error": None}]

    # Damage the install: the RECORD check names the missing file first (README's
    # lines); the import fails too; status --check fails on the same file.
    (project.site_packages() / "torch" / "lib" / "libc10.so").unlink()
    broken = project.run("torch-cuda", "verify", check=False, env_extra=env)
    assert broken.returncode == 1, describe(broken)
    assert broken.stdout.splitlines()[:3] == [
        "FAIL torch: 1 of its files missing (torch/lib/libc10.so)",
        "       cause: a removal or an interrupted install left it incomplete",
        "       fix:   `poetry torch-cuda sync --force` reinstalls the build",
    ], describe(broken)
    assert "verification failed (2 problems) for cpu" in broken.stderr
    check = project.run("torch-cuda", "status", "--check", check=False, env_extra=env)
    assert check.returncode == 1, describe(check)
    assert "torch: 1 of its files missing (torch/lib/libc10.so)" in check.stdout
    assert f"torch {TORCH} does not import" in broken.stdout
    assert "fix:   `poetry torch-cuda sync --force` reinstalls the build" in (
        broken.stdout
    )

    repaired = project.run("torch-cuda", "sync", "--force", env_extra=env)
    assert f"verified torch {TORCH}" in repaired.stdout
    assert project.run("torch-cuda", "verify", env_extra=env).returncode == 0
