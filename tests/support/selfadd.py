"""A local index holding Poetry's own dependency closure and the plugin's wheel.

What ``poetry self add``, ``[tool.poetry.requires-plugins]``, a pre-commit hook
environment and a fresh Poetry installed "pipx-like" need to resolve, served on
127.0.0.1 so those tests run offline:

- :func:`closure` downloads, once per Poetry release and Python, the wheels of
  Poetry's closure (every platform's: Poetry locks ``self`` for all of them, so
  ``xattr`` for macOS and ``pywin32-ctypes`` for Windows must be there too) into
  ``~/.cache/ptc-selfadd`` (``PTC_SELFADD_CACHE`` overrides), where it survives
  runs (a platform added here tops up a folder downloaded before). That download
  is the one network access; without PyPI the tests skip.
- :func:`plugin_wheel` builds this checkout's wheel with ``poetry build``.
- :func:`index_root` lays both out as the ``pypi`` tree :class:`IndexServer` serves.
- :func:`fresh_poetry` installs a Poetry into a venv of its own from that index.
"""

from __future__ import annotations

import ensurepip
import fcntl
import os
import sys
import venv
import zipfile
from email.parser import Parser
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from tests.support.poetry_project import describe
from tests.support.poetry_project import isolated_env
from tests.support.poetry_project import poetry_executable
from tests.support.processes import captured


if TYPE_CHECKING:
    from collections.abc import Iterable

    from tests.support.index import IndexServer


__all__ = [
    "POETRY",
    "closure",
    "fresh_poetry",
    "index_root",
    "pip_install",
    "plugin_wheel",
    "poetry_requirements",
]

ROOT = Path(__file__).resolve().parents[2]
#: The Poetry release under test: the one next to this Python.
POETRY = version("poetry")
#: What pip prints when it cannot reach PyPI.
OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "No route")
#: The platforms Poetry locks its own environment for (sys_platform, os_name, system).
#: Pyodide too: on Python >= 3.12 the httpx2 that Poetry's pbs-installer[download]
#: brings requires httpx2-jsfetch there, and Poetry's resolver asks for it.
PLATFORMS = (
    ("linux", "posix", "Linux"),
    ("darwin", "posix", "Darwin"),
    ("win32", "nt", "Windows"),
    ("emscripten", "posix", "Emscripten"),
)
#: Wheel tags for a package that has no wheel for this machine (macOS/Windows/Pyodide
#: only; pure-Python wheels match any of them).
OTHER_TAGS = (
    "win_amd64",
    "macosx_11_0_arm64",
    "macosx_10_9_x86_64",
    "macosx_10_9_universal2",
)


def poetry_requirements() -> list[str]:
    """Poetry under test, and poetry-plugin-export >= 1.10 where that Poetry takes it."""
    requirements = [f"poetry=={POETRY}"]
    if Version(POETRY) >= Version("2.3") and sys.version_info >= (3, 10):
        requirements.append("poetry-plugin-export>=1.10")
    return requirements


def _cache() -> Path:
    base = os.environ.get("PTC_SELFADD_CACHE") or Path.home() / ".cache" / "ptc-selfadd"
    tag = f"poetry-{POETRY}-py{sys.version_info[0]}{sys.version_info[1]}"
    return Path(base) / tag


def _pip_download(directory: Path, *args: str) -> None:
    result = captured(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--only-binary=:all:",
            "-d",
            str(directory),
            *args,
        ],
        env=isolated_env(directory.parent / "pip-home"),
        timeout=900,
    )
    if result.returncode != 0:
        if any(sign in result.stdout + result.stderr for sign in OFFLINE):
            pytest.skip(
                "PyPI is not reachable: Poetry's closure cannot be downloaded once"
            )
        raise AssertionError(describe(result))


def _requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [
            n
            for n in archive.namelist()
            if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
        ]
        metadata = Parser().parsestr(
            archive.read(name).decode("utf-8"), headersonly=True
        )
    return [Requirement(text) for text in metadata.get_all("Requires-Dist") or []]


