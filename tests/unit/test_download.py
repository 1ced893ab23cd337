"""The parallel downloader against the local index: concurrency, hashes, failures."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
import time
from contextlib import suppress
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING
from typing import Any

import pytest
from packaging.utils import canonicalize_name
from poetry.config.config import Config
from poetry.core.packages.utils.link import Link
from poetry.utils import authenticator
from poetry.utils import constants
from poetry.utils.cache import ArtifactCache

from poetry_torch_cuda.index.client import IndexAuthenticator
from poetry_torch_cuda.install.download import DownloadError
from poetry_torch_cuda.install.download import download_files
from poetry_torch_cuda.lockfile.model import LockedFile
from tests.support.index import IndexServer
from tests.support.wheels import build_wheel


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NAMES = ("nvidia-cublas-cu12", "nvidia-cudnn-cu12", "nvidia-nccl-cu12", "torch")
TORCH = "/whl/cu129/torch/torch-1.0+cu129-py3-none-any.whl"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[IndexServer, list[LockedFile]]]:
    root = tmp_path / "universe"
    (root / "pypi").mkdir(parents=True)
    items = []
    with IndexServer(root) as index:
        for number, name in enumerate(NAMES):
            size = 200_000 * (number + 1)
            path = build_wheel(
                root / "whl" / "cu129" / name,
                name,
                "1.0+cu129",
                payload={f"{name.replace('-', '_')}/blob.bin": os.urandom(size)},
            )
            data = path.read_bytes()
            items.append(
                LockedFile(
                    canonicalize_name(name),
                    "1.0+cu129",
                    path.name,
                    f"{index.whl_url('cu129')}/{name}/{path.name}",
                    hashlib.sha256(data).hexdigest(),
                    len(data),
                )
            )
        yield index, items


def fetch(items: list[LockedFile], cache: Path, **options: object) -> list[Path]:
    """``items`` downloaded into the artifact cache of Poetry's ``cache``."""
    config = Config()
    config.merge({"cache-dir": str(cache), "keyring": {"enabled": False}})
    auth = IndexAuthenticator(config)
    return download_files(items, auth, **options)  # type: ignore[arg-type]


def leftovers(cache: Path) -> list[str]:
    return sorted(path.name for path in cache.rglob("*") if path.is_file())


