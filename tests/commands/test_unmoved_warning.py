"""The warning of a configured build no install moves says why, truthfully
(in-process: the point is the wording and how often it is said)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cleo.io.buffered_io import BufferedIO
from poetry.utils.env import VirtualEnv

from poetry_torch_cuda.context import RunContext
from poetry_torch_cuda.project.variants import parse_variant
from tests.support.gpus import no_gpu
from tests.support.inprocess import in_project
from tests.support.inprocess import run_inprocess


if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer


def test_a_build_locked_only_for_other_environments_is_not_called_unlocked(
    project_factory: ProjectFactory,
    index: IndexServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch is locked for macOS alone and installed here by hand: every warning
    said "poetry.lock does not lock torch" and advised `poetry add torch`, which
    changes nothing; an install that auto moved on from a failed build said it
    once per try."""
    deps = {"filelock": "*", "torch": "; sys_platform == 'darwin'"}
    project = project_factory(deps, 'variant = "cu130"\npackages = ["torch"]')
    env = no_gpu(tmp_path)
    assert run_inprocess(project, "install", env_extra=env).returncode == 0
    cu129 = f"{index.url}/whl/cu129"
    project.pip("install", "--no-deps", "--index-url", cu129, "torch==2.14.1+cu129")
    said = (
        "torch 2.14.1+cu129 (CUDA 12.9 build) is installed, but poetry.lock locks "
        'torch only for other environments (sys_platform == "darwin"), so no '
        "install puts cu130's build in: widen the markers that leave it out, then "
        "run `poetry lock`"
    )

    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert status.returncode == 1, status
    assert f"Warning: {said}" in status.stdout, status
    # its missing requirement: `poetry install` installs nothing here, so no such fix
    assert "torch 2.14.1+cu129 requires" not in status.stdout, status
    verify = run_inprocess(project, "torch-cuda", "verify", env_extra=env)
    assert "torch 2.14.1+cu129 requires" not in verify.stdout + verify.stderr, verify
    # this torch cannot compute: `sync --force` moves no build nothing locks here
    assert "cannot compute on the CPU" in verify.stdout, verify
    fixes = {
        line.split("fix:")[1].strip()
        for line in verify.stdout.splitlines()
        if "fix:" in line
    }
    assert fixes == {"widen the markers that leave it out, then run `poetry lock`"}
    for args in (("install",), ("torch-cuda", "sync", "--dry-run")):
        result = run_inprocess(project, *args, env_extra=env)
        assert result.returncode == 0, (args, result)
        assert result.stderr.count(said) == 1, (args, result)

    # auto's next try after a failed verification plans again: said once a run
    poetry, config = in_project(project, monkeypatch)
    io = BufferedIO()
    ctx = RunContext(poetry, VirtualEnv(project.venv), io, config)
    for variant in ("cu130", "cu129", "cpu"):
        ctx.reconcile(parse_variant(variant))
    warnings = io.fetch_error()
    assert warnings.count("torch 2.14.1+cu129 (CUDA 12.9 build) is installed") == 1
    assert "locks torch only for other environments" in warnings, warnings

    # a file of it lost: `sync --force` moves no build nothing locks here either
    next(project.venv.glob("lib/python*/site-packages/torch/__init__.py")).unlink()
    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert (
        "Warning: torch: 1 of its files missing (torch/__init__.py): a removal or an "
        "interrupted install left it incomplete; widen the markers that leave it out, "
        "then run `poetry lock`"
    ) in status.stdout, status
