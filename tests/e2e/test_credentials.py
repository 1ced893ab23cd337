"""Private mirrors: a Poetry source as the index, Poetry's credentials, no leaks.

The local index demands HTTP basic auth for everything under /whl/ (the
"mirror"); the fake PyPI under /simple/ stays open, so Poetry's own work
needs no credentials and every authenticated request is the plugin's.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import time
from importlib.metadata import version
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
from packaging.version import Version

from tests.support.client import authenticators_made
from tests.support.inprocess import run_inprocess
from tests.support.processes import cmdline
from tests.support.processes import descendants
from tests.support.processes import environ
from tests.support.processes import pip_processes
from tests.support.processes import start_poetry
from tests.support.processes import wait_for


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e

USER = "mirror-robot"
PASSWORD = "s3cr3t:P@ss/w0rd%"
TOKEN = "tok-5f0c2b9e7d"
DEPS = {"needs-torch": "*", "torchvision": "*"}
CU129_WHEEL = "/whl/cu129/torch/torch-2.14.1+cu129-py3-none-any.whl"
ENV_USER = "POETRY_HTTP_BASIC_TORCH_MIRROR_USERNAME"
ENV_PASSWORD = "POETRY_HTTP_BASIC_TORCH_MIRROR_PASSWORD"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def assert_no_secret(text: str, *secrets: str) -> None:
    """Neither a secret, nor its URL-quoted or base64 forms, nor ``user:`` appear."""
    for secret in secrets:
        assert secret not in text
        assert quote(secret, safe="") not in text
    assert f"{USER}:" not in text
    assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in text


def mirror_project(
    project_factory: ProjectFactory, index: IndexServer, table: str
) -> Project:
    """A project with a ``torch-mirror`` source (explicit) and ``table`` as its config."""
    project = project_factory(DEPS)
    project.write_pyproject(
        project.pyproject_text()
        + "\n[[tool.poetry.source]]\n"
        + 'name = "torch-mirror"\n'
        + f'url = "{index.url}/whl/{{variant}}"\n'
        + 'priority = "explicit"\n'
        + f"\n[tool.poetry-torch-cuda]\n{table}"
    )
    return project


@pytest.fixture
def mirror(index: IndexServer) -> IndexServer:
    index.require_auth = (USER, PASSWORD)
    index.auth_paths = ("/whl/",)
    return index


@pytest.fixture
def source_project(project_factory: ProjectFactory, mirror: IndexServer) -> Project:
    return mirror_project(
        project_factory, mirror, 'variant = "cu129"\nsource = "torch-mirror"\n'
    )


def whl_authorizations(index: IndexServer) -> set[str | None]:
    return {r.authorization for r in index.records if r.path.startswith("/whl/")}


def test_source_credentials_from_poetry_environment_variables(
    source_project: Project, mirror: IndexServer
) -> None:
    result = source_project.run(
        "install", "-vvv", env_extra={ENV_USER: USER, ENV_PASSWORD: PASSWORD}
    )
    assert source_project.installed()["torch"] == "2.14.1+cu129"
    assert whl_authorizations(mirror) == {basic(USER, PASSWORD)}
    assert "[Errno" not in result.stderr
    assert_no_secret(result.stdout + result.stderr, PASSWORD)


def test_source_credentials_from_poetry_config(
    source_project: Project, mirror: IndexServer
) -> None:
    source_project.run("config", "http-basic.torch-mirror", USER, PASSWORD)
    result = source_project.run("install", "-vvv")
    assert source_project.installed()["torch"] == "2.14.1+cu129"
    assert whl_authorizations(mirror) == {basic(USER, PASSWORD)}
    assert_no_secret(result.stdout + result.stderr, PASSWORD)


@pytest.mark.skipif(
    Version(version("poetry")) < Version("2.1"),
    reason="Poetry 2.0 ignores an http-basic password that has no user name",
)
def test_token_without_user_name(source_project: Project, mirror: IndexServer) -> None:
    mirror.require_auth = ("", TOKEN)
    result = source_project.run("install", "-vvv", env_extra={ENV_PASSWORD: TOKEN})
    assert source_project.installed()["torch"] == "2.14.1+cu129"
    assert whl_authorizations(mirror) == {basic("", TOKEN)}
    assert_no_secret(result.stdout + result.stderr, TOKEN)


@pytest.mark.parametrize("verbosity", [(), ("-vvv",)])
def test_wrong_password_fails_cleanly_and_never_shows_it(
    source_project: Project, verbosity: tuple[str, ...]
) -> None:
    wrong = "wrong-" + PASSWORD
    result = source_project.run(
        "install",
        *verbosity,
        check=False,
        env_extra={ENV_USER: USER, ENV_PASSWORD: wrong},
    )
    assert result.returncode == 1
    assert "the index refused access (HTTP 401)" in result.stderr
    assert "poetry config http-basic.torch-mirror <user> <password>" in result.stderr
    assert "POETRY_HTTP_BASIC_TORCH_MIRROR_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr
    assert "torch" not in source_project.installed()
    assert_no_secret(result.stdout + result.stderr, wrong, PASSWORD)


def test_missing_credentials_say_how_to_give_them(
    project_factory: ProjectFactory, mirror: IndexServer
) -> None:
    project = project_factory(DEPS, 'variant = "cu129"\n')
    result = project.run("install", check=False)
    assert result.returncode == 1
    assert "the index refused access (HTTP 401)" in result.stderr
    assert 'source = "<name>"' in result.stderr


def test_password_never_on_a_command_line(
    source_project: Project, mirror: IndexServer
) -> None:
    """Other users can read /proc/<pid>/cmdline; only the owner reads environ.

    The plugin fetches the locked files itself (Poetry's HTTP stack, in its own
    process), so pip gets local files and no credentials at all.
    """
    mirror.delay_seconds.update({CU129_WHEEL: 2, f"{CU129_WHEEL}.metadata": 0})
    process = start_poetry(
        source_project,
        "install",
        env_extra={ENV_USER: USER, ENV_PASSWORD: PASSWORD},
    )
    pip_environments: list[dict[str, str]] = []
    try:
        wait_for(lambda: CU129_WHEEL in mirror.requests, 120, "the wheel's GET")
        while process.poll() is None:
            for pid in [process.pid, *descendants(process.pid)]:
                with contextlib.suppress(OSError):
                    assert_no_secret(" ".join(cmdline(pid)), PASSWORD)
            for pip in pip_processes(process.pid):
                with contextlib.suppress(OSError):
                    pip_environments.append(environ(pip))
            time.sleep(0.01)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=60)
    assert process.returncode == 0
    assert source_project.installed()["torch"] == "2.14.1+cu129"
    assert whl_authorizations(mirror) == {basic(USER, PASSWORD)}
    assert pip_environments, "pip was never seen running"
    for pip_environment in pip_environments:
        assert "PIP_INDEX_URL" not in pip_environment
        # What the plugin gives pip (Poetry's own variables are the user's, inherited).
        given = [v for k, v in pip_environment.items() if k.startswith("PIP_")]
        assert_no_secret(" ".join(given), PASSWORD)


def test_index_url_on_a_source_host_uses_that_sources_credentials(
    project_factory: ProjectFactory, mirror: IndexServer
) -> None:
    """As Poetry does for its own downloads: credentials go by host."""
    project = project_factory(DEPS, 'variant = "cu129"\n')  # index-url on 127.0.0.1
    result = project.run(
        "install",
        "-vvv",
        env_extra={
            "POETRY_HTTP_BASIC_FAKEPYPI_USERNAME": USER,
            "POETRY_HTTP_BASIC_FAKEPYPI_PASSWORD": PASSWORD,
        },
    )
    assert project.installed()["torch"] == "2.14.1+cu129"
    assert whl_authorizations(mirror) == {basic(USER, PASSWORD)}
    assert_no_secret(result.stdout + result.stderr, PASSWORD)


def test_credentials_in_the_index_url_are_masked(
    project_factory: ProjectFactory, mirror: IndexServer
) -> None:
    project = project_factory(DEPS, 'variant = "cu129"\n')
    secret_url = f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{mirror.port}"
    good = project.run(
        "install",
        "-vvv",
        env_extra={"POETRY_TORCH_CUDA_INDEX_URL": secret_url + "/whl/{variant}"},
    )
    assert project.installed()["torch"] == "2.14.1+cu129"
    assert_no_secret(good.stdout + good.stderr, PASSWORD)
    bad = project.run(
        "install",
        "-vvv",
        check=False,
        env_extra={
            "POETRY_TORCH_CUDA_INDEX_URL": secret_url + "/nowhere/{variant}",
            "POETRY_TORCH_CUDA_VARIANT": "cu130",
        },
    )
    assert bad.returncode == 1
    # cu130 is not locked yet, and a per-run mirror never writes the lock: the
    # refusal names the mirror, masked, before any request
    assert f"(http://127.0.0.1:{mirror.port}/nowhere/{{variant}})" in bad.stderr
    assert_no_secret(bad.stdout + bad.stderr, PASSWORD)


def test_an_install_that_locks_first_asks_with_one_authenticator(
    source_project: Project, mirror: IndexServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock step of an install (no torch-cuda.lock yet) and its download take
    their credentials from the install's one authenticator."""
    credentials = {ENV_USER: USER, ENV_PASSWORD: PASSWORD}
    bot = {**credentials, "POETRY_TORCH_CUDA_DISABLE": "1"}  # poetry.lock alone
    assert run_inprocess(source_project, "lock", env_extra=bot).returncode == 0
    made = authenticators_made(monkeypatch)
    result = run_inprocess(source_project, "install", env_extra=credentials)
    assert result.returncode == 0, result.stderr
    assert "locking cu129 first" in result.stdout, result.stdout
    assert source_project.installed()["torch"] == "2.14.1+cu129"
    assert whl_authorizations(mirror) == {basic(USER, PASSWORD)}
    assert len(made) == 1


