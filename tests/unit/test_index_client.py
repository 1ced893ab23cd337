"""The index client against the local HTTP index: PEP 691 JSON, PEP 503 HTML, cache."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import quote
from urllib.parse import unquote
from urllib.parse import urlsplit

import pytest

from poetry_torch_cuda.index.client import IndexClient
from poetry_torch_cuda.index.client import IndexUnavailableError
from poetry_torch_cuda.index.client import ProjectFiles
from poetry_torch_cuda.index.client import tag_fits
from tests.support.client import LINUX_311
from tests.support.client import poetry_config
from tests.support.index import JSON_TYPE
from tests.support.tls import TlsFront


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.index import IndexServer

pytestmark = pytest.mark.e2e


def torch_requests(index: IndexServer, variant: str) -> list[str]:
    return [p for p in index.requests if p == f"/whl/{variant}/torch/"]


def test_reads_json_pages_and_caches_them(index: IndexServer, tmp_path: Path) -> None:
    client = IndexClient(poetry_config(tmp_path))
    files = client.project(index.whl_url("cu126"), "Torch")
    assert files.found
    assert [str(v) for v in files.versions("cu126", LINUX_311)] == ["2.13.0+cu126"]
    assert next(r.accept for r in index.records).startswith(JSON_TYPE)
    assert index.records[-1].status == 200
    # a new client (a new command) reads the cache file: no request
    index.clear_requests()
    again = IndexClient(poetry_config(tmp_path)).project(
        index.whl_url("cu126"), "torch"
    )
    assert again == files
    assert index.requests == []
    # --refresh asks again
    IndexClient(poetry_config(tmp_path), refresh=True).project(
        index.whl_url("cu126"), "torch"
    )
    assert torch_requests(index, "cu126") == ["/whl/cu126/torch/"]


def test_reads_html_pages_the_same(index: IndexServer, tmp_path: Path) -> None:
    index.serve_json = False
    files = IndexClient(poetry_config(tmp_path)).project(
        index.whl_url("cu129"), "torch"
    )
    assert index.records[-1].status == 200
    assert [str(v) for v in files.versions("cu129")] == [
        "2.14.1+cu129",
        "2.13.0+cu129",
    ]


def test_a_missing_project_is_remembered(index: IndexServer, tmp_path: Path) -> None:
    client = IndexClient(poetry_config(tmp_path))
    assert client.project(index.whl_url("cu126"), "torchvision") == ProjectFiles(
        "torchvision", False
    )
    assert client.project(index.whl_url("nope"), "torch").found is False
    index.clear_requests()
    IndexClient(poetry_config(tmp_path)).project(index.whl_url("nope"), "torch")
    assert index.requests == []


def test_the_cache_expires(index: IndexServer, tmp_path: Path) -> None:
    IndexClient(poetry_config(tmp_path)).project(index.whl_url("cpu"), "torch")
    cache = next((tmp_path / "cache" / "poetry-torch-cuda" / "index").glob("*.json"))
    data = json.loads(cache.read_text())
    assert data["index"] == index.whl_url("cpu")
    data["fetched"] -= 601
    cache.write_text(json.dumps(data))
    index.clear_requests()
    IndexClient(poetry_config(tmp_path)).project(index.whl_url("cpu"), "torch")
    assert torch_requests(index, "cpu") == ["/whl/cpu/torch/"]


@pytest.mark.parametrize("damage", ['{"format": ', "[]", '"text"', "{}"])
def test_a_damaged_cache_file_is_asked_again(
    index: IndexServer, tmp_path: Path, damage: str
) -> None:
    IndexClient(poetry_config(tmp_path)).project(index.whl_url("cpu"), "torch")
    cache = next((tmp_path / "cache" / "poetry-torch-cuda" / "index").glob("*.json"))
    cache.write_text(damage)
    index.clear_requests()
    files = IndexClient(poetry_config(tmp_path)).project(index.whl_url("cpu"), "torch")
    assert files.found
    assert torch_requests(index, "cpu") == ["/whl/cpu/torch/"]


def test_errors_are_not_cached_and_hide_credentials(
    index: IndexServer, tmp_path: Path
) -> None:
    index.fail_paths["/whl/cu130/"] = 503
    index.fail_retry_after = "0"
    url = index.whl_url("cu130").replace("http://", "http://alice:s3cret@")
    with pytest.raises(IndexUnavailableError) as raised:
        IndexClient(poetry_config(tmp_path)).project(url, "torch")
    assert "HTTP 503" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    index.reset()
    assert IndexClient(poetry_config(tmp_path)).project(url, "torch").found


def test_credentials_reach_the_index(index: IndexServer, tmp_path: Path) -> None:
    index.require_auth = ("alice", "s3cret")
    plain = index.whl_url("cpu")
    with pytest.raises(IndexUnavailableError, match="refused access"):
        IndexClient(poetry_config(tmp_path)).project(plain, "torch")
    config = poetry_config(tmp_path)
    config.merge(
        {"http-basic": {"pytorch": {"username": "alice", "password": "s3cret"}}}
    )
    # credentials configured for a project source on the same host are used
    client = IndexClient(config, [("pytorch", index.whl_url("cu129"))])
    assert client.project(plain, "torch").found


def test_several_projects_at_once(index: IndexServer, tmp_path: Path) -> None:
    client = IndexClient(poetry_config(tmp_path))
    wanted = [(index.whl_url(v), "torch") for v in ("cpu", "cu126", "cu128", "cu999")]
    found = client.projects(wanted)
    assert [getattr(found[pair], "found", None) for pair in wanted] == [
        True,
        True,
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("interpreter", "abi", "platform", "fits"),
    [
        ("py3", "none", "any", True),
        ("cp311", "cp311", "manylinux_2_28_x86_64", True),
        ("cp311", "cp311", "manylinux_2_28_aarch64", False),
        ("cp312", "cp312", "manylinux_2_28_x86_64", False),
        ("cp39", "abi3", "manylinux2014_x86_64", True),
        ("cp311", "cp311", "win_amd64", False),
        ("pp311", "pypy311_pp73", "manylinux_2_28_x86_64", False),
    ],
)
def test_tag_fits(interpreter: str, abi: str, platform: str, fits: bool) -> None:
    assert tag_fits(interpreter, abi, platform, LINUX_311) is fits


def test_tag_fits_other_systems() -> None:
    windows = {**LINUX_311, "sys_platform": "win32", "platform_machine": "AMD64"}
    mac = {**LINUX_311, "sys_platform": "darwin", "platform_machine": "arm64"}
    assert tag_fits("cp311", "cp311", "win_amd64", windows)
    assert tag_fits("cp311", "cp311", "macosx_11_0_arm64", mac)
    assert not tag_fits("cp311", "cp311", "macosx_10_9_x86_64", mac)


def test_credentials_in_the_url_never_reach_poetrys_logs_or_the_cache(
    index: IndexServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Poetry logs each new session's netloc at debug level (``-vvv``)."""
    password = "s3cr3t:P@ss/w0rd%"
    index.require_auth = ("alice", password)
    quoted = quote(password, safe="")
    url = index.whl_url("cu129").replace("http://", f"http://alice:{quoted}@")
    caplog.set_level(logging.DEBUG)
    client = IndexClient(poetry_config(tmp_path), refresh=True)
    assert client.project(url, "torch").found
    assert client.projects([(url, "torchvision"), (url, "nothing-here")])
    expected = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    assert {r.authorization for r in index.records} == {expected}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Creating new session for 127.0.0.1:" in logged
    assert password not in logged
    assert quoted not in logged
    assert "alice" not in logged
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert quoted not in text
            assert password not in text


