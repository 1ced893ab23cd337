"""PEP 825 wheel variants on an index page break nothing (issue 24 #7).

download.pytorch.org serves wheels with a variant label after the platform tag
(``…-manylinux_2_28_x86_64-<label>.whl``) and a ``<name>-<version>-variants.json``
file under ``/whl/variant/``. Page parsing, locking and ``variants`` skip
them, and ``-v`` names what was skipped.
"""

from __future__ import annotations

import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest
from poetry.config.config import Config

from poetry_torch_cuda.index.client import IndexClient
from tests.support.index import IndexServer
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import describe


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.catalog import Universe
    from tests.support.fixtures import ProjectFactory

pytestmark = pytest.mark.e2e

VARIANT_WHEEL = "torch-2.14.1+cu129-py3-none-any-nv0a1b2c.whl"
VARIANTS_JSON = "torch-2.14.1+cu129-variants.json"
SHA = "0" * 64


@pytest.fixture
def static_page(tmp_path: Path) -> Iterator[str]:
    """A PEP 503 page for torch listing a plain wheel, a variant wheel and its json."""
    page = tmp_path / "site" / "torch"
    page.mkdir(parents=True)
    links = [
        "torch-2.14.1+cu129-py3-none-any.whl",
        VARIANT_WHEEL,
        "torch-2.14.1+cu129-1-py3-none-any.whl",  # a build tag, not a variant
        VARIANTS_JSON,
    ]
    (page / "index.html").write_text(
        "<html><body>\n"
        + "".join(f'<a href="{name}#sha256={SHA}">{name}</a>\n' for name in links)
        + "</body></html>\n"
    )
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_page_parses_and_variant_files_are_left_out(
    static_page: str, tmp_path: Path
) -> None:
    config = Config()
    config.merge({"cache-dir": str(tmp_path / "cache")})
    files = IndexClient(config, refresh=True).project(static_page, "torch")
    assert files.found
    names = [entry.filename for entry in files.entries]
    assert VARIANT_WHEEL not in names
    assert VARIANTS_JSON not in names
    assert "torch-2.14.1+cu129-py3-none-any.whl" in names
    assert "torch-2.14.1+cu129-1-py3-none-any.whl" in names
    assert VARIANT_WHEEL in files.skipped
    assert [str(v) for v in files.versions("cu129")] == ["2.14.1+cu129"]


def test_locking_and_variants_skip_them_with_a_note(
    project_factory: ProjectFactory, universe: Universe, tmp_path: Path
) -> None:
    root = tmp_path / "variant-index"
    shutil.copytree(universe.root / "whl" / "cu129", root / "whl" / "cu129")
    torch = root / "whl" / "cu129" / "torch"
    shutil.copy(torch / "torch-2.14.1+cu129-py3-none-any.whl", torch / VARIANT_WHEEL)
    with IndexServer(root) as variant_index:
        project = project_factory(
            {"needs-torch": "*", "torchvision": "*"},
            f'variant = "cu129"\nindex-url = "{variant_index.url}/whl/{{variant}}"\n',
        )
        project.run("lock")
        result = project.run("torch-cuda", "lock", "-v", check=False)
        assert result.returncode == 0, describe(result)
        assert f"skipped {VARIANT_WHEEL}" in result.stdout, describe(result)
        lock = (project.path / "torch-cuda.lock").read_text()
        assert VARIANT_WHEEL not in lock
        assert "torch-2.14.1+cu129-py3-none-any.whl" in lock
        shown = run_inprocess(project, "torch-cuda", "variants")
        assert shown.returncode == 0, shown
        assert "Traceback" not in shown.stdout + shown.stderr
