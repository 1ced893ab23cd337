"""``POETRY_TORCH_CUDA_INDEX_URL`` is a per-run mirror (issue 20 #10).

The locked files are found by name on the mirror's own pages and checked
against torch-cuda.lock's hashes, whatever the mirror's layout; a lock never
records the mirror, and ``lock --check`` fails a lock that holds its URLs.
The mirror here has an Artifactory-like layout of its own and its own copy of
the index; the origin answers 503 for every wheel meanwhile.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.support.index import IndexServer
from tests.support.inprocess import run_inprocess
from tests.support.mirror import ArtifactoryMirror
from tests.support.poetry_project import describe


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.catalog import Universe
    from tests.support.fixtures import ProjectFactory
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e

DEPS = {"needs-torch": "*", "torchvision": "*"}
MIRROR = "POETRY_TORCH_CUDA_INDEX_URL"


@pytest.fixture
def mirror(universe: Universe) -> Iterator[ArtifactoryMirror]:
    with IndexServer(universe.root) as copy, ArtifactoryMirror(copy) as served:
        yield served


@pytest.fixture
def project(project_factory: ProjectFactory) -> Project:
    made = project_factory(DEPS, 'variant = "cu129"\n')
    made.run("lock")
    return made


def test_files_come_from_the_mirrors_own_pages_checked_by_the_locks_hashes(
    project: Project, index: IndexServer, mirror: ArtifactoryMirror
) -> None:
    lock = (project.path / "torch-cuda.lock").read_bytes()
    index.clear_requests()
    index.fail_paths["/whl/cu129/"] = 503
    index.fail_retry_after = "0"
    result = project.run("install", env_extra={MIRROR: mirror.url}, check=False)
    assert result.returncode == 0, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu129"
    fetched = [p for p in mirror.requests if p.endswith(".whl")]
    assert any("/artifactory/cu129/torch/torch-2.14.1" in p for p in fetched)
    assert not [p for p in index.requests if p.startswith("/whl/")]
    assert (project.path / "torch-cuda.lock").read_bytes() == lock


def test_a_lock_is_never_written_through_the_mirror(
    project: Project, mirror: ArtifactoryMirror
) -> None:
    lock = (project.path / "torch-cuda.lock").read_bytes()
    result = project.run(
        "torch-cuda", "lock", env_extra={MIRROR: mirror.url}, check=False
    )
    assert result.returncode == 1, describe(result)
    assert MIRROR in result.stderr
    assert "per-run mirror" in result.stderr
    assert (project.path / "torch-cuda.lock").read_bytes() == lock


def test_lock_check_fails_a_lock_holding_mirror_urls(
    project: Project, mirror: ArtifactoryMirror
) -> None:
    """A lock written through the mirror before this fix: its file URLs are the mirror's."""
    path = project.path / "torch-cuda.lock"
    base = mirror.url.replace("{variant}", "cu129").replace("/api/pypi", "/artifactory")
    base = base.removesuffix("/simple")
    text = re.sub(r'url = "(?!http)([^"]+)"', rf'url = "{base}/\1"', path.read_text())
    path.write_text(text)
    result = run_inprocess(
        project, "torch-cuda", "lock", "--check", env_extra={MIRROR: mirror.url}
    )
    assert result.returncode == 1, result
    assert "mirror" in result.stdout + result.stderr
    # An install through the mirror judges the entry by the same rule: it would
    # lock it again, which a per-run mirror never does; nothing changes.
    installed = project.run("install", env_extra={MIRROR: mirror.url}, check=False)
    assert installed.returncode == 1, describe(installed)
    assert "is locked at the per-run mirror" in installed.stdout, describe(installed)
    assert "never written through the per-run mirror" in installed.stderr
    assert path.read_text() == text


def test_a_blank_mirror_variable_is_no_mirror(
    project: Project, index: IndexServer
) -> None:
    """The configuration ignores a blank ``POETRY_TORCH_CUDA_INDEX_URL``; the install
    took it for a mirror and looked the locked files up on the index's pages, which
    here list another sha256: it failed, telling the user to unset the variable."""
    index.bad_hash_paths.add("/whl/cu129/torch/")
    result = project.run("install", env_extra={MIRROR: "  "}, check=False)
    assert result.returncode == 0, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu129"


def test_the_export_through_the_mirror_installs_from_it(
    tmp_path: Path, project: Project, index: IndexServer, mirror: ArtifactoryMirror
) -> None:
    """The export is installed behind the same mirror (a Docker build): it wrote the
    recorded index, which is not reachable there, for both formats."""
    from tests.e2e.test_export_shapes import pip_installs

    lock = (project.path / "torch-cuda.lock").read_bytes()
    cu129 = mirror.url.replace("{variant}", "cu129")
    for fmt in ("requirements.txt", "pylock.toml"):
        args = ("torch-cuda", "export", "-f", fmt)
        result = run_inprocess(project, *args, env_extra={MIRROR: mirror.url})
        assert result.returncode == 0, result
        assert index.whl_url("cu129") not in result.stdout, result.stdout
        assert cu129 in result.stdout, result.stdout
        index.fail_paths["/whl/cu129/"] = 503
        installed = pip_installs(tmp_path / fmt, result.stdout, fmt)
        index.fail_paths.clear()
        assert installed["torch"] == "2.14.1+cu129", (fmt, installed)
        assert installed["nvidia-cublas-cu12"] == "12.9.1.4", (fmt, installed)
    secret = mirror.url.replace("http://", "http://ci:s3cret@")
    result = run_inprocess(project, "torch-cuda", "export", env_extra={MIRROR: secret})
    # The test's PyPI is another local index: which comes first is by URL (ports).
    assert f"-index-url {cu129}\n" in result.stdout, result
    assert f"# {cu129} needs credentials" in result.stdout, result
    assert "s3cret" not in result.stdout + result.stderr, result
    mirror.backend.bad_hash_paths.add("/whl/cu129/torch/")  # other bytes, same name
    args = ("torch-cuda", "export", "-f", "pylock.toml")
    result = run_inprocess(project, *args, env_extra={MIRROR: mirror.url})
    assert result.returncode == 1, result
    assert f"the mirror {cu129} lists other bytes for" in result.stderr, result
    assert "torch-2.14.1+cu129-py3-none-any.whl (sha256 " in result.stderr, result
    assert (project.path / "torch-cuda.lock").read_bytes() == lock