def _needed_elsewhere(wheels: Iterable[Path]) -> list[str]:
    """Requirements of ``wheels`` another platform needs that no wheel here satisfies."""
    have: dict[str, list[Version]] = {}
    for wheel in wheels:
        name, wheel_version, _, _ = parse_wheel_filename(wheel.name)
        have.setdefault(name, []).append(wheel_version)
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    missing: set[str] = set()
    for wheel in wheels:
        for requirement in _requirements(wheel):
            name = canonicalize_name(requirement.name)
            for sys_platform, os_name, system in PLATFORMS:
                environment = {
                    "sys_platform": sys_platform,
                    "os_name": os_name,
                    "platform_system": system,
                    "python_version": python,
                    "extra": "",
                }
                marker = requirement.marker or Marker("python_version >= '0'")
                if not marker.evaluate(environment):
                    continue
                if not any(
                    requirement.specifier.contains(v, prereleases=True)
                    for v in have.get(name, [])
                ):
                    missing.add(f"{requirement.name}{requirement.specifier}")
    return sorted(missing)


def closure() -> Path:
    """The cached wheel folder of Poetry's closure (downloaded on first use)."""
    directory = _cache()
    done = directory / ".complete"
    if done.exists() and not _needed_elsewhere(sorted(directory.glob("*.whl"))):
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    with (directory.parent / f"{directory.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers take turns
        if not done.exists():
            _pip_download(directory, *poetry_requirements())
        for _ in range(5):
            missing = _needed_elsewhere(sorted(directory.glob("*.whl")))
            if not missing:
                break
            python = f"{sys.version_info[0]}{sys.version_info[1]}"
            tags = [arg for tag in OTHER_TAGS for arg in ("--platform", tag)]
            _pip_download(
                directory, "--no-deps", "--python-version", python, *tags, *missing
            )
        done.write_text("pip download finished\n")
    return directory


def plugin_wheel(out: Path) -> Path:
    """This checkout's wheel, built into ``out`` with ``poetry build``."""
    build = captured(
        [str(poetry_executable()), "build", "--format", "wheel", "--output", str(out)],
        cwd=ROOT,
        env=isolated_env(out),
        timeout=300,
    )
    assert build.returncode == 0, describe(build)
    (wheel,) = out.glob("poetry_torch_cuda-*-py3-none-any.whl")
    return wheel


def index_root(root: Path, *wheel_folders: Path, wheels: Iterable[Path] = ()) -> Path:
    """``root/pypi/<project>/<wheel>`` links to every wheel given: an IndexServer tree.

    The pip and setuptools a new venv gets (ensurepip's) are always added: Poetry
    pins what its own environment holds when it resolves plugins for it.
    """
    folders = [*wheel_folders, Path(ensurepip.__file__).parent / "_bundled"]
    found = [*wheels, *(w for folder in folders for w in folder.glob("*.whl"))]
    for wheel in found:
        name = parse_wheel_filename(wheel.name)[0]
        target = root / "pypi" / name / wheel.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(wheel.resolve())
    (root / "whl").mkdir(parents=True, exist_ok=True)
    return root


def fresh_poetry(directory: Path, index: IndexServer, *requirements: str) -> Path:
    """A venv in ``directory`` holding Poetry (and ``requirements``) from ``index`` only.

    As pipx installs Poetry: its own virtualenv, nothing else in it. Returns
    the venv's ``poetry`` executable.
    """
    venv.EnvBuilder(with_pip=True).create(directory)
    return pip_install(directory, index, f"poetry=={POETRY}", *requirements)


def pip_install(directory: Path, index: IndexServer, *requirements: str) -> Path:
    """Install ``requirements`` from ``index`` only into the venv :func:`fresh_poetry`
    made in ``directory``; returns its ``poetry`` executable."""
    install = captured(
        [
            str(directory / "bin" / "python"),
            *("-m", "pip", "install", "--index-url", index.pypi_url),
            *requirements,
        ],
        env=isolated_env(directory.parent / "pip-home"),
        timeout=900,
    )
    assert install.returncode == 0, describe(install)
    return directory / "bin" / "poetry"
