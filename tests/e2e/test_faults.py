"""Faults while the plugin installs a variant: real pip, the real local index.

Every fault is injected while a project that holds the cu129 build moves to
cu130, once through ``poetry install`` (the after-step every build runs) and
once through ``poetry torch-cuda switch``. Each must end with a non-zero exit,
one message that says what failed and what to do, no traceback, the cu129
build still installed, and pyproject.toml and poetry.lock byte-identical.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.catalog import build_universe
from tests.support.fixtures import served
from tests.support.inprocess import run_inprocess
from tests.support.kept import kept_install
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.processes import finish
from tests.support.processes import mounted_tmpfs
from tests.support.processes import paused_at
from tests.support.processes import pip_processes
from tests.support.processes import running
from tests.support.processes import start_poetry
from tests.support.processes import wait_for
from tests.support.wheels import build_wheel


if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from collections.abc import Iterator

    from tests.support.index import IndexServer
    from tests.support.kept import Kept

pytestmark = pytest.mark.e2e

DEPS = {"needs-torch": "*", "torchvision": "*"}
#: Both variants locked in torch-cuda.lock up front, as a team that commits it has
#: them: the faults below then hit the install itself, not the locking first.
CU129 = 'variant = "cu129"\nlock-variants = ["cu129", "cu130"]\n'
CU130_WHEEL = "/whl/cu130/torch/torch-2.14.1+cu130-py3-none-any.whl"
#: The two ways the plugin installs: the after-step of install, and switch.
COMMANDS = {
    "install": (("install",), {"POETRY_TORCH_CUDA_VARIANT": "cu130"}),
    "switch": (("torch-cuda", "switch", "cu130"), {}),
}


@dataclass
class Snapshot:
    """What must survive a failure untouched."""

    installed: dict[str, str]
    pyproject: bytes
    lock: bytes
    torch_cuda_lock: bytes

    @classmethod
    def of(cls, project: Project) -> Snapshot:
        return cls(
            project.installed(),
            project.pyproject.read_bytes(),
            project.lockfile.read_bytes(),
            (project.path / "torch-cuda.lock").read_bytes(),
        )

    def assert_unchanged(self, project: Project) -> None:
        installed = project.installed()
        assert installed["torch"] == "2.14.1+cu129"
        assert installed == self.installed
        assert project.pyproject.read_bytes() == self.pyproject
        assert project.lockfile.read_bytes() == self.lock
        assert (project.path / "torch-cuda.lock").read_bytes() == self.torch_cuda_lock


def assert_one_clear_failure(
    result: subprocess.CompletedProcess[str], *needles: str, exit_code: int = 1
) -> None:
    """Non-zero exit, every needle in stderr, one message, no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == exit_code, describe(result)
    for needle in needles:
        assert needle in result.stderr, describe(result)
    assert "Traceback" not in output
    assert "Stack trace" not in output
    assert result.stderr.count("torch==2.14.1+cu130") == 1, describe(result)


kept_cu129 = kept_install(DEPS, CU129)


@pytest.fixture
def cu129_project(kept_cu129: Kept, index: IndexServer) -> Project:
    return kept_cu129.fresh()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable(index: IndexServer) -> dict[str, str]:
    return {
        "POETRY_TORCH_CUDA_INDEX_URL": f"http://127.0.0.1:{closed_port()}/whl/{{variant}}"
    }


def not_found(index: IndexServer) -> dict[str, str]:
    index.fail_paths["/whl/cu130/"] = 404
    return {}


def server_error(index: IndexServer) -> dict[str, str]:
    index.fail_paths["/whl/cu130/"] = 500
    return {}


def too_slow(index: IndexServer) -> dict[str, str]:
    index.delay_seconds["/whl/cu130/"] = 4
    return {"PIP_TIMEOUT": "1", "PIP_RETRIES": "0", "POETRY_REQUESTS_TIMEOUT": "1"}


def tampered(index: IndexServer) -> dict[str, str]:
    """Same file name, other bytes, the page lists their hash: a compromised mirror."""
    index.tampered_paths.add("/whl/cu130/torch/")
    return {}