def test_credentials_in_the_url_go_only_to_that_host(
    index: IndexServer, tmp_path: Path
) -> None:
    """Poetry's rule for a source's credentials: its host (any path), never http
    when they were given for https, never another host."""
    index.require_auth = ("alice", "s3cret")
    client = IndexClient(poetry_config(tmp_path))
    url = index.whl_url("cu129").replace("http://", "http://alice:s3cret@")
    assert client.project(url, "torch").found
    assert client.project(index.whl_url("cu130"), "torch").found
    other = index.whl_url("cu130").replace("127.0.0.1", "localhost")
    with pytest.raises(IndexUnavailableError, match="refused access"):
        client.project(other, "torch")
    assert [r.authorization is not None for r in index.records] == [True, True, False]


def test_a_page_forbidden_to_a_request_without_credentials_is_missing(
    index: IndexServer, tmp_path: Path
) -> None:
    """download.pytorch.org (S3 behind a CDN) answers 403, not 404, for a variant or
    project it does not have; pip and Poetry read such a page as missing, not as
    credentials refused. With credentials sent, or kept from plain http, 403 is a
    refusal."""
    index.fail_paths["/whl/cu130/"] = 403
    client = IndexClient(poetry_config(tmp_path))
    assert client.project(index.whl_url("cu130"), "torch") == ProjectFiles(
        "torch", False
    )
    config = poetry_config(tmp_path)
    config.merge({"http-basic": {"pytorch": {"username": "alice", "password": "pw"}}})
    client = IndexClient(config, [("pytorch", index.whl_url("cu129"))], refresh=True)
    with pytest.raises(IndexUnavailableError, match=r"refused access \(HTTP 403\)"):
        client.project(index.whl_url("cu130"), "torch")
    https = index.whl_url("cu129").replace("http:", "https:")
    client = IndexClient(config, [("pytorch", https)], refresh=True)
    with pytest.raises(IndexUnavailableError) as raised:
        client.project(index.whl_url("cu130"), "torch")
    assert "refused access (HTTP 403)" in str(raised.value)
    assert "credentials never go out in the clear" in str(raised.value)


