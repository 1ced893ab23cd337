"""Removing orphaned wheels in-process: a real venv, real wheels, real pip as the fallback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import venv
from typing import TYPE_CHECKING

import pytest
from poetry.utils.env import VirtualEnv

from poetry_torch_cuda.install.undo import remove_distributions
from tests.support.wheels import build_wheel


if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

ORPHANS = ("nvidia-cublas-cu12", "nvidia-cudnn-cu12")
KEPT = "nvidia-cublas"
#: Poetry 2.0 has no in-process uninstaller: there pip removes everything.
POETRY_UNINSTALLS = (
    importlib.util.find_spec("poetry.installation.uninstaller") is not None
)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("wheels")
    return [
        build_wheel(
            root,
            name,
            "1.0",
            payload={
                f"nvidia/{name.replace('-', '_')}/lib/blob.so": b"x" * 1000,
                f"nvidia/{name.replace('-', '_')}/__init__.py": b"",
            },
        )
        for name in (*ORPHANS, KEPT)
    ]


@pytest.fixture
def env(tmp_path: Path, wheels: list[Path]) -> VirtualEnv:
    path = tmp_path / "venv"
    venv.create(path, with_pip=False)
    python = path / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            *map(str, wheels),
        ],
        check=True,
    )
    return VirtualEnv(path)


def installed(env: VirtualEnv) -> set[str]:
    return {dist.metadata["Name"] for dist in env.site_packages.distributions()}


def real_pip(env: VirtualEnv, calls: list[list[str]]) -> object:
    def uninstall(names: Sequence[str]) -> None:
        calls.append(list(names))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(env.python),
                "uninstall",
                "--yes",
                "--quiet",
                *names,
            ],
            check=True,
        )

    return uninstall


def test_orphans_are_removed_and_the_rest_stays(env: VirtualEnv) -> None:
    calls: list[list[str]] = []
    remove_distributions(env, list(ORPHANS), real_pip(env, calls))  # type: ignore[arg-type]
    if POETRY_UNINSTALLS:
        assert calls == []  # no pip process
    else:
        assert calls == [list(ORPHANS)]  # one pip run does it all
    assert installed(env) == {KEPT}
    site = env.site_packages.path
    assert not (site / "nvidia" / "nvidia_cublas_cu12").exists()
    assert not (site / "nvidia" / "nvidia_cudnn_cu12").exists()
    assert (site / "nvidia" / "nvidia_cublas" / "lib" / "blob.so").is_file()
    assert not list(site.glob("nvidia_cudnn_cu12-*.dist-info"))


def test_without_poetrys_uninstaller_pip_removes_them(env: VirtualEnv) -> None:
    calls: list[list[str]] = []
    remove_distributions(
        env,
        [*ORPHANS, "not-installed-here"],
        real_pip(env, calls),  # type: ignore[arg-type]
        pip_only=True,  # as in an older Poetry: nothing in-process
    )
    assert calls == [list(ORPHANS)]  # one pip run, only what is installed
    assert installed(env) == {KEPT}


def test_pip_removes_a_killed_pips_half_written_wheel_with_its_folder(
    env: VirtualEnv,
) -> None:
    """kill -9 of pip after it unpacked a wheel, before it wrote its own RECORD: the
    .dist-info holds the wheel's RECORD, which lists none of pip's INSTALLER and
    REQUESTED. Where pip removes it (Poetry 2.0-2.4, the next run's recovery) it
    left a .dist-info of INSTALLER and REQUESTED: a package with no METADATA,
    which every next run failed on. It goes whole, as Poetry's uninstaller does."""
    site = env.site_packages.path
    (info,) = site.glob("nvidia_cudnn_cu12-*.dist-info")
    pips = ("INSTALLER", "REQUESTED", "direct_url.json")  # pip's own, after the wheel's
    rows = (info / "RECORD").read_text().splitlines(keepends=True)
    wheels = [row for row in rows if row.split(",")[0].rpartition("/")[2] not in pips]
    (info / "RECORD").write_text("".join(wheels))
    (info / "REQUESTED").touch()
    calls: list[list[str]] = []
    remove_distributions(
        env,
        [ORPHANS[1]],
        real_pip(env, calls),  # type: ignore[arg-type]
        pip_only=True,
    )
    assert calls == [[ORPHANS[1]]]
    assert not info.exists()
    assert not (site / "nvidia" / "nvidia_cudnn_cu12").exists()
    assert installed(env) == {ORPHANS[0], KEPT}


def test_family_problems_names_missing_and_changed_files_with_causes_not_bytecode(
    tmp_path: Path,
) -> None:
    import base64
    import hashlib
    from types import SimpleNamespace

    from poetry_torch_cuda.environment.installed import installed_environment
    from poetry_torch_cuda.install.undo import family_problems

    def digest(data: bytes) -> str:
        raw = hashlib.sha256(data).digest()
        return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    info = tmp_path / "demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "lib.so").write_bytes(b"other bytes")
    (info / "RECORD").write_text(
        f"demo/lib.so,{digest(b'library')},7\n"
        f"demo/gone.h,{digest(b'header')},6\n"
        f"demo/__pycache__/x.pyc,{digest(b'pyc')},3\n"
        "demo-1.0.dist-info/RECORD,,\n"
    )

    site = SimpleNamespace(candidates=[tmp_path])
    env = SimpleNamespace(path=tmp_path, site_packages=site, marker_env={})
    held = installed_environment(env)  # type: ignore[arg-type]
    missing = (
        "demo: 1 of its files missing (demo/gone.h)",
        "a removal or an interrupted install left it incomplete",
        "`poetry torch-cuda sync --force` reinstalls the build",
    )
    changed = (
        "demo: 1 of its files changed since install (demo/lib.so)",
        (
            "something wrote over it after the install (an edit, another installer, "
            "a disk)"
        ),
        "`poetry torch-cuda sync --force` reinstalls the build",
    )
    # Without hashes (status) a size other than RECORD's tells a truncated file.
    assert family_problems(env, held, ["demo"]) == [missing, changed]  # type: ignore[arg-type]
    (tmp_path / "demo" / "lib.so").write_bytes(b"LIBRARY")  # same size: hashes tell
    assert family_problems(env, held, ["demo"]) == [missing]  # type: ignore[arg-type]
    assert family_problems(env, held, ["demo"], hashes=True) == [missing, changed]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("locked", "problem", "fix"),
    [
        # poetry.lock locks torch, not the wheel of this build: the install puts
        # the locked build in, and what it needs; `poetry add torch` did nothing
        (
            ["torch"],
            "torch 2.14.1+cu129 requires nvidia-cublas-cu12, which is not installed",
            "run `poetry install`",
        ),
        # nothing locks torch: no install adds what it needs
        (
            [],
            (
                "torch 2.14.1+cu129 requires nvidia-cublas-cu12, which is not installed, "
                "nor locked"
            ),
            "`poetry add torch` locks it",
        ),
    ],
)
def test_a_requirement_not_installed_is_fixed_by_the_install_of_the_locked_build(
    tmp_path: Path, locked: list[str], problem: str, fix: str
) -> None:
    from types import SimpleNamespace

    from poetry_torch_cuda.environment.installed import installed_environment
    from poetry_torch_cuda.install.undo import family_problems

    info = tmp_path / "torch-2.14.1+cu129.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: torch\nVersion: 2.14.1+cu129\n"
        "Requires-Dist: nvidia-cublas-cu12==12.9.1.4\n"
    )
    (info / "RECORD").write_text("torch-2.14.1+cu129.dist-info/METADATA,,\n")
    site = SimpleNamespace(candidates=[tmp_path])
    env = SimpleNamespace(path=tmp_path, site_packages=site, marker_env={})
    held = installed_environment(env)  # type: ignore[arg-type]

    found = family_problems(env, held, ["torch"], False, locked, "run `poetry install`")  # type: ignore[arg-type]

    assert found == [(problem, None, fix)]
