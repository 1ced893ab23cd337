"""The options that select groups and extras, as a user meets them: on every
command that judges what `poetry install` installs, with advice that works, and
parsed as `poetry install` parses them (in-process: logic and wording)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from tests.support.gpus import RTX_4090
from tests.support.gpus import gpu
from tests.support.inprocess import run_inprocess


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fixtures import ProjectFactory
    from tests.support.poetry_project import Project

VISION_IN_DEV = '\n[tool.poetry.group.dev.dependencies]\ntorchvision = "*"\n'


def locked_without_venv(project: Project) -> None:
    assert run_inprocess(project, "lock").returncode == 0
    shutil.rmtree(project.venv, ignore_errors=True)  # `poetry lock` may make one


def test_verify_takes_the_options_an_image_was_installed_with(
    project_factory: ProjectFactory,
) -> None:
    """An image made with `poetry install --without dev` (torchvision in dev)."""
    project = project_factory({"torch": "*"}, 'variant = "cu129"')
    project.write_pyproject(project.pyproject_text() + VISION_IN_DEV)
    locked_without_venv(project)
    missing = "torchvision is not installed, though `poetry install` installs"
    default = run_inprocess(project, "torch-cuda", "verify")
    assert missing in default.stdout.replace("\n", " "), default
    told = run_inprocess(project, "torch-cuda", "verify", "--without", "dev")
    out = told.stdout.replace("\n", " ")
    assert "torchvision is not installed" in out and missing not in out, told
    # The fix names the options, as status does: without them torchvision comes too.
    with_them = "`poetry install` with these options"
    assert f"torch is not installed, though {with_them} installs" in out, told
    assert f"{with_them} (or `poetry torch-cuda sync`) installs it" in out, told
    assert "`poetry install` (or" not in out, told
    bad = run_inprocess(project, "torch-cuda", "verify", "--with", "nope")
    assert bad.returncode == 1 and "Group(s) not found: nope" in bad.stderr, bad


def test_auto_picks_for_torch_in_an_optional_group_as_status_does(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """torch only in an optional group: ``verify`` and ``switch`` resolved auto from
    the default groups, without the locked torch, and named cu132, which the
    index has no torch 2.14.1 for, where ``status``, ``detect`` and ``variants``
    (and an install ``--with gpu``) pick cu130; ``verify`` then told to run
    `poetry install`, which installs no torch here."""
    project = project_factory({"filelock": "*"}, 'variant = "auto"')
    gpu_group = "[tool.poetry.group.gpu]\noptional = true\n"
    torch_in_it = '[tool.poetry.group.gpu.dependencies]\ntorch = "*"\n'
    project.write_pyproject(f"{project.pyproject_text()}\n{gpu_group}\n{torch_in_it}")
    locked_without_venv(project)
    env = gpu(tmp_path, RTX_4090, driver="580.65.06")
    status = run_inprocess(project, "torch-cuda", "status", env_extra=env)
    assert "auto -> cu130" in status.stdout, status
    for options in ((), ("--with", "gpu")):
        verify = run_inprocess(project, "torch-cuda", "verify", *options, env_extra=env)
        assert " cu130 in (no environment yet)" in verify.stdout + verify.stderr, verify
        switch = ("torch-cuda", "switch", "auto", "--dry-run", *options)
        dry = run_inprocess(project, *switch, env_extra=env)
        assert "would switch to auto (auto: cu130)" in dry.stdout, dry
    assert "cu132" not in verify.stdout + verify.stderr + dry.stdout
    # Without the option nothing is to be installed: no `poetry install` fixes that.
    verify = run_inprocess(project, "torch-cuda", "verify", env_extra=env)
    said = " ".join(verify.stdout.split())
    assert (
        "torch is not installed (in the lock, only in group gpu, not selected" in said
    )
    assert "`poetry install` (or" not in said, verify


def test_the_advice_for_a_group_left_out_undoes_the_options_given(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory({"filelock": "*"}, 'variant = "cu129"')
    project.write_pyproject(project.pyproject_text() + VISION_IN_DEV + 'torch = "*"\n')
    locked_without_venv(project)
    for narrowed in (("--without", "dev"), ("--only", "main")):
        status = run_inprocess(project, "torch-cuda", "status", *narrowed)
        out = " ".join(status.stdout.split())
        assert "only in group dev, not selected (--only dev,main)" in out, out
        assert "--with dev" not in out, out
    advised = run_inprocess(project, "torch-cuda", "status", "--only", "dev,main")
    out = " ".join(advised.stdout.split())
    assert "torch not installed (in the lock (group dev), not installed here)" in out
    optional = project.pyproject_text() + "[tool.poetry.group.dev]\noptional = true\n"
    project.write_pyproject(optional)
    locked_without_venv(project)
    status = run_inprocess(project, "torch-cuda", "status")
    out = " ".join(status.stdout.split())
    assert "only in group dev, not selected (--with dev)" in out, out


def test_extras_are_split_as_poetry_install_splits_them(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory({"filelock": "*"}, 'variant = "cu129"')
    project.write_pyproject(
        project.pyproject_text().replace(
            "[tool.poetry]\n",
            '[project.optional-dependencies]\ngpu = ["torch"]\nvision = '
            '["torchvision"]\n\n[tool.poetry]\n',
        )
    )
    locked_without_venv(project)
    poetry = run_inprocess(project, "install", "--dry-run", "-E", "gpu,vision")
    assert poetry.returncode == 1 and "gpu,vision" in poetry.stderr, poetry
    comma = run_inprocess(project, "torch-cuda", "status", "-E", "gpu,vision")
    assert comma.returncode == 1, comma
    assert "Extra(s) not found: gpu,vision" in comma.stderr, comma
    spaced = run_inprocess(project, "torch-cuda", "status", "-E", "gpu vision")
    assert spaced.returncode == 0, spaced
    assert "behind extra" not in spaced.stdout, spaced
