"""Credentials of an https source never go out over plain http (issue 20 #1).

The mirror is an https front (a self-signed certificate on 127.0.0.1, trusted
through ``certificates.torch-mirror.cert``) that answers plain http on the
same host and port too, in front of the local index, which demands the
source's credentials under /whl/. Two ways an http URL of that host reaches
the downloader: the https page links its files as ``http://same-host/...``,
or someone edits a ``url`` in the committed torch-cuda.lock.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.support.tls import TlsFront


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e

USER = "mirror-robot"
PASSWORD = "https-0nly-s3cret"
DEPS = {"needs-torch": "*", "torchvision": "*"}


@pytest.fixture
def front(index: IndexServer, tmp_path: Path) -> Iterator[TlsFront]:
    directory = tmp_path / "tls"
    directory.mkdir()
    with TlsFront(index, directory) as server:
        server.require_auth = (USER, PASSWORD)
        yield server


@pytest.fixture
def project(project_factory: ProjectFactory, front: TlsFront) -> Project:
    made = project_factory(DEPS)
    made.write_pyproject(
        made.pyproject_text()
        + '\n[[tool.poetry.source]]\nname = "torch-mirror"\n'
        + f'url = "{front.url}/whl/{{variant}}"\npriority = "explicit"\n'
        + '\n[tool.poetry-torch-cuda]\nvariant = "cu129"\nsource = "torch-mirror"\n'
    )
    made.env.update(
        {
            "POETRY_HTTP_BASIC_TORCH_MIRROR_USERNAME": USER,
            "POETRY_HTTP_BASIC_TORCH_MIRROR_PASSWORD": PASSWORD,
            "POETRY_CERTIFICATES_TORCH_MIRROR_CERT": str(front.ca),
        }
    )
    return made


def assert_refused_in_the_clear(result: object, front: TlsFront) -> None:
    stderr = getattr(result, "stderr", "")
    assert getattr(result, "returncode", 0) == 1, stderr
    clear = front.over_http()
    assert clear, "the test never sent a request over http"
    assert {seen.authorization for seen in clear} == {None}
    assert "plain http" in stderr
    assert "HTTP 401" in stderr
    assert "Traceback" not in stderr
    assert PASSWORD not in stderr


def test_https_page_linking_files_over_http_gets_no_credentials(
    project: Project, front: TlsFront
) -> None:
    front.links_over_http = True
    result = project.run("install", check=False)
    assert_refused_in_the_clear(result, front)
    assert "torch" not in project.installed()
    # The pages themselves came over https, with the credentials.
    pages = [seen for seen in front.records if seen.scheme == "https"]
    assert pages and all(seen.authorization for seen in pages)


def test_https_file_redirected_to_http_gets_no_credentials(
    project: Project, front: TlsFront
) -> None:
    front.redirect_files_over_http = True
    result = project.run("install", check=False)
    assert_refused_in_the_clear(result, front)
    assert "torch" not in project.installed()
    redirected = [seen for seen in front.records if seen.status == 302]
    assert redirected and all(seen.authorization for seen in redirected)


def test_https_page_redirected_to_http_says_so_at_the_lock_step(
    project: Project, front: TlsFront
) -> None:
    """The install locks the variant first: its advice is judged by where the
    page request ended (plain http), not by the https URL it started at."""
    front.redirect_pages_over_http = True
    result = project.run("install", check=False)
    assert_refused_in_the_clear(result, front)
    assert "Check the credentials" not in result.stderr
    assert "torch" not in project.installed()


def test_edited_lock_url_over_http_gets_no_credentials(
    project: Project, front: TlsFront
) -> None:
    project.run("lock")
    lock = project.path / "torch-cuda.lock"
    text = lock.read_text()
    torch_url = re.search(r'url = "(torch/torch-2\.14\.1[^"]*)"', text)
    assert torch_url is not None, text
    edited = f"{front.plain_url}/whl/cu129/{torch_url.group(1)}"
    lock.write_text(text.replace(f'"{torch_url.group(1)}"', f'"{edited}"', 1))
    result = project.run("install", check=False)
    assert_refused_in_the_clear(result, front)
    assert "torch" not in project.installed()


def test_https_mirror_with_its_certificate_installs(
    project: Project, front: TlsFront
) -> None:
    project.run("install")
    assert project.installed()["torch"] == "2.14.1+cu129"
    assert not front.over_http()


def test_per_run_mirror_over_http_gets_no_credentials(
    project: Project, front: TlsFront
) -> None:
    """``POETRY_TORCH_CUDA_INDEX_URL`` on plain http at the https source's host:
    the source's credentials stay home, for its pages and its files."""
    project.run("lock")
    result = project.run(
        "install",
        check=False,
        env_extra={"POETRY_TORCH_CUDA_INDEX_URL": f"{front.plain_url}/whl/{{variant}}"},
    )
    assert_refused_in_the_clear(result, front)
    assert "POETRY_TORCH_CUDA_INDEX_URL" in result.stderr
    assert "torch" not in project.installed()
