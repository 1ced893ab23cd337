"""What ``poetry lock`` says of the variant asks the index only where it can matter
(in-process: the point is which requests the lock-time view makes)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from cleo.io.buffered_io import BufferedIO
from poetry.utils.env import SystemEnv

from poetry_torch_cuda import hooks
from poetry_torch_cuda.context import RunContext
from poetry_torch_cuda.index.client import project_client
from poetry_torch_cuda.reports import lock_view
from tests.support.inprocess import in_project
from tests.support.inprocess import run_inprocess
from tests.support.wheels import build_wheel


if TYPE_CHECKING:
    import pytest

    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer


def test_no_index_request_for_a_variant_without_builds_here(
    project_factory: ProjectFactory,
    index: IndexServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = project_factory({"torch": "*"}, 'variant = "cu129"')
    assert run_inprocess(project, "lock").returncode == 0
    poetry, config = in_project(project, monkeypatch)

    def lock_view_on(platform: str) -> BufferedIO:
        io = BufferedIO()
        env = SystemEnv(Path(sys.prefix))
        monkeypatch.setattr(lock_view, "sys", SimpleNamespace(platform=platform))
        ctx = RunContext(poetry, env, io, config)
        ctx.client = project_client(poetry, refresh=True)  # the index, not a cache
        index.clear_requests()
        lock_view.show_lock_view(ctx)
        return io

    linux = lock_view_on("linux")
    assert "torch-cuda: cu129 has torch 2.14.1" in linux.fetch_output()
    assert index.requests  # where the variant has builds, its index is asked

    darwin = lock_view_on("darwin")  # the hooks' warning says it, once
    assert darwin.fetch_output() == ""
    assert darwin.fetch_error() == ""
    assert index.requests == []


def test_torch_left_to_poetry_is_neither_checked_nor_refused(
    project_factory: ProjectFactory,
    index: IndexServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """With torch not in `packages` (Poetry installs it, here from a file), the
    view still asked about torch: its index's build, and a refusal that said
    "torch is in [tool.poetry-torch-cuda] packages"."""
    wheel = build_wheel(tmp_path / "own", "torch", "2.14.1", [])
    deps = {"torch": f" @ {wheel.as_uri()}", "torchvision": "*"}
    project = project_factory(deps, 'variant = "cu129"\npackages = ["torchvision"]')
    off = {"POETRY_TORCH_CUDA_DISABLE": "1"}
    assert run_inprocess(project, "lock", env_extra=off).returncode == 0
    poetry, config = in_project(project, monkeypatch)
    io = BufferedIO()
    ctx = RunContext(poetry, SystemEnv(Path(sys.prefix)), io, config)
    ctx.client = project_client(poetry, refresh=True)

    lock_view.show_lock_view(ctx)

    said = io.fetch_output() + io.fetch_error()
    assert "torch " not in said.replace("the locked torch", ""), said


def test_poetry_lock_and_add_keep_torch_cuda_lock_where_the_variant_has_no_builds(
    project_factory: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On macOS, where Poetry installs PyPI's torch, the hooks stepped aside from
    `poetry lock` and `poetry add` as well: torch-cuda.lock, which the Linux
    machines install from, was not written or followed poetry.lock, and CI's
    `lock --check` failed after every dependency a Mac user added."""
    project = project_factory({"torch": "*"}, 'variant = "cu129"')
    mac = SimpleNamespace(platform="darwin")
    monkeypatch.setattr(hooks, "sys", mac)
    monkeypatch.setattr(lock_view, "sys", mac)
    warning = (
        "torch-cuda: PyTorch publishes no cu129 builds for darwin; Poetry installs "
        "PyPI's default build here."
    )

    for args in (["lock"], ["add", "--lock", "tinyutil"]):
        result = run_inprocess(project, *args)
        assert result.returncode == 0, result
        assert "wrote torch-cuda.lock (cu129: " in result.stdout, result
        said = result.stdout + result.stderr
        assert said.count("PyTorch publishes no cu129 builds") == 1, result
        assert warning in " ".join(result.stderr.split()), result
        check = run_inprocess(project, "torch-cuda", "lock", "--check")
        assert check.returncode == 0, check