#: fault -> (inject it, returning extra environment; what the message must say)
FAULTS: dict[str, tuple[Callable[[IndexServer], dict[str, str]], tuple[str, ...]]] = {
    "unreachable": (
        unreachable,
        ("127.0.0.1:", "refused the connection", "Check the network"),
    ),
    "404": (
        not_found,
        ("the index has no such file (HTTP 404)", "Check the index URL"),
    ),
    "500": (
        server_error,
        ("the index failed with HTTP 500", "Run the command again later"),
    ),
    "timeout": (
        too_slow,
        ("did not answer within 1 s", "POETRY_REQUESTS_TIMEOUT=<seconds>"),
    ),
    "tampered": (
        tampered,
        (
            "torch-2.14.1+cu130-py3-none-any.whl: expected sha256",
            "the index or mirror now serves different bytes for the same file",
        ),
    ),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_index_fault_leaves_everything_as_it_was(
    cu129_project: Project, index: IndexServer, fault: str, command: str
) -> None:
    before = Snapshot.of(cu129_project)
    inject, needles = FAULTS[fault]
    args, env = COMMANDS[command]
    env = {**env, **inject(index)}
    result = cu129_project.run(*args, check=False, env_extra=env, timeout=120)
    # cu130 is locked: the plugin downloads its files before pip runs.
    assert_one_clear_failure(result, "could not install torch==2.14.1+cu130", *needles)
    assert "Nothing changed: the environment still has torch 2.14.1+cu129" in (
        result.stderr
    )
    before.assert_unchanged(cu129_project)


def test_variant_the_index_lacks_names_what_it_has(cu129_project: Project) -> None:
    before = Snapshot.of(cu129_project)
    result = cu129_project.run("torch-cuda", "switch", "cu126", check=False)
    assert result.returncode == 1
    assert "cannot lock torch==2.14.1+cu126 from" in result.stderr
    assert "the index has no build of torch that matches (it offers 2.13.0+cu126)" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    before.assert_unchanged(cu129_project)


def test_a_fault_shows_no_traceback_even_when_verbose(
    cu129_project: Project, index: IndexServer
) -> None:
    index.fail_paths["/whl/cu130/"] = 500
    # In-process (the point is what is printed): cleo renders an uncaught
    # exception, with its stack trace when verbose, exactly as in `poetry`.
    for verbosity in ("-v", "-vv"):
        result = run_inprocess(
            cu129_project,
            "install",
            verbosity,
            env_extra={"POETRY_TORCH_CUDA_VARIANT": "cu130"},
        )
        assert result.returncode == 1
        assert "the index failed with HTTP 500" in result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert "Stack trace" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("command", "signum"),
    [
        ("install", signal.SIGTERM),
        ("install", signal.SIGINT),
        ("switch", signal.SIGTERM),
    ],
)
def test_signal_to_poetry_mid_download_rolls_back(
    cu129_project: Project, index: IndexServer, command: str, signum: int
) -> None:
    """As a CI cancel or a Ctrl-C does: the signal goes to Poetry's process group."""
    before = Snapshot.of(cu129_project)
    index.delay_seconds.update({CU130_WHEEL: 60, f"{CU130_WHEEL}.metadata": 0})
    index.clear_requests()  # locking cu130 read <wheel>.metadata, which matches too
    args, env = COMMANDS[command]
    with running(cu129_project, *args, env_extra=env) as process:
        # The wheel itself, not its PEP 658 metadata file (read while locking).
        wait_for(lambda: CU130_WHEEL in index.requests, 120, "the cu130 wheel's GET")
        os.killpg(process.pid, signum)
        result = finish(process)
    name = signal.Signals(signum).name
    assert_one_clear_failure(
        result,
        # The plugin downloads the locked files itself before pip runs.
        f"{name} interrupted the download of the files for torch==2.14.1+cu130",
        "nothing was installed",
        "Nothing changed: the environment still has torch 2.14.1+cu129",
        exit_code=128 + signum,
    )
    before.assert_unchanged(cu129_project)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_sigterm_while_the_old_cuda_wheels_are_removed_rolls_back(
    cu129_project: Project, tmp_path: Path, command: str
) -> None:
    """pip is done; the CUDA 12 wheels nothing needs any more are being removed."""
    before = Snapshot.of(cu129_project)
    args, env = COMMANDS[command]
    pause, paused = paused_at(
        tmp_path / "pause", "nvidia_cudnn_cu12/__init__.py", "os.remove"
    )
    with running(cu129_project, *args, env_extra={**env, **pause}) as process:
        wait_for(paused.exists, 120, "the removal of nvidia-cudnn-cu12")
        os.killpg(process.pid, signal.SIGTERM)
        result = finish(process)
    assert_one_clear_failure(
        result,
        "SIGTERM interrupted",
        "The environment was put back as it was (torch 2.14.1+cu129",
        exit_code=128 + signal.SIGTERM,
    )
    before.assert_unchanged(cu129_project)


def test_pip_killed_mid_run_is_reported(
    cu129_project: Project, index: IndexServer
) -> None:
    """pip itself dies (OOM killer, kill -9): Poetry says so and exits 1."""
    before = Snapshot.of(cu129_project)
    with running(
        cu129_project, "install", env_extra={"POETRY_TORCH_CUDA_VARIANT": "cu130"}
    ) as process:
        # pip starts once the plugin has the files: kill it as soon as it runs.
        wait_for(lambda: bool(pip_processes(process.pid)), 60, "pip to run")
        for pid in pip_processes(process.pid):
            os.kill(pid, signal.SIGKILL)
        result = finish(process)
    assert_one_clear_failure(
        result, "pip was killed by SIGKILL while installing torch==2.14.1+cu130"
    )
    before.assert_unchanged(cu129_project)


