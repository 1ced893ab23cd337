"""Where the variant indexes come from: a source name that names none, and plain
http to another host, are refused before anything runs, with the fix in the
message (in-process: the point is the refusal and its wording; moved from
tests/e2e/test_credentials.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.inprocess import run_inprocess
from tests.support.untouched import untouched
from tests.support.wheels import build_wheel


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer

DEPS = {"needs-torch": "*", "torchvision": "*"}


def test_unknown_source_names_the_known_ones(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    project = project_factory(DEPS)
    project.write_pyproject(
        project.pyproject_text()
        + '\n[[tool.poetry.source]]\nname = "torch-mirror"\n'
        + f'url = "{index.url}/whl/{{variant}}"\npriority = "explicit"\n'
        + '\n[tool.poetry-torch-cuda]\nvariant = "cu129"\nsource = "torch-mirorr"\n'
    )
    with untouched(project):
        result = run_inprocess(project, "install")
    assert result.returncode == 1
    assert (
        "[tool.poetry-torch-cuda] source = 'torch-mirorr' names no "
        "[[tool.poetry.source]] with a url; known sources: 'fakepypi', "
        "'torch-mirror'." in result.stderr
    )
    assert not project.venv.exists()
    assert result.started == []


@pytest.mark.parametrize(
    "table",
    [
        'variant = "cu129"\nindex-url = "http://torch-mirror.example/whl/{variant}"\n',
        'variant = "cu129"\nsource = "insecure"\n',
    ],
)
def test_plain_http_to_another_host_needs_an_explicit_opt_in(
    project_factory: ProjectFactory, table: str
) -> None:
    project = project_factory(DEPS)
    base = project.pyproject_text() + (
        '\n[[tool.poetry.source]]\nname = "insecure"\n'
        'url = "http://torch-mirror.example/whl/{variant}"\npriority = "explicit"\n'
    )
    project.write_pyproject(base + f"\n[tool.poetry-torch-cuda]\n{table}")
    # --dry-run: the opted-in mirror does not exist, so nothing may fetch from it.
    refused = run_inprocess(project, "install", "--dry-run")
    assert refused.returncode == 1
    assert "uses plain http to torch-mirror.example" in refused.stderr
    assert "allow-insecure-http = true" in refused.stderr
    assert not project.venv.exists()
    project.write_pyproject(
        base + f"\n[tool.poetry-torch-cuda]\n{table}allow-insecure-http = true\n"
    )
    accepted = run_inprocess(project, "install", "--dry-run")
    assert accepted.returncode == 0, accepted
    assert "plain http" not in accepted.stderr


def test_a_configured_package_poetry_takes_from_a_file_is_refused_everywhere(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """A custom torchvision build poetry.lock takes from a file was replaced by the
    variant index's +cu129 build while status said all was fine: every path refuses,
    naming the package, its source and the two ways on; `status` too, with or
    without --check, as it refuses an invalid table (it warned, exit 0)."""
    wheel = build_wheel(tmp_path / "own", "torchvision", "0.29.1", ["torch==2.14.1"])
    deps = {"torch": "*", "torchvision": f" @ {wheel.as_uri()}"}
    project = project_factory(deps, 'variant = "cu129"\n')
    off = {"POETRY_TORCH_CUDA_DISABLE": "1"}
    assert run_inprocess(project, "lock", env_extra=off).returncode == 0
    said = (
        "torchvision is in [tool.poetry-torch-cuda] packages, but poetry.lock takes "
        "it from file "
    )
    for args in (
        ("lock",),
        ("torch-cuda", "lock"),
        ("torch-cuda", "export", "--variant", "cu129"),
        ("torch-cuda", "switch", "cu129", "--dry-run"),
        ("install",),
        ("torch-cuda", "status"),
        ("torch-cuda", "status", "--check"),
    ):
        result = run_inprocess(project, *args)
        assert result.returncode == 1, (args, result)
        assert said in result.stderr, (args, result)
        assert wheel.name in result.stderr
        assert "remove it from `packages` to keep that build" in result.stderr
        assert "or depend on it from the index" in result.stderr
    assert not (project.path / "torch-cuda.lock").exists()
    assert "torchvision" not in project.installed()
    # The first way on: left out of `packages`, that build is Poetry's, unwarned.
    table = 'variant = "cu129"\n'
    text = project.pyproject_text().replace(table, f'{table}packages = ["torch"]\n')
    project.write_pyproject(text)
    kept = run_inprocess(project, "install")
    assert kept.returncode == 0, kept
    assert project.installed()["torchvision"] == "0.29.1", kept
    assert project.installed()["torch"] == "2.14.1+cu129", kept
    assert "left to Poetry" not in kept.stderr, kept
    # The second way on: from the index, it is the variant's build again.
    project.write_pyproject(text.replace('packages = ["torch"]\n', ""))
    indexed = run_inprocess(project, "add", "torchvision==0.29.1")
    assert indexed.returncode == 0, indexed
    assert project.installed()["torchvision"] == "0.29.1+cu129", indexed
