"""`poetry torch-cuda lock` against an index that answers garbage, and what `export`
says of a lock it cannot export (in-process: the point is the wording and the file
written)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING
from typing import Any

import pytest
from packaging.markers import default_environment

from tests.support.inprocess import run_inprocess


if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer


TABLE = 'variant = "cu129"\npackages = ["torch"]'


@pytest.mark.parametrize("body", [b"null", b'{"files": "none"}', b'{"files": [1]}'])
def test_a_json_page_of_another_shape_is_named_as_not_a_simple_index(
    project_factory: ProjectFactory,
    index: IndexServer,
    monkeypatch: pytest.MonkeyPatch,
    body: bytes,
) -> None:
    """Valid JSON that is no PEP 691 page printed only Python's "'NoneType' object
    has no attribute 'get'"."""
    project = project_factory({"torch": "*"}, TABLE)
    assert run_inprocess(project, "lock").returncode == 0
    monkeypatch.setattr(index, "_json_page", lambda *_: body)
    result = run_inprocess(project, "torch-cuda", "lock")
    assert result.returncode == 1, result
    assert "/whl/cu129/torch/ answered with a page that is not a simple index" in (
        result.stderr
    )
    assert "attribute" not in result.stderr


@pytest.mark.parametrize("size", ["big", -5, True, 10.5])
def test_a_size_that_is_no_size_leaves_a_lock_the_plugin_reads(
    project_factory: ProjectFactory,
    index: IndexServer,
    monkeypatch: pytest.MonkeyPatch,
    size: Any,
) -> None:
    """The index's PEP 700 ``size`` was written as given: `lock` wrote a
    torch-cuda.lock its own reader refuses, and the fix it named wrote it again."""
    project = project_factory({"torch": "*"}, TABLE)
    page = index._json_page

    def sized(*args: Any) -> bytes:
        content = json.loads(page(*args))
        for file in content["files"]:
            file["size"] = size
        return json.dumps(content).encode()

    monkeypatch.setattr(index, "_json_page", sized)
    assert run_inprocess(project, "lock").returncode == 0
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 0, check
    assert "torch-cuda.lock matches poetry.lock" in check.stdout


def test_export_without_torch_cuda_lock_says_so_not_to_add_the_variant(
    project_factory: ProjectFactory,
) -> None:
    """The configured variant is always locked: "add it to lock-variants" was the
    fix given for a torch-cuda.lock that was not there (not committed, say)."""
    project = project_factory({"torch": "*"}, TABLE)
    assert run_inprocess(project, "lock").returncode == 0
    (project.path / "torch-cuda.lock").unlink()
    result = run_inprocess(project, "torch-cuda", "export")
    assert result.returncode == 1
    assert result.stderr == (
        "torch-cuda.lock does not match this project: torch-cuda.lock does not exist.\n"
        "Run `poetry torch-cuda lock` and commit torch-cuda.lock.\n"
    )
    other = run_inprocess(project, "torch-cuda", "lock")
    assert other.returncode == 0
    result = run_inprocess(project, "torch-cuda", "export", "--variant", "cu130")
    assert result.returncode == 1
    assert "has no cu130; add it to lock-variants" in result.stderr


def test_a_package_configured_by_a_range_alone_is_exported_as_installs_take_it(
    project_factory: ProjectFactory,
) -> None:
    """`poetry install` puts in torchaudio (`"torchaudio>=2.8"`, not in poetry.lock,
    locked in torch-cuda.lock); the export left it out of the image."""
    table = 'variant = "cu129"\npackages = ["torch", "torchaudio>=2.8"]'
    project = project_factory({"tinyutil": "*"}, table)
    project.write_pyproject(
        project.pyproject_text()
        + "\n[tool.poetry.group.gpu]\noptional = true\n"
        + '[tool.poetry.group.gpu.dependencies]\ntorch = "*"\n'
    )
    assert run_inprocess(project, "lock").returncode == 0
    text = run_inprocess(project, "torch-cuda", "export", "--with", "gpu").stdout
    assert "torch==2.14.1+cu129" in text
    mac = ' ; platform_system != "Darwin"'  # a Mac's install has none: PyPI's torch
    assert f"torchaudio==2.14.1+cu129{mac} \\\n    --hash=sha256:" in text
    without = run_inprocess(project, "torch-cuda", "export").stdout
    assert "tinyutil==" in without
    assert "torch==" not in without  # no build without the group,
    assert "torchaudio" not in without  # so no torchaudio either


