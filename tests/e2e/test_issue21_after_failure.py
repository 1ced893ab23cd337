"""Issue 21 #8 and #11 (status and wording), end to end: real Poetry, pip, venvs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import VERIFY_ON
from tests.support.poetry_project import describe


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory

pytestmark = pytest.mark.e2e

CU129 = 'variant = "cu129"'
#: Nothing listens on port 9 of this machine: the torch index is unreachable.
UNREACHABLE = {"POETRY_TORCH_CUDA_INDEX_URL": "http://127.0.0.1:9/whl/{variant}"}


def test_removing_the_last_configured_package_exits_0(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory({"torch": "*", "filelock": "*"}, CU129)
    project.run("install")
    assert project.installed()["torch"] == "2.14.1+cu129"
    # Verification on, as users have it: its path met the config's values.
    result = project.run("remove", "torch", check=False, env_extra=VERIFY_ON)
    assert result.returncode == 0, describe(result)
    assert "failed unexpectedly" not in result.stderr
    # torch is gone on purpose: no "nothing to verify; `poetry install` installs it"
    assert "verif" not in result.stdout + result.stderr, describe(result)
    installed = project.installed()
    assert "torch" not in installed
    assert "filelock" in installed


def test_after_a_failed_install_the_guards_fail_and_the_advice_fits(
    project_factory: ProjectFactory,
) -> None:
    # The configured index itself is unreachable (a per-run mirror never locks:
    # it is refused before any request, with its own advice).
    unreachable = f'{CU129}\nindex-url = "{UNREACHABLE["POETRY_TORCH_CUDA_INDEX_URL"]}"'
    project = project_factory({"needs-torch": "*", "torchvision": "*"}, unreachable)
    result = project.run("install", check=False)
    assert result.returncode == 1, describe(result)
    installed = project.installed()
    assert "needs-torch" in installed and "torch" not in installed
    message = result.stderr
    assert "Nothing was installed" not in message
    assert "no torch build was installed" in message.lower()
    for step in ("index-url", "source", "POETRY_TORCH_CUDA_INDEX_URL", "proxy"):
        assert step in message, message

    status = run_inprocess(project, "torch-cuda", "status", "--check")
    assert status.returncode == 1, status
    assert "Everything is in line." not in status.stdout
    assert (
        "Warning: torch 2.14.1+cu129 is not installed; run `poetry install`"
        in status.stdout
    )

    # needs-torch, installed, requires torch: sync puts the locked build back, and
    # locks cu129 first, from the index that does not answer: its dry run says so
    dry = run_inprocess(
        project, "torch-cuda", "sync", "--dry-run", env_extra=UNREACHABLE
    )
    real = run_inprocess(project, "torch-cuda", "sync", env_extra=UNREACHABLE)
    assert dry.returncode == real.returncode == 1, (dry, real)
    assert dry.stdout == (
        "torch-cuda: would lock cu129 first (torch-cuda.lock does not exist)\n"
    ), dry
    assert real.stderr.startswith(dry.stderr.splitlines()[0]), (dry, real)