@pytest.fixture
def big_cu130_index(tmp_path: Path) -> Iterator[IndexServer]:
    """The default universe, but cu130's torch unpacks a 4 MB file (4 kB to download)."""
    universe = build_universe(tmp_path / "universe")
    spec = next(
        wheel.spec
        for wheel in universe.wheels
        if wheel.index == "cu130" and wheel.spec.project == "torch"
        if wheel.spec.version == "2.14.1+cu130"
    )
    build_wheel(
        universe.project_dir("torch", "cu130"),
        "torch",
        spec.version,
        spec.requires,
        payload={"torch/_big.bin": bytes(4_000_000)},
    )
    yield from served(universe.root)


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux prlimit")
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_disk_write_failure_mid_install_rolls_back(
    tmp_path: Path, big_cu130_index: IndexServer, command: str
) -> None:
    """A file-size limit (RLIMIT_FSIZE, which binds root too) fails pip's writes
    with EFBIG, as a full disk fails them with ENOSPC, after pip has already
    removed the cu129 torch to put the cu130 one in its place."""
    project = Project.create(tmp_path, big_cu130_index, DEPS, CU129)
    project.run("install")
    before = Snapshot.of(project)
    args, env = COMMANDS[command]
    process = start_poetry(
        project, *args, env_extra=env, wrapper=["prlimit", "--fsize=1000000"]
    )
    result = finish(process, timeout=120)
    assert_one_clear_failure(
        result,
        "pip could not install torch==2.14.1+cu130",
        "pip could not write to disk",
        "File too large",
        "Free space",
        "The environment was put back as it was (torch 2.14.1+cu129",
    )
    # pip installs the local files (--no-deps) in reverse name order: torchvision
    # may already be cu130's when torch fails; the stash puts it back too.
    assert project.installed() == before.installed
    assert project.pyproject.read_bytes() == before.pyproject
    assert project.lockfile.read_bytes() == before.lock


def test_a_full_temporary_directory_says_where_and_what_to_do(
    cu129_project: Project, tmp_path: Path
) -> None:
    """pip's folder of links to the downloaded files goes to TMPDIR; a full one
    (a few kB left, so Python still takes it) failed the install with a bare
    "[Errno 28] No space left on device: '<cache>/….whl' -> '<TMPDIR>/….whl'"."""
    before = Snapshot.of(cu129_project)
    with mounted_tmpfs(tmp_path / "full") as full:
        left = os.statvfs(full)
        with (full / "filler").open("wb") as stream:
            stream.write(bytes(left.f_bavail * left.f_frsize - 8192))
        result = cu129_project.run(
            *COMMANDS["switch"][0], check=False, env_extra={"TMPDIR": str(full)}
        )
    assert_one_clear_failure(
        result,
        f"pip could not write to disk (No space left on device: {full}/poetry-torch-",
        "Free space (or lift the limit) where the environment and the temporary",
        "Nothing changed: the environment still has torch 2.14.1+cu129",
    )
    before.assert_unchanged(cu129_project)


def test_a_file_damaged_after_its_check_is_named_where_it_is(
    cu129_project: Project, tmp_path: Path
) -> None:
    """A locked file of Poetry's artifact cache changes after the plugin checked it,
    before pip reads it: pip refuses it by its hash, and the message named pip's
    link to it in the folder of links, gone by then ("remove it" could not be done)."""
    before = Snapshot.of(cu129_project)
    env, paused = paused_at(tmp_path / "pause", "requirements.txt")
    with running(cu129_project, *COMMANDS["switch"][0], env_extra=env) as process:
        wait_for(paused.exists, 120, "the folder of links to be made")
        cache = Path(cu129_project.env["POETRY_CACHE_DIR"])
        (wheel,) = cache.rglob(CU130_WHEEL.rsplit("/", 1)[1])
        with wheel.open("r+b") as stream:
            stream.write(b"damaged")
        paused.with_name(f"{paused.name}-go").touch()
        result = finish(process)
    assert_one_clear_failure(
        result,
        f"a file on this machine does not match its sha256 ({wheel})",
        "Nothing changed: the environment still has torch 2.14.1+cu129",
    )
    before.assert_unchanged(cu129_project)


def test_two_installs_at_once_take_turns(
    cu129_project: Project, index: IndexServer
) -> None:
    """The second run waits for the first, plans again and finds nothing to do."""
    index.delay_seconds.update({CU130_WHEEL: 3, f"{CU130_WHEEL}.metadata": 0})
    env = {"POETRY_TORCH_CUDA_VARIANT": "cu130"}
    processes = [start_poetry(cu129_project, "install", env_extra=env) for _ in "ab"]
    outputs = [process.communicate(timeout=180) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stdout + stderr
    assert any("waiting for another run to finish" in err for _, err in outputs)
    downloads = [path for path in index.requests if path == CU130_WHEEL]
    assert len(downloads) == 1
    installed = cu129_project.installed()
    assert installed["torch"] == "2.14.1+cu130"
    assert installed["torchvision"] == "0.29.1+cu130"
    site = cu129_project.site_packages()
    assert len(list(site.glob("torch-*.dist-info"))) == 1
    assert len(list(site.glob("torchvision-*.dist-info"))) == 1
    check = cu129_project.pip("check", check=False)
    assert check.returncode == 0, describe(check)