def test_a_pylock_named_otherwise_is_refused_as_pip_would_misread_it(
    project_factory: ProjectFactory,
) -> None:
    """pip reads a file as PEP 751 only by its name (`pylock.toml`,
    `pylock.<name>.toml`): `-o image.toml` was written, and `pip install -r
    image.toml` failed on its first line ("= is not a valid operator")."""
    project = project_factory({"torch": "*"}, TABLE)
    assert run_inprocess(project, "lock").returncode == 0
    pylock = ("torch-cuda", "export", "-f", "pylock.toml", "-o")
    result = run_inprocess(project, *pylock, "image.toml")
    assert result.returncode == 1
    assert result.stderr == (
        "-o image.toml: pip installs a pylock.toml file only by the name pylock.toml "
        "or pylock.<name>.toml (PEP 751).\n"
    )
    assert not (project.path / "image.toml").exists()
    for name in ("pylock.toml", "out/pylock.gpu.toml"):
        assert run_inprocess(project, *pylock, name).returncode == 0
        assert 'version = "2.14.1+cu129"' in (project.path / name).read_text()


def test_a_variant_without_builds_for_macos_exports_pypis_torch_there(
    project_factory: ProjectFactory,
) -> None:
    """`poetry install` on a Mac installs PyPI's torch (PyTorch publishes no CUDA
    builds for darwin); the export wrote ``torch==2.14.1+cu129`` for every
    platform, which pip cannot find on a Mac, and no PyPI line for it."""
    project = project_factory({"torch": "*"}, TABLE)
    assert run_inprocess(project, "lock").returncode == 0
    text = run_inprocess(project, "torch-cuda", "export").stdout
    assert 'torch==2.14.1 ; platform_system == "Darwin" \\\n    --hash=sha256:' in text
    assert 'torch==2.14.1+cu129 ; platform_system != "Darwin" \\\n' in text, text
    assert 'and platform_system != "Darwin"' not in text, text  # CUDA wheels: Linux's
    assert "nvidia-cublas==" not in text, text  # PyPI's torch's: Linux-only too
    pylock = run_inprocess(project, "torch-cuda", "export", "-f", "pylock.toml")
    lock = pytest.importorskip("packaging.pylock").Pylock.from_dict(
        tomllib.loads(pylock.stdout)  # valid by PEP 751, as packaging reads it
    )
    for system, torch in (("Darwin", "2.14.1"), ("Linux", "2.14.1+cu129")):
        env = {**default_environment(), "platform_system": system}
        chosen = {p.name: str(p.version) for p, _ in lock.select(environment=env)}
        assert chosen["torch"] == torch, (system, chosen)


def test_pylock_gives_each_file_the_size_the_index_gave(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    """PEP 751: a file's ``size`` SHOULD be there; pylock.toml wrote none, though the
    index's pages (PEP 700) and torch-cuda.lock had them. Where no page gave one
    (an HTML page, or Poetry before 2.3, whose links carry none), none is written:
    a size is never guessed."""
    from urllib.request import urlopen

    from poetry.core.packages.utils.link import Link

    sized = hasattr(Link("https://example.org/a-1.0-py3-none-any.whl"), "size")
    project = project_factory({"torch": "*", "tinyutil": "*"}, TABLE)
    assert run_inprocess(project, "lock").returncode == 0
    pylock = ("torch-cuda", "export", "-f", "pylock.toml")
    data = tomllib.loads(run_inprocess(project, *pylock).stdout)
    wheels = [w for p in data["packages"] for w in p.get("wheels", [])]
    assert {w["name"].partition("-")[0] for w in wheels} >= {"torch", "tinyutil"}
    for wheel in wheels:
        with urlopen(wheel["url"]) as response:  # the local index
            size = len(response.read())
        poetrys = "/whl/" not in wheel["url"]  # not torch-cuda.lock's
        assert wheel.get("size") == (size if sized or not poetrys else None), wheel
    pytest.importorskip("packaging.pylock").Pylock.from_dict(data)
    index.serve_json = False  # HTML: no size for what poetry.lock locks
    data = tomllib.loads(run_inprocess(project, *pylock).stdout)
    sizes = {p["name"]: [w.get("size") for w in p["wheels"]] for p in data["packages"]}
    assert sizes["tinyutil"] == [None], sizes
    assert None not in sizes["torch"], sizes  # torch-cuda.lock's
