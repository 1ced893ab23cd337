"""Ready to publish: what ``python -m build`` puts in the sdist and the wheel, and ``twine check``.

The sdist carries what a packager needs to rebuild and test the plugin (README,
CHANGELOG, LICENSE, the tests and the files they read); the wheel carries the
package only. Both are
built offline (``--no-isolation``: the build backend is the poetry-core that
the test environment already has).
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import tomlkit

from tests.support.poetry_project import describe
from tests.support.poetry_project import isolated_env
from tests.support.processes import captured


pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build", reason="the test requirements install build")
    out = tmp_path_factory.mktemp("dist")
    result = captured(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        cwd=ROOT,
        env=isolated_env(tmp_path_factory.mktemp("build-home")),
        timeout=600,
    )
    assert result.returncode == 0, describe(result)
    return out


def _sdist_names(dist: Path) -> list[str]:
    (sdist,) = dist.glob("poetry_torch_cuda-*.tar.gz")
    with tarfile.open(sdist) as archive:
        # Drop the "poetry_torch_cuda-0.1.0/" prefix.
        return [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]


def _wheel_names(dist: Path) -> list[str]:
    (wheel,) = dist.glob("poetry_torch_cuda-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_sdist_has_the_docs_the_license_and_the_tests(dist: Path) -> None:
    names = set(_sdist_names(dist))
    for needed in (
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "pyproject.toml",
        "src/poetry_torch_cuda/__init__.py",
        "src/poetry_torch_cuda/py.typed",
        "tests/conftest.py",
        "tests/e2e/test_publish.py",
        "tests/support/index.py",
    ):
        assert needed in names, f"the sdist lacks {needed}: {sorted(names)}"
    assert not [
        name for name in names if "__pycache__" in name or name.endswith(".pyc")
    ]


def test_the_tests_run_from_the_unpacked_sdist(dist: Path, tmp_path: Path) -> None:
    """What a packager does with the sdist: the tests that read files beside them
    (ARCHITECTURE.md, the docs, the pre-commit hooks, the benchmark's timed names)
    find them there."""
    (sdist,) = dist.glob("poetry_torch_cuda-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (root,) = tmp_path.iterdir()
    result = captured(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            "tests/unit/test_architecture_doc.py",
            "tests/e2e/test_pre_commit.py::test_the_hooks_are_declared_as_poetrys_own",
            "tests/e2e/test_readme.py::test_markers_are_found",
        ],
        cwd=root,
        env=isolated_env(tmp_path),
        timeout=300,
    )
    assert result.returncode == 0, describe(result)
    assert "docs/how-it-works.md" in _sdist_names(dist)


def test_the_wheel_has_the_package_only(dist: Path) -> None:
    names = _wheel_names(dist)
    outside = [
        name
        for name in names
        if not name.startswith("poetry_torch_cuda/")
        and not name.startswith("poetry_torch_cuda-")
    ]
    assert outside == [], f"the wheel carries more than the package: {outside}"
    assert "poetry_torch_cuda/py.typed" in names
    assert not [
        name for name in names if "__pycache__" in name or name.endswith(".pyc")
    ]
    assert not [name for name in names if name.startswith(("tests/", "docs/"))]


def test_the_metadata_says_where_the_project_lives(dist: Path) -> None:
    (wheel,) = dist.glob("poetry_torch_cuda-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        (path,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(path).decode())
    urls = {value.split(",", 1)[0] for value in metadata.get_all("Project-URL") or []}
    assert {"Homepage", "Source", "Issues", "Changelog", "Documentation"} <= urls
    classifiers = metadata.get_all("Classifier") or []
    # PyPI refuses an upload that names a classifier it does not know; its list is
    # trove-classifiers' (a dependency of Poetry, whose `poetry check` reads it too).
    known = pytest.importorskip("trove_classifiers").classifiers
    assert [c for c in classifiers if c not in known] == []
    assert "Environment :: Plugins" in classifiers
    assert "Programming Language :: Python :: 3.9" in classifiers
    assert "Programming Language :: Python :: 3.13" in classifiers
    assert metadata["Description-Content-Type"] == "text/markdown"


def test_twine_check_passes(dist: Path) -> None:
    pytest.importorskip("twine", reason="the test requirements install twine")
    files = sorted(str(path) for path in dist.glob("poetry_torch_cuda-*"))
    result = captured(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        env=isolated_env(dist.parent / "twine-home"),
        timeout=300,
    )
    assert result.returncode == 0, describe(result)
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_a_release_sets_the_version_in_one_place() -> None:
    """The README's release steps set pyproject.toml's version: no copy of it in the
    package may stay behind (``__version__ = "0.1.0"`` in a 0.2.0 release)."""
    settings = tomlkit.parse((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    version = settings["project"]["version"]
    copies = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "src").rglob("*.py")
        if f'"{version}"' in path.read_text(encoding="utf-8")
    ]
    assert copies == []