def test_credentials_in_the_index_url_leave_the_lock_as_without_them(
    project_factory: ProjectFactory, mirror: IndexServer
) -> None:
    """torch-cuda.lock is the same whichever way the credentials come: its files
    relative to the index, never a credential."""
    host = mirror.url.split("://", 1)[1]
    project = project_factory(DEPS, 'variant = "cu129"\n')
    project.run(
        "lock",
        env_extra={
            "POETRY_HTTP_BASIC_FAKEPYPI_USERNAME": USER,
            "POETRY_HTTP_BASIC_FAKEPYPI_PASSWORD": PASSWORD,
        },
    )
    lock = project.path / "torch-cuda.lock"
    configured = lock.read_text()
    userinfo = f"{USER}:{quote(PASSWORD, safe='')}"
    project.write_pyproject(
        project.pyproject_text().replace(
            f'"{mirror.url}/whl/{{variant}}"',
            f'"http://{userinfo}@{host}/whl/{{variant}}"',
        )
    )
    assert userinfo in project.pyproject_text()
    lock.unlink()
    project.run("lock")
    written = lock.read_text()
    assert_no_secret(written, PASSWORD)
    assert 'url = "torch/torch-2.14.1%2Bcu129-py3-none-any.whl"' in written, written
    assert written == configured


def test_a_refused_lock_names_the_source_as_an_install_does(
    source_project: Project,
) -> None:
    """`poetry torch-cuda lock` reads the refusal an install reads, in its words."""
    wrong = "wrong-" + PASSWORD
    source_project.run("lock")
    result = run_inprocess(
        source_project,
        "torch-cuda",
        "lock",
        env_extra={ENV_USER: USER, ENV_PASSWORD: wrong},
    )
    assert result.returncode == 1, result
    assert "the index refused access (HTTP 401)" in result.stderr, result
    assert "poetry config http-basic.torch-mirror <user> <password>" in result.stderr
    assert ENV_PASSWORD in result.stderr, result
    assert_no_secret(result.stdout + result.stderr, wrong, PASSWORD)
