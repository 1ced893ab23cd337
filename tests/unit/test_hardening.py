"""Credentials, masking, pip's environment, the environment lock, atomic writes."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from poetry.config.config import Config

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.credentials import IndexAccess
from poetry_torch_cuda.index.credentials import UrlCredentials
from poetry_torch_cuda.index.credentials import index_access
from poetry_torch_cuda.index.urls import is_loopback
from poetry_torch_cuda.index.urls import register_secret
from poetry_torch_cuda.index.urls import scrub
from poetry_torch_cuda.install.envlock import environment_lock
from poetry_torch_cuda.install.pip import DEFAULT_RETRIES
from poetry_torch_cuda.install.pip import DEFAULT_TIMEOUT
from poetry_torch_cuda.install.pip import pip_environment
from poetry_torch_cuda.install.pip import pip_timeout
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.pyproject_edit import prepare_variant


SRC = Path(__file__).resolve().parents[2] / "src" / "poetry_torch_cuda"


# -- nothing reaches a shell ------------------------------------------------


def _shell_uses(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        if func in ("os.system", "os.popen", "subprocess.getoutput"):
            found.append(func)
        if func.startswith(("subprocess.", "os.spawn", "os.exec")):
            if any(kw.arg == "shell" for kw in node.keywords):
                found.append(f"{func}(shell=...)")
            first = node.args[0] if node.args else None
            if isinstance(first, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                found.append(f"{func}(<string command>)")
    return found


def test_no_module_runs_a_shell_or_a_command_string() -> None:
    offenders = {
        str(path.relative_to(SRC)): uses
        for path in sorted(SRC.rglob("*.py"))
        if (uses := _shell_uses(ast.parse(path.read_text())))
    }
    assert offenders == {}


def test_the_shell_check_catches_what_it_should() -> None:
    code = "import os, subprocess\nos.system('x')\nsubprocess.run('ls', shell=True)\n"
    assert _shell_uses(ast.parse(code)) == [
        "os.system",
        "subprocess.run(shell=...)",
        "subprocess.run(<string command>)",
    ]


# -- masking -----------------------------------------------------------------


def test_scrub_hides_url_credentials_and_registered_secrets() -> None:
    register_secret("hunter2/%")
    text = (
        "Looking in indexes: https://bob:hunter2%2F%25@mirror.example/x\n"
        "ERROR: token hunter2/% rejected; see ftp://anon@host/"
    )
    assert scrub(text) == (
        "Looking in indexes: https://***@mirror.example/x\n"
        "ERROR: token *** rejected; see ftp://***@host/"
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("mirror.localhost", True),
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
        ("mirror.example", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, expected: bool) -> None:
    assert is_loopback(host) is expected


# -- credentials ---------------------------------------------------------------


def test_credentials_are_split_off_the_url_and_rebuilt_for_pip() -> None:
    access = IndexAccess.from_url("https://bob:p%40ss%3Aw@mirror.example/whl/cu129")
    assert access.url == "https://mirror.example/whl/cu129"
    assert (access.username, access.password) == ("bob", "p@ss:w")
    assert access.pip_url == "https://bob:p%40ss%3Aw@mirror.example/whl/cu129"
    assert "p@ss" not in repr(access)
    assert access.shown == "https://mirror.example/whl/cu129"


def test_url_credentials_apply_only_under_the_url_they_came_from() -> None:
    known = UrlCredentials()
    assert known.take_off("https://mirror.example/whl/cu130") == (
        "https://mirror.example/whl/cu130"
    )
    bare = known.take_off("https://bob:p%40ss@mirror.example/whl/cu129/")
    assert bare == "https://mirror.example/whl/cu129/"
    assert known.lookup("https://mirror.example/whl/cu129/torch/") == ("bob", "p@ss")
    assert known.lookup("https://mirror.example/whl/cu129") == ("bob", "p@ss")
    assert known.lookup("https://mirror.example/whl/cu1290/torch/") is None
    assert known.lookup("https://mirror.example/whl/cu130/torch/") is None
    assert known.lookup("http://mirror.example/whl/cu129/torch/") is None
    assert known.lookup("https://other.example/whl/cu129/torch/") is None
    known.take_off("https://ci:tok@mirror.example/whl/cu129/nightly")
    assert known.lookup("https://mirror.example/whl/cu129/nightly/torch/") == (
        "ci",
        "tok",
    )


def test_token_without_user_name() -> None:
    access = IndexAccess("https://mirror.example/simple", None, "tok/1")
    assert access.pip_url == "https://:tok%2F1@mirror.example/simple"
    assert access.authorization == "Basic OnRvay8x"


def test_insecure_host_only_when_allowed_and_not_loopback() -> None:
    url = "http://mirror.example:8080/whl"
    assert IndexAccess.from_url(url).insecure_host is None
    allowed = IndexAccess.from_url(url, allow_insecure_http=True)
    assert allowed.insecure_host == "mirror.example:8080"
    local = IndexAccess.from_url("http://127.0.0.1:9/whl", allow_insecure_http=True)
    assert local.insecure_host is None


def _config(table: dict[str, Any], sources: list[dict[str, str]]) -> Any:
    pyproject = {"tool": {"poetry-torch-cuda": table, "poetry": {"source": sources}}}
    config = load_config(pyproject, {})
    assert config is not None
    return config


def _poetry_config(auth: dict[str, Any]) -> Config:
    config = Config()
    config.merge({"keyring": {"enabled": False}, "http-basic": auth})
    return config


def test_source_credentials_come_from_poetrys_config() -> None:
    config = _config(
        {"variant": "cu129", "source": "Mirror"},
        [{"name": "mirror", "url": "https://mirror.example/whl/{variant}"}],
    )
    poetry_config = _poetry_config({"mirror": {"username": "u", "password": "pw1"}})
    access = index_access(config, config.variant, poetry_config)
    assert access.url == "https://mirror.example/whl/cu129"
    assert (access.username, access.password, access.source) == ("u", "pw1", "mirror")


def test_index_url_borrows_credentials_of_a_source_on_the_same_host() -> None:
    config = _config(
        {"variant": "cpu", "index-url": "https://corp.example/torch/{variant}"},
        [{"name": "corp", "url": "https://corp.example/simple/"}],
    )
    poetry_config = _poetry_config({"corp": {"username": "u", "password": "pw2"}})
    access = index_access(config, config.variant, poetry_config)
    assert (access.username, access.password) == ("u", "pw2")


def test_https_credentials_never_go_to_an_http_url() -> None:
    config = _config(
        {
            "variant": "cpu",
            "index-url": "http://corp.example/torch/{variant}",
            "allow-insecure-http": True,
        },
        [{"name": "corp", "url": "https://corp.example/simple/"}],
    )
    poetry_config = _poetry_config({"corp": {"username": "u", "password": "pw3"}})
    access = index_access(config, config.variant, poetry_config)
    assert not access.has_credentials


def test_other_hosts_get_no_credentials() -> None:
    config = _config(
        {"variant": "cpu"}, [{"name": "corp", "url": "https://corp.example/simple/"}]
    )
    poetry_config = _poetry_config({"corp": {"username": "u", "password": "pw4"}})
    assert not index_access(config, config.variant, poetry_config).has_credentials


# -- pip's environment -------------------------------------------------------


def test_pip_gets_the_index_timeouts_and_no_prompts() -> None:
    access = IndexAccess("https://mirror.example/whl", "u", "pw")
    env = pip_environment({"PATH": "/bin"}, access)
    assert env["PIP_INDEX_URL"] == "https://u:pw@mirror.example/whl"
    assert env["PIP_NO_INPUT"] == "1"
    assert env["PIP_TIMEOUT"] == str(DEFAULT_TIMEOUT)
    assert env["PIP_RETRIES"] == str(DEFAULT_RETRIES)
    assert "PIP_TRUSTED_HOST" not in env
    assert pip_timeout(env) == DEFAULT_TIMEOUT


def test_pips_own_variables_win_over_the_defaults() -> None:
    env = pip_environment({"PIP_DEFAULT_TIMEOUT": "180", "PIP_RETRIES": "7"})
    assert "PIP_TIMEOUT" not in env
    assert env["PIP_RETRIES"] == "7"
    assert pip_timeout(env) == 180


def test_opted_in_http_host_is_trusted_in_addition_to_the_users() -> None:
    access = IndexAccess.from_url("http://mirror.example/whl", allow_insecure_http=True)
    env = pip_environment({"PIP_TRUSTED_HOST": "other.example"}, access)
    assert env["PIP_TRUSTED_HOST"] == "other.example mirror.example"


# -- the environment lock ----------------------------------------------------


def test_lock_waits_for_another_process_then_gives_up(tmp_path: Path) -> None:
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
        waited: list[bool] = []
        taken = environment_lock(
            tmp_path, on_wait=lambda: waited.append(True), wait_seconds=0.3
        )
        with (
            pytest.raises(TorchCudaError, match="another poetry-torch-cuda run"),
            taken,
        ):
            pytest.fail("the lock was taken twice")
        assert waited == [True]
    finally:
        holder.kill()
        holder.wait()
    # Free again once the holder is gone, and re-entrant within one process.
    with environment_lock(tmp_path), environment_lock(tmp_path):
        pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_lock_falls_back_to_the_temp_dir_for_a_read_only_env(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with environment_lock(tmp_path):
            assert not (tmp_path / ".poetry-torch-cuda.lock").exists()
    finally:
        tmp_path.chmod(0o755)


# -- atomic pyproject.toml writes ---------------------------------------------


def test_pending_write_changes_nothing_until_committed(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.poetry-torch-cuda]\nvariant = "cu129"\n')
    pyproject.chmod(0o640)
    before = pyproject.read_bytes()
    pending = prepare_variant(pyproject, "cu130")
    assert pending is not None
    with pending:
        assert pyproject.read_bytes() == before
    assert pyproject.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["pyproject.toml"]
    pending = prepare_variant(pyproject, "cu130")
    assert pending is not None
    with pending:
        pending.commit()
    assert pyproject.read_text() == '[tool.poetry-torch-cuda]\nvariant = "cu130"\n'
    assert pyproject.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["pyproject.toml"]
    assert prepare_variant(pyproject, "cu130") is None
