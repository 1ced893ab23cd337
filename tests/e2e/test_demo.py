"""``nox -s demo``: the project stays to be explored, output in order, ``--help``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import demo
from tests.support.poetry_project import describe
from tests.support.processes import captured


pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, "-m", "tests.support.demo"]


def test_help_explains_the_options_and_runs_nothing(tmp_path: Path) -> None:
    result = captured([*DEMO, "--help"], cwd=ROOT)
    assert result.returncode == 0, describe(result)
    assert "--keep DIR" in result.stdout
    assert "--serve" in result.stdout
    assert "$ poetry" not in result.stdout


def test_the_default_folder_is_not_the_nox_session_virtualenv() -> None:
    assert demo.DEFAULT_DIR.parent == ROOT / ".nox"
    assert demo.DEFAULT_DIR.name != "demo"  # nox -s demo's own virtualenv


def test_a_directory_that_is_not_a_demo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not empty and holds no earlier demo"):
        demo.main(["--keep", str(tmp_path)])
    assert (tmp_path / "precious.txt").read_text() == "mine"


def test_the_served_demo_leaves_a_project_whose_commands_work(tmp_path: Path) -> None:
    kept = tmp_path / "demo"
    process = subprocess.Popen(
        [*DEMO, "--keep", str(kept), "--serve"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("Serving the local indexes"):
                break
        output = "\n".join(lines)
        assert lines and lines[-1].startswith("Serving the local indexes"), output
        assert "demo finished: OK" in output
        # Each command's output where it happened: Poetry's venv line comes
        # before the plugin's line of the same `poetry install`.
        assert output.index("Creating virtualenv") < output.index(
            "torch-cuda: cu130: installed torch 2.14.1+cu130"
        )
        assert f"The project stays in {kept.resolve() / 'project'}" in output
        assert "    poetry torch-cuda status" in output
        # Verification is on, as for a user, and the demo's builds pass it ...
        assert "POETRY_TORCH_CUDA_VERIFY" not in (kept / "env.sh").read_text()
        assert "torch-cuda: verified torch 2.14.1+cu130" in output
        assert "torch-cuda: verified torch 2.14.1+cu126" in output
        # ... until the build is damaged: verify fails, sync --force repairs it.
        damaged = output[output.index("$ rm .venv/") :]
        assert "$ poetry torch-cuda verify" in damaged
        assert (
            "FAIL torch 2.14.1+cu126 does not import: ImportError: libc10.so" in damaged
        )
        repaired = damaged[damaged.index("$ poetry torch-cuda sync --force") :]
        assert "torch-cuda: verified torch 2.14.1+cu126" in repaired

        # As a user would: source env.sh in a shell of their own, then run poetry.
        status = captured(
            [
                "sh",
                "-c",
                ". ./env.sh && cd project && poetry --no-ansi torch-cuda status",
            ],
            cwd=kept,
            env={**os.environ, "VIRTUAL_ENV": str(tmp_path / "some-other-venv")},
            timeout=120,
        )
        assert status.returncode == 0, describe(status)
        assert "2.14.1+cu126" in status.stdout
        verify = captured(
            [
                "sh",
                "-c",
                ". ./env.sh && cd project && poetry --no-ansi torch-cuda verify",
            ],
            cwd=kept,
            env={**os.environ, "VIRTUAL_ENV": str(tmp_path / "some-other-venv")},
            timeout=120,
        )
        assert verify.returncode == 0, describe(verify)
        assert "cu126 build verified" in verify.stdout
    finally:  # never hide the failure above behind a timeout here
        process.send_signal(signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            rest, _ = process.communicate()
            rest += "\n[the demo did not stop within 120 s of Ctrl-C]"
    assert process.returncode == 0, rest
    assert "Stopped the local indexes." in rest
