"""Units of issue 14: the pyproject edit at write time, temp-file sweeps, short index checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import requests

from poetry_torch_cuda import tempfiles
from poetry_torch_cuda.index import client
from poetry_torch_cuda.project.pyproject_edit import prepare_variant
from poetry_torch_cuda.project.pyproject_edit import with_variant


if TYPE_CHECKING:
    from pathlib import Path

    from poetry_torch_cuda.project.pyproject_edit import PendingWrite

TABLE = "[tool.poetry-torch-cuda]\nvariant = 'cu129'  # cluster\n"


def with_table(tmp_path: Path) -> Path:
    """``tmp_path/pyproject.toml`` holding ``TABLE``."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(TABLE)
    return pyproject


def prepared(pyproject: Path, variant: str) -> PendingWrite:
    """The pending edit of ``pyproject`` to ``variant`` (there must be one)."""
    pending = prepare_variant(pyproject, variant)
    assert pending is not None
    return pending


def test_literal_string_stays_literal_and_comment_stays() -> None:
    assert with_variant(TABLE, "cu130") == (
        "[tool.poetry-torch-cuda]\nvariant = 'cu130'  # cluster\n"
    )
    basic = '[tool.poetry-torch-cuda]\nvariant = "cu129"\n'
    assert with_variant(basic, "cpu") == '[tool.poetry-torch-cuda]\nvariant = "cpu"\n'
    assert with_variant(basic, "cu129") is None


def test_commit_applies_the_edit_to_the_file_as_it_is_now(tmp_path: Path) -> None:
    pyproject = with_table(tmp_path)
    pending = prepared(pyproject, "cu130")
    with pending:
        pyproject.write_text(TABLE + "\n[tool.ruff]\nline-length = 120\n")
        assert pending.commit()
    assert pyproject.read_text() == (
        "[tool.poetry-torch-cuda]\nvariant = 'cu130'  # cluster\n"
        "\n[tool.ruff]\nline-length = 120\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["pyproject.toml"]


def test_commit_when_someone_else_already_wrote_the_variant(tmp_path: Path) -> None:
    pyproject = with_table(tmp_path)
    pending = prepared(pyproject, "cu130")
    with pending:
        pyproject.write_text(TABLE.replace("cu129", "cu130"))
        assert not pending.commit()
    assert [p.name for p in tmp_path.iterdir()] == ["pyproject.toml"]


def test_hard_linked_pyproject_is_written_in_place(tmp_path: Path) -> None:
    pyproject = with_table(tmp_path)
    twin = tmp_path / "twin.toml"
    os.link(pyproject, twin)
    pending = prepared(pyproject, "cpu")
    with pending:
        assert pending.commit()
    assert twin.read_text() == pyproject.read_text()
    assert "variant = 'cpu'" in twin.read_text()
    assert pyproject.stat().st_ino == twin.stat().st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pyproject.toml", "twin.toml"]


def test_sweep_removes_only_files_of_dead_processes(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    leftover = tmp_path / f".pyproject.toml.{dead_pid}.abc.tmp"
    leftover.write_text("x")
    handle, mine = tempfiles.make(tmp_path, ".pyproject.toml.", ".tmp")
    os.close(handle)
    unrelated = tmp_path / ".pyproject.toml.notapid.tmp"
    unrelated.write_text("x")
    tempfiles.sweep(tmp_path, ".pyproject.toml.", ".tmp")
    assert not leftover.exists()
    assert mine.exists()
    assert unrelated.exists()


def test_a_leftover_of_a_killed_switch_goes_with_the_next_one(tmp_path: Path) -> None:
    pyproject = with_table(tmp_path)
    (tmp_path / ".pyproject.toml.999999999.x.tmp").write_text("half")
    pending = prepared(pyproject, "cu130")
    with pending:
        pending.commit()
    assert [p.name for p in tmp_path.iterdir()] == ["pyproject.toml"]


@pytest.mark.parametrize("text", ["old", "new"])
def test_a_leftover_of_a_killed_lock_write_goes_with_the_next_write(
    tmp_path: Path, text: str
) -> None:
    """A ``kill -9`` mid-write left ``.torch-cuda.lock.<pid>.*.tmp`` beside the lock,
    shown by ``git status`` forever; the next write of the file removes it, also
    when the content is unchanged."""
    lock = tmp_path / "torch-cuda.lock"
    lock.write_text("old")
    (tmp_path / ".torch-cuda.lock.999999999.ab12.tmp").write_text("half")
    tempfiles.write_text(lock, text)
    assert [p.name for p in tmp_path.iterdir()] == ["torch-cuda.lock"]
    assert lock.read_text() == text


def test_a_symlinked_lock_stays_a_link_and_its_file_gets_the_text(
    tmp_path: Path,
) -> None:
    """A torch-cuda.lock shared through a symlink (a monorepo's projects) was
    replaced by a file of its own, the shared one left as it was."""
    shared = tmp_path / "shared" / "torch-cuda.lock"
    shared.parent.mkdir()
    shared.write_text("old")
    lock = tmp_path / "torch-cuda.lock"
    lock.symlink_to(shared)
    assert tempfiles.write_text(lock, "new")
    assert lock.is_symlink()
    assert shared.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared", "torch-cuda.lock"]


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            requests.exceptions.ReadTimeout("Read timed out. (read timeout=4)"),
            "host.example did not answer within 4 s",
        ),
        (
            requests.exceptions.ConnectionError(
                "HTTPSConnectionPool: Max retries exceeded (Caused by NewConnectionError("
                "'[Errno 111] Connection refused'))"
            ),
            "host.example refused the connection",
        ),
        (
            requests.exceptions.ConnectionError(
                "NameResolutionError: Failed to resolve 'host.example' "
                "([Errno -2] Name or service not known)"
            ),
            "host.example could not be found (DNS lookup failed)",
        ),
        (
            requests.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"),
            "the TLS handshake with host.example failed (certificate or proxy)",
        ),
        (
            requests.exceptions.ConnectionError("EOF"),
            "could not connect to host.example",
        ),
    ],
)
def test_network_errors_in_words(error: Exception, words: str) -> None:
    url = "https://user:secret@host.example/whl/cu129/torch/"
    assert client.no_answer(error, url)[0] == words


