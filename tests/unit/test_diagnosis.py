"""``diagnose`` over pip's output, and its one probe of a real local index."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from poetry_torch_cuda.index.credentials import IndexAccess
from poetry_torch_cuda.install.diagnosis import diagnose
from poetry_torch_cuda.install.diagnosis import pip_reason


if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from tests.support.index import IndexServer

NOT_FOUND = [
    "ERROR: Could not find a version that satisfies the requirement torch==2.14.1+cu130",
    "ERROR: No matching distribution found for torch==2.14.1+cu130",
]


def test_hash_mismatch_names_the_file() -> None:
    lines = [
        "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.",
        (
            "    torch==2.14.1+cu130 from http://127.0.0.1:1/whl/cu130/torch/"
            "torch-2.14.1%2Bcu130-py3-none-any.whl#sha256=00:"
        ),
        "        Expected sha256 00",
        "             Got        11",
    ]
    what, fix = diagnose(IndexAccess("http://127.0.0.1:1/"), lines, 1, 1)
    assert "does not match the sha256" in what
    assert "torch-2.14.1+cu130-py3-none-any.whl" in what
    assert "Nothing was installed from it" in fix


def test_a_damaged_local_file_is_named_not_the_mirror() -> None:
    """pip checked a file of Poetry's artifact cache: the cause is local."""
    lines = [
        "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.",
        (
            "    torch==2.14.1+cu130 from file:///cache/artifacts/ab/"
            "torch-2.14.1%2Bcu130-py3-none-any.whl (from -r /dev/stdin (line 1)):"
        ),
        "        Expected sha256 00",
        "             Got        11",
    ]
    what, fix = diagnose(IndexAccess("http://127.0.0.1:1/"), lines, 1, 1)
    assert "/cache/artifacts/ab/torch-2.14.1+cu130-py3-none-any.whl" in what
    assert "(1)))" not in what
    assert "mirror" not in what + fix
    assert "remove it" in fix


def test_full_disk_quotes_the_os_error() -> None:
    lines = [
        (
            "ERROR: Could not install packages due to an OSError: [Errno 28] "
            "No space left on device"
        )
    ]
    what, fix = diagnose(IndexAccess("http://127.0.0.1:1/"), lines, 1, 1)
    assert what.startswith("pip could not write to disk (Could not install")
    assert "Free space" in fix


def test_resolver_conflict_lists_its_causes() -> None:
    lines = [
        (
            "ERROR: Cannot install torch==2.14.1+cu130 because these package versions "
            "have conflicting dependencies."
        ),
        "The conflict is caused by:",
        "    torch 2.14.1+cu130 depends on filelock>=3.21",
        "    The user requested (constraint) filelock==3.20.0",
        "",
    ]
    what, fix = diagnose(IndexAccess("http://127.0.0.1:1/"), lines, 1, 1)
    assert "torch 2.14.1+cu130 depends on filelock>=3.21" in what
    assert "filelock==3.20.0" in what
    assert "poetry lock" in fix


def test_missing_build_lists_what_the_index_offers(index: IndexServer) -> None:
    what, fix = diagnose(IndexAccess(index.whl_url("cu129")), NOT_FOUND, 1, 5)
    assert "the index has no build of torch that matches" in what
    assert "2.14.1+cu129" in what
    assert "poetry torch-cuda switch" in fix


def test_missing_page_is_a_404(index: IndexServer) -> None:
    index.fail_paths["/whl/cu129/torch/"] = 404
    what, _ = diagnose(IndexAccess(index.whl_url("cu129")), NOT_FOUND, 1, 5)
    assert what == "the index has no page for torch (HTTP 404)"


def test_server_error_says_so(index: IndexServer) -> None:
    index.fail_paths["/whl/cu129/torch/"] = 503
    what, fix = diagnose(IndexAccess(index.whl_url("cu129")), NOT_FOUND, 1, 5)
    assert what == "the index failed with HTTP 503 (a server error)"
    assert "later" in fix


def test_refused_credentials_point_at_poetry_config(index: IndexServer) -> None:
    index.require_auth = ("alice", "right")
    access = IndexAccess(index.whl_url("cu129"), "alice", "wrong", source="mirror")
    what, fix = diagnose(access, NOT_FOUND, 1, 5)
    assert what == "the index refused access (HTTP 401)"
    assert "poetry config http-basic.mirror" in fix
    assert "POETRY_HTTP_BASIC_MIRROR_PASSWORD" in fix
    assert "wrong" not in what + fix


def test_unreachable_host_says_it_could_not_connect() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    what, _ = diagnose(IndexAccess(f"http://127.0.0.1:{port}/"), NOT_FOUND, 1, 2)
    assert what == f"127.0.0.1:{port} refused the connection"


def test_silent_server_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        what, fix = diagnose(
            IndexAccess(f"http://127.0.0.1:{port}/"), NOT_FOUND, 1, 0.5
        )
    assert what == f"127.0.0.1:{port} did not answer within 0.5 s"
    assert "PIP_TIMEOUT" in fix


def test_other_failures_quote_pips_error_lines() -> None:
    lines = ["Collecting torch", "ERROR: something odd happened"]
    what, fix = diagnose(IndexAccess("http://127.0.0.1:1/"), lines, 2, 1)
    assert what == "ERROR: something odd happened"
    assert "-v to see all of pip's output" in fix
    assert pip_reason([]) == "pip gave no reason"


def test_right_credentials_get_the_listing(index: IndexServer) -> None:
    """The probe goes through the index client with the credentials pip got."""
    index.require_auth = ("alice", "s3cret-right")
    access = IndexAccess(index.whl_url("cu129"), "alice", "s3cret-right")
    what, fix = diagnose(access, NOT_FOUND, 1, 5)
    assert "the index has no build of torch that matches" in what
    assert "2.14.1+cu129" in what
    assert "s3cret" not in what + fix


def test_one_request_and_nothing_remembered(
    index: IndexServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One attempt, past every cache, and no page or unreachable host written down:
    the next run asks afresh."""
    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    index.clear_requests()
    diagnose(IndexAccess(index.whl_url("cu129")), NOT_FOUND, 1, 5)
    diagnose(IndexAccess(index.whl_url("cu129")), NOT_FOUND, 1, 5)
    assert index.requests == ["/whl/cu129/torch/", "/whl/cu129/torch/"]
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    what, _ = diagnose(IndexAccess(f"http://127.0.0.1:{port}/"), NOT_FOUND, 1, 2)
    assert what == f"127.0.0.1:{port} refused the connection"
    assert not (tmp_path / "cache").exists()
