"""The per-environment lock: waiting, giving up, read-only environments."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest
from cleo.io.buffered_io import BufferedIO
from cleo.io.null_io import NullIO

from poetry_torch_cuda.environment.envlock import environment_lock
from poetry_torch_cuda.errors import TorchCudaError


if TYPE_CHECKING:
    from pathlib import Path


def test_lock_waits_for_another_process_then_gives_up(tmp_path: Path) -> None:
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")  # a virtualenv
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import fcntl, os, sys, time
                fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
                fcntl.flock(fd, fcntl.LOCK_EX)
                print("locked", flush=True)
                time.sleep(30)
                """
            ),
            str(tmp_path / ".poetry-torch-cuda.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        io = BufferedIO()
        taken = environment_lock(tmp_path, io, wait_seconds=0.3)
        with (
            pytest.raises(TorchCudaError, match="another poetry-torch-cuda run"),
            taken,
        ):
            pytest.fail("the lock was taken twice")
        assert io.fetch_error() == (
            f"torch-cuda: waiting for another run to finish with {tmp_path}\n"
        )
    finally:
        holder.kill()
        holder.wait()
    # Free again once the holder is gone, and re-entrant within one process.
    with environment_lock(tmp_path, io), environment_lock(tmp_path, io):
        pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_lock_falls_back_to_the_temp_dir_for_a_read_only_env(tmp_path: Path) -> None:
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    tmp_path.chmod(0o555)
    try:
        with environment_lock(tmp_path, NullIO()):
            assert not (tmp_path / ".poetry-torch-cuda.lock").exists()
    finally:
        tmp_path.chmod(0o755)


def test_a_lock_that_cannot_be_made_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from poetry_torch_cuda.environment.envlock import state_dir

    system = tmp_path / "usr-local"
    system.mkdir()
    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    folder = state_dir(system)
    # Not even root may add a file to an immutable folder.
    if subprocess.run(["chattr", "+i", str(folder)], check=False).returncode:
        pytest.skip("chattr +i is not allowed here")
    try:
        with (
            pytest.raises(TorchCudaError) as refused,
            environment_lock(system, NullIO()),
        ):
            pass
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    message = str(refused.value)
    assert message.startswith(f"cannot create the lock {folder}")
    assert "nothing was changed" in message and "permissions" in message


# -- atomic pyproject.toml writes ---------------------------------------------


def test_state_files_stay_out_of_a_python_that_is_no_virtualenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from poetry_torch_cuda.environment.envlock import state_dir

    system = tmp_path / "usr-local"  # a Docker image's Python: no pyvenv.cfg
    system.mkdir()
    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    folder = state_dir(system)
    assert folder.is_dir() and tmp_path / "cache" in folder.parents
    with environment_lock(system, NullIO()):
        assert list(system.iterdir()) == []
    (system / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert state_dir(system) == system
