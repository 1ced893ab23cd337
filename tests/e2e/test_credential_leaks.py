"""A password in the index URL never shows: not in output at ``-vvv``, not on a
command line, not in a file.

One project goes through every command that can reach the variant index,
each at ``-vvv``: first against a mirror that demands the password (every
command must really ask it), then with the mirror down (a port nothing
listens on). The credentials come in ``POETRY_TORCH_CUDA_INDEX_URL`` as
``http://user:password@host/...``, so no file has any reason to hold them.
"""

from __future__ import annotations

import base64
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from tests.support.gpus import RTX_4090
from tests.support.gpus import machine_env
from tests.support.gpus import smi_line
from tests.support.poetry_project import describe
from tests.support.processes import run_sampled


if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable

    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e

USER = "mirror-robot"
PASSWORD = "hunter2:Zq@9/x%y-LEAK"
#: The forms a leaked password takes: as is, URL-quoted, in a basic-auth header.
SECRETS = (
    PASSWORD,
    quote(PASSWORD, safe=""),
    base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
)
VARIANT = "POETRY_TORCH_CUDA_VARIANT"
#: ``auto`` on an RTX 4090 whose driver runs CUDA 12.9: it asks about cu129 first.
AUTO = {VARIANT: "auto"}
CU129 = {VARIANT: "cu129"}
CU130 = {VARIANT: "cu130"}
#: pip at its most talkative (the plugin shows pip's output at -v).
PIP_VERBOSE = {"PIP_VERBOSE": "3"}

#: A command's arguments, extra environment and exit code.
Step = tuple[tuple[str, ...], dict[str, str], int]

#: With the mirror up; each asks the
#: mirror: cu129 is installed, then cu130, cu129, cu130; ``auto`` looks for cu129.
UP: list[Step] = [
    (("lock",), {}, 0),
    (("install",), PIP_VERBOSE, 0),
    # cu126 lacks torch 2.14.1: pip fails, then the diagnosis probes the page.
    (("install",), {**PIP_VERBOSE, VARIANT: "cu126"}, 1),
    (("update",), {}, 0),
    (("add", "tinyutil==1.0.0"), CU130, 0),
    (("sync",), {}, 0),
    (("torch-cuda", "switch", "cu130"), {}, 0),
    (("torch-cuda", "sync", "--force"), {}, 0),
    (("torch-cuda", "status"), AUTO, 0),
    (("torch-cuda", "detect"), AUTO, 0),
    (("torch-cuda", "variants"), {}, 0),
]
#: The same commands with the mirror down; each tries it, and cu130 stays. The
#: last three change nothing and run at once.
DOWN: list[Step] = [
    (("lock",), {}, 0),
    (("install",), CU129, 1),
    (("update",), CU129, 1),
    (("add", "tinyutil==1.1.0"), CU129, 1),
    (("sync",), CU129, 1),
    (("torch-cuda", "switch", "cu129"), {}, 1),
    (("torch-cuda", "sync", "--force"), {}, 1),
    (("torch-cuda", "status"), AUTO, 0),
    (("torch-cuda", "detect"), AUTO, 0),
    (("torch-cuda", "variants"), {}, 0),
]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def index_url(port: int) -> str:
    """The mirror's URL template, credentials in it the way users write them."""
    userinfo = f"{quote(USER, safe='')}:{quote(PASSWORD, safe='')}"
    return f"http://{userinfo}@127.0.0.1:{port}/whl/{{variant}}"


def leaks(text: str) -> list[str]:
    """The forms of the password found in ``text``."""
    return [secret for secret in SECRETS if secret in text]


def files_holding_it(root: Path) -> list[Path]:
    """Every file under ``root`` that holds a form of the password."""
    needles = [secret.encode() for secret in SECRETS]
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(needle in data for needle in needles):
                found.append(path)
    return found


def run_step(
    project: Project, step: Step, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run one step at ``-vvv``; check its exit code, output and command lines."""
    args, extra, code = step
    result, command_lines = run_sampled(
        project, *args, "-vvv", env_extra={**env, **extra}
    )
    shown = " ".join(args)
    output = result.stdout + result.stderr
    assert result.returncode == code, describe(result)
    assert not leaks(output), f"`{shown}` printed it:\n{describe(result)}"
    # (pip's own output, on stdout, has tracebacks at PIP_VERBOSE=3)
    assert "Traceback" not in result.stderr, describe(result)
    assert command_lines, f"`{shown}`: no process seen"
    for line in command_lines:
        assert not leaks(" ".join(line)), f"`{shown}` ran {line}"
    return result


def run_all(
    project: Project,
    steps: list[Step],
    env: dict[str, str],
    asked: Callable[[str, str], None],
) -> None:
    """Run the steps one after another; after each, no file holds the password."""
    for step in steps:
        # The plugin keeps index pages for 10 minutes; each command must ask.
        cache = Path(project.env["POETRY_CACHE_DIR"])
        shutil.rmtree(cache / "poetry-torch-cuda", ignore_errors=True)
        # Locked files come from Poetry's artifact cache once fetched: empty it
        # so that every step really asks the mirror.
        shutil.rmtree(cache / "artifacts", ignore_errors=True)
        result = run_step(project, step, env)
        shown = " ".join(step[0])
        assert not files_holding_it(project.path.parent), f"after `{shown}`"
        asked(shown, result.stdout + result.stderr)


def run_together(
    project: Project,
    steps: list[Step],
    env: dict[str, str],
    asked: Callable[[str, str], None],
) -> None:
    """Run steps that change nothing all at once (their waits for the index overlap)."""
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        results = list(pool.map(lambda step: run_step(project, step, env), steps))
    assert not files_holding_it(project.path.parent)
    for step, result in zip(steps, results):
        asked(" ".join(step[0]), result.stdout + result.stderr)


@pytest.fixture
def project(project_factory: ProjectFactory, index: IndexServer) -> Project:
    index.require_auth = (USER, PASSWORD)
    index.auth_paths = ("/whl/",)
    # Every step must ask the mirror: no switch back from the build kept in the env.
    return project_factory(
        {"needs-torch": "*", "torchvision": "*"},
        'variant = "cu129"\nkeep-previous-build = false\n',
    )


def test_no_command_shows_the_password_mirror_up_or_down(
    project: Project, index: IndexServer, tmp_path: Path
) -> None:
    gpu = machine_env(tmp_path / "machine", nvidia_smi=smi_line("575.51.03", *RTX_4090))
    authorized = "Basic " + SECRETS[2]

    def asked_the_mirror(shown: str, output: str) -> None:
        records = [r for r in index.records if r.path.startswith("/whl/")]
        assert records, f"`{shown}` never asked the mirror"
        assert {r.authorization for r in records} == {authorized}, shown
        assert all(r.status != 401 for r in records), shown
        index.clear_requests()

    up = {**gpu, "POETRY_TORCH_CUDA_INDEX_URL": index_url(index.port)}
    run_all(project, UP, up, asked_the_mirror)
    assert project.installed()["torch"] == "2.14.1+cu130"

    port = closed_port()

    def tried_the_mirror(shown: str, output: str) -> None:
        assert f"127.0.0.1:{port}" in output, f"`{shown}` never tried the mirror"

    down = {**gpu, "POETRY_TORCH_CUDA_INDEX_URL": index_url(port)}
    run_all(project, DOWN[:-3], down, tried_the_mirror)
    run_together(project, DOWN[-3:], down, tried_the_mirror)
    assert project.installed()["torch"] == "2.14.1+cu130"