def test_files_arrive_verified_in_poetrys_artifact_cache_concurrently(
    served: tuple[IndexServer, list[LockedFile]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index, items = served
    # each file waits until all have been asked for: one after another, none would.
    # Up to 60 s: a loaded machine may start the workers seconds apart (it did
    # over 10 s once); Poetry's timeout (POETRY_REQUESTS_TIMEOUT) is raised above it.
    monkeypatch.setattr(constants, "REQUESTS_TIMEOUT", 90)
    monkeypatch.setattr(authenticator, "REQUESTS_TIMEOUT", 90)  # bound at import
    index.gather("/whl/", len(items), suffix=".whl", wait=60)
    cache = tmp_path / "artifacts"
    paths = fetch(items, cache, concurrency=4)
    assert index.max_overlap("/whl/") == len(items)
    for item, path in zip(items, paths):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == item.sha256
        link = Link(f"{item.url}#sha256={item.sha256}")
        found = ArtifactCache(
            cache_dir=cache / "artifacts"
        ).get_cached_archive_for_link(link, strict=True)
        assert found == path
    index.clear_requests()
    assert fetch(items, cache) == paths
    assert index.requests == []  # cached files are not fetched again


def test_corrupted_transfer_is_refused_and_leaves_nothing(
    served: tuple[IndexServer, list[LockedFile]], tmp_path: Path
) -> None:
    index, items = served
    index.corrupt_paths.add("/whl/cu129/torch/")
    cache = tmp_path / "artifacts"
    with pytest.raises(DownloadError) as raised:
        fetch(items, cache)
    message = str(raised.value)
    torch = items[-1]
    assert torch.filename in message
    assert (
        f"expected sha256 {torch.sha256} (torch-cuda.lock), received sha256" in message
    )
    assert (
        "the index or mirror now serves different bytes for the same file.\nA "
        "published file never changes: treat this as a compromised or broken mirror "
        "and tell whoever runs it; if the change is legitimate, re-lock trusting the "
        "index as it is now: `poetry torch-cuda lock --accept-drift`."
    ) in message
    assert torch.filename not in leftovers(cache)
    assert not [name for name in leftovers(cache) if name.endswith(".part")]


def test_a_missing_file_names_the_file_and_the_cause(
    served: tuple[IndexServer, list[LockedFile]], tmp_path: Path
) -> None:
    index, items = served
    index.fail_paths["/whl/cu129/nvidia-nccl-cu12/"] = 404
    with pytest.raises(DownloadError) as raised:
        fetch(items, tmp_path / "artifacts")
    assert items[2].filename in str(raised.value)
    assert "HTTP 404" in str(raised.value)
    assert not [n for n in leftovers(tmp_path / "artifacts") if n.endswith(".part")]


def test_a_file_forbidden_without_credentials_due_is_missing_not_refused(
    served: tuple[IndexServer, list[LockedFile]], tmp_path: Path
) -> None:
    """download.pytorch.org (S3 behind a CDN) answers 403 for a file it lacks; with
    no credentials due, the advice was to check them. It says the file is missing."""
    index, items = served
    index.fail_paths["/whl/cu129/nvidia-nccl-cu12/"] = 403
    with pytest.raises(DownloadError) as raised:
        fetch(items, tmp_path / "artifacts")
    assert items[2].filename in str(raised.value)
    assert (
        ": the index has no such file (HTTP 403).\nCheck the index URL and the "
        "variant; if the index moved its files, run `poetry torch-cuda lock` again."
    ) in str(raised.value), raised.value
    assert "credentials" not in str(raised.value)


class _Odd(BaseHTTPRequestHandler):
    """Serves ``BODY`` badly: ``/short`` promises more bytes than it sends,
    ``/drip`` sends a byte every 0.2 s, ``/ranged`` answers any Range with 416,
    ``/long`` sends it 20 times over, ``/cut`` half of it, then closes (no length)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/ranged" and self.headers.get("Range"):
            self.send_response(416)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        if self.path == "/cut":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BODY[: len(BODY) // 2])
            self.close_connection = True
            return
        times = {"/short": 2, "/long": 20}.get(self.path, 1)
        self.send_header("Content-Length", str(len(BODY) * times))
        self.end_headers()
        if self.path == "/long":
            with suppress(OSError):  # the client may hang up
                for _ in range(times):
                    self.wfile.write(BODY)
            return
        if self.path == "/drip":
            for byte in BODY[:300]:  # a minute in all
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
            return
        self.wfile.write(BODY)
        self.close_connection = True


BODY = os.urandom(300_000)


@pytest.fixture
def odd() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def odd_file(url: str, sha256: str | None = None) -> LockedFile:
    digest = sha256 or hashlib.sha256(BODY).hexdigest()
    return LockedFile(
        canonicalize_name("odd"),
        "1.0",
        "odd-1.0-py3-none-any.whl",
        url,
        digest,
        len(BODY),
    )


def test_a_server_refusing_ranges_still_serves_one_plain_request(
    odd: str, tmp_path: Path
) -> None:
    [path] = fetch([odd_file(f"{odd}/ranged")], tmp_path)
    assert path.read_bytes() == BODY


def test_a_short_body_fails_cleanly_and_leaves_nothing(
    odd: str, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError, match="broke off after") as raised:
        fetch([odd_file(f"{odd}/short")], tmp_path)
    assert "Traceback" not in str(raised.value)
    assert leftovers(tmp_path) == []


def test_a_body_cut_short_without_a_length_is_a_broken_connection(
    odd: str, tmp_path: Path
) -> None:
    """A server that sends no Content-Length and closes early: a transfer broken
    off, not a mirror serving other bytes."""
    with pytest.raises(DownloadError) as raised:
        fetch([odd_file(f"{odd}/cut")], tmp_path)
    message = str(raised.value)
    assert f"broke off after {len(BODY) // 2} bytes" in message
    assert "Run the command again" in message
    assert "compromised" not in message
    assert leftovers(tmp_path) == []


def test_a_dripping_server_times_out(
    odd: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from poetry.utils import constants

    monkeypatch.setattr(constants, "REQUESTS_TIMEOUT", 1)
    began = time.monotonic()
    with pytest.raises(DownloadError, match=r"sent under 64 KiB in 1 s"):
        fetch([odd_file(f"{odd}/drip")], tmp_path)
    # gave up long before the drip's minute was over, with room for a loaded machine
    assert time.monotonic() - began < 30
    assert leftovers(tmp_path) == []


def test_a_body_longer_than_the_lock_says_is_cut_off_and_refused(
    odd: str, tmp_path: Path
) -> None:
    """A mirror sending more than the locked file (or without end) fills no disk:
    the download stops once it has more bytes than torch-cuda.lock's size."""
    seen: list[tuple[int, int, int, int]] = []
    with pytest.raises(DownloadError, match=r"refused odd-1\.0") as raised:
        fetch([odd_file(f"{odd}/long")], tmp_path, progress=lambda *s: seen.append(s))
    assert f"the lock says {len(BODY)}" in str(raised.value)
    received, total, _, _ = seen[-1]
    assert total == len(BODY)
    assert received < 2 * len(BODY)  # not the 20 times over the server sent
    assert leftovers(tmp_path) == []


def test_an_edited_hash_in_the_lock_says_the_lock_and_the_file_disagree(
    odd: str, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError) as raised:
        fetch([odd_file(f"{odd}/ranged", sha256="0" * 64)], tmp_path)
    assert "The lock and the file disagree" in str(raised.value)
    assert "git diff torch-cuda.lock" in str(raised.value)


def test_a_url_with_its_own_credentials_is_fetched_without_logging_them(
    served: tuple[IndexServer, list[LockedFile]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file of a source written with ``user:password@`` (poetry.lock's, for a
    sync into an empty environment): its credentials go with the request, never
    into what Poetry's HTTP stack logs at ``-vvv``."""
    index, items = served
    index.require_auth = ("ci", "s3cret-PW")
    secret = f"http://ci:s3cret-PW@{index.url.split('://', 1)[1]}"
    given = [
        dataclasses.replace(i, url=i.url.replace(index.url, secret)) for i in items
    ]
    with caplog.at_level(logging.DEBUG):
        paths = fetch(given, tmp_path / "artifacts")
    assert [p.name for p in paths] == [i.filename for i in items]
    basic = "Basic " + base64.b64encode(b"ci:s3cret-PW").decode()
    assert {r.authorization for r in index.records} == {basic}
    assert caplog.records, "nothing was logged"
    assert "s3cret" not in caplog.text


def test_a_file_the_mirror_lacks_names_the_lock_that_holds_its_hash(
    served: tuple[IndexServer, list[LockedFile]], tmp_path: Path
) -> None:
    """A file of poetry.lock's (a package the family needs and the environment
    lacks) that the per-run mirror does not list: the message names poetry.lock."""
    index, items = served
    poetrys = dataclasses.replace(
        items[0],
        name=canonicalize_name("filelock"),
        filename="filelock-3.20.0-py3-none-any.whl",
        lock="poetry.lock",
    )
    with pytest.raises(DownloadError) as raised:
        fetch([poetrys], tmp_path / "artifacts", mirror=index.whl_url("cu129"))
    message = str(raised.value)
    assert "does not list filelock-3.20.0-py3-none-any.whl" in message
    assert f"(sha256 {poetrys.sha256} in poetry.lock)" in message


@pytest.mark.parametrize("json_page", [True, False])
def test_a_file_the_mirror_yanked_is_named_yanked_not_missing(
    served: tuple[IndexServer, list[LockedFile]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    json_page: bool,
) -> None:
    """The per-run mirror lists the locked torch, yanked (PEP 592): it said the
    mirror "does not list" it, which the page shows untrue."""
    index, items = served
    index.serve_json = json_page
    pages = index._json_page, index._html_page

    def json_yanked(*args: Any) -> bytes:
        content = json.loads(pages[0](*args))
        for file in content["files"]:
            file["yanked"] = "withdrawn"
        return json.dumps(content).encode()

    def html_yanked(*args: Any) -> bytes:
        return pages[1](*args).replace(b"<a href", b'<a data-yanked="" href')

    monkeypatch.setattr(index, "_json_page", json_yanked)
    monkeypatch.setattr(index, "_html_page", html_yanked)
    mirror = index.whl_url("cu129")
    torch = items[-1]
    with pytest.raises(DownloadError) as raised:
        fetch([torch], tmp_path / "artifacts", mirror=mirror)
    assert str(raised.value) == (
        f"could not install the variant: the mirror {mirror} has yanked (PEP 592) "
        f"{torch.filename} (sha256 "
        f"{torch.sha256} in torch-cuda.lock). Use a mirror that holds the locked "
        "files, or unset POETRY_TORCH_CUDA_INDEX_URL."
    )


@pytest.mark.parametrize("later", [600, 3600])
def test_an_index_asking_for_a_long_wait_fails_at_once_with_it(
    served: tuple[IndexServer, list[LockedFile]], tmp_path: Path, later: int
) -> None:
    """429 with ``Retry-After: 600`` (or an HTTP date an hour ahead, RFC 9110):
    Poetry's retry slept the header five times (50 minutes; a date raised and was
    worded as a failed connection). A wait past a minute is not waited out: one
    request, and the index, its status and the wait it asks for are said."""
    index, items = served
    index.fail_paths["/whl/cu129/torch/"] = 429
    index.fail_retry_after = (
        "600" if later == 600 else formatdate(time.time() + later, usegmt=True)
    )
    started = time.monotonic()
    with pytest.raises(DownloadError) as raised:
        fetch(items[-1:], tmp_path / "artifacts")
    assert time.monotonic() - started < 30
    assert [p for p in index.requests if p.startswith("/whl/")] == [TORCH]
    message = " ".join(str(raised.value).split())
    wait = "600" if later == 600 else r"3[56]\d\d"  # the date's seconds, rounded
    assert re.search(
        rf"from {re.escape(items[-1].url)}: the index failed with HTTP 429 \(too many "
        rf"requests\), asking to wait {wait} s \(Retry-After\)\. Run "
        "the command again later, or tell whoever runs the index.",
        message,
    ), message


def test_short_waits_are_waited_for_until_they_reach_the_cap(
    served: tuple[IndexServer, list[LockedFile]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Retry-After within the cap is waited for, attempt after attempt, as Poetry
    does; the attempt whose pauses would pass it ends with the index's answer."""
    from poetry_torch_cuda.index import client

    monkeypatch.setattr(client, "WAIT", 3.0)
    index, items = served
    index.fail_paths["/whl/cu129/torch/"] = 503
    index.fail_retry_after = "1"
    started = time.monotonic()
    with pytest.raises(DownloadError) as raised:
        fetch(items[-1:], tmp_path / "artifacts")
    assert time.monotonic() - started >= 3
    assert index.requests == [TORCH] * 4  # 1 s, 2 s, 3 s in all; 4 s would pass 3
    assert "HTTP 503 (a server error), asking to wait 1 s (Retry-After)" in " ".join(
        str(raised.value).split()
    )


def test_a_mirrors_page_is_asked_once_as_every_page_is(
    served: tuple[IndexServer, list[LockedFile]], tmp_path: Path
) -> None:
    """A per-run mirror's page (POETRY_TORCH_CUDA_INDEX_URL) answering 503 was
    asked six times with Poetry's retries, where every other page is asked once."""
    index, items = served
    index.fail_paths["/whl/cu129/torch/"] = 503
    index.fail_retry_after = "0"
    with pytest.raises(DownloadError) as raised:
        fetch(items[-1:], tmp_path / "artifacts", mirror=index.whl_url("cu129"))
    assert index.requests == ["/whl/cu129/torch/"]
    assert "the index failed with HTTP 503 (a server error)" in str(raised.value)


def test_netrc_credentials_never_go_over_plain_http(
    served: tuple[IndexServer, list[LockedFile]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """requests adds ~/.netrc's login for the host whatever the scheme: a mirror
    on plain http got them in the clear, where Poetry's rules give none."""
    index, items = served
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    fetch(items[-1:], tmp_path / "artifacts")
    assert [r.authorization for r in index.records] == [None]


def test_the_lock_reads_a_file_as_guarded_as_an_install_does(
    odd: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock reads whole wheels (no PEP 658) through the install's download: a
    dripping mirror times out, and one sending more than the page's size is cut
    off, where the lock read on for a minute, or for ever into TMPDIR."""
    from poetry.utils import constants

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.index.client import IndexUnavailableError
    from tests.support.client import poetry_config

    monkeypatch.setattr(constants, "REQUESTS_TIMEOUT", 1)
    client = IndexClient(poetry_config(tmp_path))
    began = time.monotonic()
    stalled = pytest.raises(IndexUnavailableError, match=r"sent under 64 KiB in 1 s")
    with stalled, open(os.devnull, "wb") as sink:
        client.download(f"{odd}/drip", sink)
    assert time.monotonic() - began < 30
    with open(tmp_path / "long", "wb") as kept:
        assert client.download(f"{odd}/long", kept, len(BODY)) != odd_file(odd).sha256
    assert (tmp_path / "long").stat().st_size < 2 * len(BODY)
