"""``POETRY_TORCH_CUDA_VARIANT`` / ``POETRY_TORCH_CUDA_INDEX_URL`` set blank, or to what
pyproject.toml already records, change nothing in any command that reads them
(the configuration alone says which settings this run's variables override)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.inprocess import run_inprocess


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer


@pytest.mark.parametrize("blank", [True, False], ids=["blank", "as-recorded"])
def test_an_override_that_overrides_nothing_changes_nothing(
    project_factory: ProjectFactory, index: IndexServer, blank: bool
) -> None:
    project = project_factory({"torch": "*"}, 'variant = "cu129"')
    assert run_inprocess(project, "lock").returncode == 0
    lock = (project.path / "torch-cuda.lock").read_bytes()
    env = {
        "POETRY_TORCH_CUDA_VARIANT": " " if blank else "cu129",
        "POETRY_TORCH_CUDA_INDEX_URL": " " if blank else f"{index.url}/whl/{{variant}}",
    }
    for args, says in (
        (("torch-cuda", "lock"), "torch-cuda.lock"),
        (("torch-cuda", "lock", "--check"), "torch-cuda.lock matches poetry.lock"),
        (("torch-cuda", "export"), "torch==2.14.1+cu129"),
        (("torch-cuda", "switch", "--dry-run", "cu129"), "would switch to cu129"),
        (("torch-cuda", "status"), "cu129"),
    ):
        result = run_inprocess(project, *args, env_extra=env)
        assert result.returncode == 0, (args, result)
        assert says in result.stdout, (args, result)
        if blank:  # no override (set as recorded: status names where it came from)
            assert "POETRY_TORCH_CUDA" not in result.stdout + result.stderr, result
    assert (project.path / "torch-cuda.lock").read_bytes() == lock


def test_a_packages_entry_spelled_another_way_changes_nothing(
    project_factory: ProjectFactory,
) -> None:
    """`Torch` and `torch`, `torch_audio` and `torch-audio` are one project (PEP 503):
    respelling an entry neither fails `lock --check` nor makes an install re-lock."""
    table = 'variant = "cu129"\npackages = ["torch>=2", "torch_vision"]'
    project = project_factory({"torch": "*"}, table)
    assert run_inprocess(project, "lock").returncode == 0
    lock = (project.path / "torch-cuda.lock").read_bytes()
    text = project.pyproject_text()
    project.write_pyproject(
        text.replace('"torch>=2", "torch_vision"', '"Torch >= 2", "Torch.Vision"')
    )
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 0, check
    assert "torch-cuda.lock matches poetry.lock" in check.stdout, check
    export = run_inprocess(project, "torch-cuda", "export")  # as an install reads it
    assert export.returncode == 0, export
    assert "torch==2.14.1+cu129" in export.stdout, export
    assert (project.path / "torch-cuda.lock").read_bytes() == lock