def test_a_failure_is_said_as_remembered_only_by_a_later_run(tmp_path: Path) -> None:
    """The second page of a host that refused a moment before, in the same run, said
    "(noted 0 s ago; asked again in 600 s)" as if an earlier run had noted it."""
    from tests.support.client import poetry_config

    index = "http://127.0.0.1:9/whl/cu129"
    first = client.IndexClient(poetry_config(tmp_path))
    for project in ("torch", "torchvision"):  # the second one is not asked: recalled
        with pytest.raises(client.IndexUnavailableError) as failed:
            first.project(index, project)
        assert "noted" not in str(failed.value), failed.value
    assert failed.value.words == "127.0.0.1:9 refused the connection"
    later = client.IndexClient(poetry_config(tmp_path))
    with pytest.raises(client.IndexUnavailableError, match=r"\(noted \d+ s ago; "):
        later.project(index, "torch")


def test_an_unreachable_host_is_remembered_for_a_while(tmp_path: Path) -> None:
    url, run = "https://host.example/whl/cu129/torch/", float("inf")  # a later run
    assert client.recall(tmp_path, url, run) is None
    client.remember(tmp_path, url, TimeoutError())
    recalled = client.recall(
        tmp_path, "https://host.example/whl/cu130/torchvision/", run
    )
    assert recalled is not None
    assert str(recalled).startswith(
        "host.example did not answer within 4 s (noted 0 s ago; asked again in 600 s)"
    )
    # the remembered failure carries the fresh one's fields: words, advice
    assert recalled.words == "host.example did not answer within 4 s"
    assert "POETRY_REQUESTS_TIMEOUT=<seconds>" in recalled.advice
    assert (
        client.recall(tmp_path, "https://other.example/whl/cu129/torch/", run) is None
    )
    memory = tmp_path / "unreachable.json"  # 10 minutes later
    noted = json.loads(memory.read_text())
    noted["https://host.example:"][2] -= 601
    memory.write_text(json.dumps(noted))
    assert client.recall(tmp_path, url, run) is None
    client.remember(tmp_path, url, None)
    assert client.recall(tmp_path, url, run) is None


def test_a_read_only_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """A chmod 444 torch-cuda.lock (or ``export -o`` file) was replaced by the
    rename, which ignores the file's mode; it is refused as a read-only
    pyproject.toml is, root or not (an unchanged one is not written at all)."""
    lock = tmp_path / "torch-cuda.lock"
    lock.write_text("old")
    lock.chmod(0o444)
    assert not tempfiles.write_text(lock, "old")
    with pytest.raises(PermissionError) as raised:
        tempfiles.write_text(lock, "new")
    assert raised.value.strerror == "it is read-only"
    assert lock.read_text() == "old"
    assert lock.stat().st_mode & 0o777 == 0o444
    assert [p.name for p in tmp_path.iterdir()] == ["torch-cuda.lock"]