@pytest.mark.parametrize("https_path", ["/whl/{variant}", "/whl/cu129"])
def test_a_plain_http_source_gets_its_credentials_beside_an_https_one(
    index: IndexServer, tmp_path: Path, https_path: str
) -> None:
    """One host, an https source and the plain-http source of the index: pages and
    files carry the http source's credentials, as Poetry 2.5 sends them, however
    well the https source's path matches; the https one's never go in the clear."""
    index.require_auth = ("alice", "http-pw")
    config = poetry_config(tmp_path)
    config.merge(
        {
            "http-basic": {
                "secure": {"username": "bob", "password": "https-pw"},
                "plain": {"username": "alice", "password": "http-pw"},
            }
        }
    )
    https = index.url.replace("http:", "https:") + https_path
    sources = [("secure", https), ("plain", f"{index.url}/whl/{{variant}}")]
    client = IndexClient(config, sources)
    [file, *_] = client.project(index.whl_url("cu129"), "torch").entries
    with open(os.devnull, "wb") as sink:
        client.download(file.url, sink)
    alice = "Basic " + base64.b64encode(b"alice:http-pw").decode()
    assert [(r.status, r.authorization) for r in index.records] == [(200, alice)] * 2


def test_an_https_page_redirected_to_http_says_so_beside_an_http_source(
    index: IndexServer, tmp_path: Path
) -> None:
    """A redirect from https to plain http drops the credentials (requests, as in
    Poetry), also on a host with a plain-http source of its own: the refusal says
    the request must stay https, not to check the https source's credentials."""
    config = poetry_config(tmp_path)
    with TlsFront(index, tmp_path) as front:
        front.require_auth = ("bob", "https-pw")
        front.redirect_pages_over_http = True
        config.merge(
            {
                "certificates": {"secure": {"cert": str(front.ca)}},
                "http-basic": {
                    "secure": {"username": "bob", "password": "https-pw"},
                    "plain": {"username": "alice", "password": "http-pw"},
                },
            }
        )
        sources = [
            ("secure", f"{front.url}/whl/{{variant}}"),
            ("plain", f"{front.plain_url}/simple/"),
        ]
        with pytest.raises(IndexUnavailableError) as raised:
            IndexClient(config, sources).project(f"{front.url}/whl/cu129", "torch")
    assert [(r.scheme, r.status) for r in front.records] == [
        ("https", 302),
        ("http", 401),
    ]
    assert front.records[1].authorization is None
    assert "it must stay https" in str(raised.value)
    assert "Check the credentials" not in str(raised.value)


@pytest.mark.parametrize(
    "spelled", ["Application/VND.PyPI.Simple.v1+JSON", f"{JSON_TYPE} ; charset=utf-8"]
)
def test_a_json_page_is_read_however_its_media_type_is_spelled(
    index: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelled: str
) -> None:
    """A media type is case-insensitive, with room for spaces before its parameters
    (RFC 9110): read as HTML, a PEP 691 page listed no file at all."""
    send = index._send

    def respelled(*args: Any, **kwargs: Any) -> None:
        send(*args[:4], args[4].replace(JSON_TYPE, spelled), **kwargs)

    monkeypatch.setattr(index, "_send", respelled)
    files = IndexClient(poetry_config(tmp_path)).project(
        index.whl_url("cu126"), "torch"
    )
    assert index.records[-1].content_type == spelled
    assert [str(v) for v in files.versions("cu126", LINUX_311)] == ["2.13.0+cu126"]


def test_too_many_requests_says_to_come_back_later(
    index: IndexServer, tmp_path: Path
) -> None:
    """HTTP 429: the index limits how often it is asked; its URL is fine."""
    index.fail_paths["/whl/cu130/"] = 429
    with pytest.raises(IndexUnavailableError) as raised:
        IndexClient(poetry_config(tmp_path)).project(index.whl_url("cu130"), "torch")
    assert "the index failed with HTTP 429 (too many requests)" in str(raised.value)
    assert "Run the command again later" in str(raised.value)
    assert "Check the index URL" not in str(raised.value)


def test_a_page_broken_off_mid_body_is_not_a_failed_connection(
    index: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index answered and stopped halfway: not "could not connect", nor the
    network and proxy advice of a host that cannot be reached."""
    write = index._write_body

    def halfway(handler: Any, body: bytes) -> None:
        write(handler, body[:40])
        handler.close_connection = True

    monkeypatch.setattr(index, "_write_body", halfway)
    with pytest.raises(IndexUnavailableError) as raised:
        IndexClient(poetry_config(tmp_path)).project(index.whl_url("cu130"), "torch")
    assert f"the connection to 127.0.0.1:{index.port} broke off" in str(raised.value)
    assert raised.value.advice == "Run the command again."


def test_a_page_redirected_in_a_loop_says_so(
    index: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mirror (or a proxy's login page) that redirects for ever: not "could not
    connect"."""

    def again(handler: Any, record: Any, raw_path: str, *_: Any, head: bool) -> None:
        index._redirect(handler, record, raw_path, head=head)

    monkeypatch.setattr(index, "_route", again)
    with pytest.raises(IndexUnavailableError) as raised:
        IndexClient(poetry_config(tmp_path)).project(index.whl_url("cu130"), "torch")
    assert f"127.0.0.1:{index.port} redirected in a loop" in str(raised.value)


def test_a_refusal_is_worded_once_with_the_source_and_its_variables(
    index: IndexServer, tmp_path: Path
) -> None:
    """``poetry torch-cuda lock`` and an install's lock read the same refusal:
    the client names the source whose credentials went and where they come from,
    or how to give them when none went."""
    index.require_auth = ("alice", "s3cret")
    config = poetry_config(tmp_path)
    config.merge({"http-basic": {"pytorch": {"username": "alice", "password": "no"}}})
    client = IndexClient(config, [("pytorch", index.whl_url("cu129"))])
    with pytest.raises(IndexUnavailableError) as raised:
        client.project(index.whl_url("cu129"), "torch")
    assert "the index refused access (HTTP 401)" in str(raised.value)
    assert "`poetry config http-basic.pytorch <user> <password>`" in str(raised.value)
    assert "POETRY_HTTP_BASIC_PYTORCH_PASSWORD" in str(raised.value)
    with pytest.raises(IndexUnavailableError) as raised:
        IndexClient(poetry_config(tmp_path)).project(index.whl_url("cu129"), "torch")
    assert "declare it as a [[tool.poetry.source]]" in str(raised.value)


def test_no_answer_is_worded_with_its_way_on(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = IndexClient(poetry_config(tmp_path))
    with pytest.raises(IndexUnavailableError) as raised:
        client.project(f"http://127.0.0.1:{port}/whl/cu129", "torch")
    assert f"127.0.0.1:{port} refused the connection. Check the network" in str(
        raised.value
    )
    assert "POETRY_TORCH_CUDA_INDEX_URL for one run" in str(raised.value)


def test_an_unreachable_per_run_mirror_is_named_as_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The user set POETRY_TORCH_CUDA_INDEX_URL: advising index-url, or to set the
    # variable, points away from the mirror that failed.
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mirror = f"http://ci:s3cret@127.0.0.1:{port}/api/{{variant}}/simple"
    monkeypatch.setenv("POETRY_TORCH_CUDA_INDEX_URL", mirror)
    client = IndexClient(poetry_config(tmp_path))
    with pytest.raises(IndexUnavailableError) as raised:
        client.project(mirror.format(variant="cu129"), "torch")
    assert str(raised.value).endswith(
        "refused the connection. Check the network and POETRY_TORCH_CUDA_INDEX_URL "
        "(this run's mirror), or unset it to use the configured index."
    ), raised.value
    assert "s3cret" not in str(raised.value)


def test_a_file_broken_off_mid_body_is_worded_as_a_page_is(
    index: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock streams a wheel to disk for its METADATA: a body cut short there is
    the same broken connection as a page's, not an unexpected failure."""
    client = IndexClient(poetry_config(tmp_path))
    [file, *_] = client.project(index.whl_url("cu130"), "torch").entries
    write = index._write_body

    def halfway(handler: Any, body: bytes) -> None:
        write(handler, body[:40])
        handler.close_connection = True

    monkeypatch.setattr(index, "_write_body", halfway)
    with pytest.raises(IndexUnavailableError) as raised, open(os.devnull, "wb") as sink:
        client.download(file.url, sink)
    assert f"the connection to 127.0.0.1:{index.port} broke off" in str(raised.value)


def test_a_page_forbidden_without_credentials_is_asked_again_once_they_are_given(
    index: IndexServer, tmp_path: Path
) -> None:
    """A private mirror answered 403 to a request without credentials: read as a
    missing page and cached for 10 minutes, so after `poetry config http-basic…`
    `variants` and `auto` still saw no torch there (auto took another build). A
    page read with credentials is another question than one read without."""
    index.fail_paths["/whl/cu130/"] = 403
    assert (
        not IndexClient(poetry_config(tmp_path))
        .project(index.whl_url("cu130"), "torch")
        .found
    )
    index.fail_paths.clear()
    config = poetry_config(tmp_path)
    config.merge({"http-basic": {"mirror": {"username": "alice", "password": "pw"}}})
    client = IndexClient(config, [("mirror", index.whl_url("cu130"))])
    assert client.project(index.whl_url("cu130"), "torch").found


@pytest.mark.parametrize("status", [403, 404])
def test_a_listed_file_the_index_does_not_serve_says_what_works_at_lock_time(
    index: IndexServer, tmp_path: Path, status: int
) -> None:
    """The lock reads a wheel its page lists; a 403/404 for it advised "run
    `poetry torch-cuda lock` again", which meets the same failure."""
    client = IndexClient(poetry_config(tmp_path))
    [file, *_] = client.project(index.whl_url("cu130"), "torch").entries
    index.fail_paths[unquote(urlsplit(file.url).path)] = status
    with pytest.raises(IndexUnavailableError) as raised, open(os.devnull, "wb") as sink:
        client.download(file.url, sink)
    said = str(raised.value)
    assert f"the index has no such file (HTTP {status})" in said, said
    assert "lock` again" not in said, said
    assert said.endswith(
        "The index lists it but does not serve it: tell whoever runs the index, "
        "or choose another version or variant."
    ), said


def test_netrc_credentials_never_go_to_a_plain_http_page(
    index: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    client = IndexClient(poetry_config(tmp_path), refresh=True)
    assert client.project(index.whl_url("cu129"), "torch").found
    with open(os.devnull, "wb") as sink:  # Poetry's request, redirected to the page
        client.download(index.whl_url("cu129") + "/torch", sink)
    assert [r.status for r in index.records] == [200, 301, 200]
    assert {r.authorization for r in index.records} == {None}


@pytest.mark.parametrize("fault", ["broken off", "redirect loop", "TLS"])
def test_an_index_that_answered_badly_is_asked_again_by_the_next_run(
    index: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """Only a host that did not answer is not asked again for a while: a page
    broken off, redirected in a loop or refused by TLS (a certificate not trusted
    yet) is asked afresh by the next command."""
    url = index.whl_url("cu130")
    if fault == "broken off":
        write = index._write_body

        def halfway(handler: Any, body: bytes) -> None:
            write(handler, body[:40])
            handler.close_connection = True

        monkeypatch.setattr(index, "_write_body", halfway)
    elif fault == "redirect loop":

        def again(
            handler: Any, record: Any, raw_path: str, *_: Any, head: bool
        ) -> None:
            index._redirect(handler, record, raw_path, head=head)

        monkeypatch.setattr(index, "_route", again)
    else:
        front = TlsFront(index, tmp_path).start()
        url = f"{front.url}/whl/cu130"
    with pytest.raises(IndexUnavailableError):
        IndexClient(poetry_config(tmp_path)).project(url, "torch")
    monkeypatch.undo()
    if fault == "TLS":
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(front.ca))
    index.clear_requests()
    files = IndexClient(poetry_config(tmp_path)).project(url, "torch")
    assert files.found
    assert torch_requests(index, "cu130") == ["/whl/cu130/torch/"]
    if fault == "TLS":
        front.stop()


def test_a_host_that_did_not_answer_is_not_asked_again_for_a_while(
    tmp_path: Path,
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/whl/cu129"
    with pytest.raises(IndexUnavailableError):
        IndexClient(poetry_config(tmp_path)).project(url, "torch")
    with pytest.raises(IndexUnavailableError, match=r"refused the connection \(noted"):
        IndexClient(poetry_config(tmp_path)).project(url, "torchvision")
