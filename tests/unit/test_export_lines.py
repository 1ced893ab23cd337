"""The export's lines for the shapes a project has: url archives, plain-http
indexes, credentials (issue 20 #8, #9 and the lower-impact credentials comment)."""

from __future__ import annotations

import sys

from poetry_torch_cuda.commands.export import ExportedPackage
from poetry_torch_cuda.commands.export import pylock_toml
from poetry_torch_cuda.commands.export import requirements_txt


if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

URL = "https://example.org/dl/mylib-0.1.0-py3-none-any.whl"
ARCHIVE = ExportedPackage(
    "mylib",
    "0.1.0",
    "",
    None,
    (("mylib-0.1.0-py3-none-any.whl", None, "a" * 64, None),),
    URL,
)
MIRROR = "http://mirror.internal:8080/whl/cu129"
TORCH = ExportedPackage(
    "torch", "2.14.1+cu129", "", MIRROR, (("t.whl", f"{MIRROR}/t.whl", "b" * 64, 4096),)
)


def test_a_url_dependency_is_written_as_its_url_with_its_hash() -> None:
    text = requirements_txt("cu129", [ARCHIVE, TORCH], lambda url: url == MIRROR)
    assert f"mylib @ {URL} \\\n    --hash=sha256:{'a' * 64}" in text
    assert f"--index-url {MIRROR}" in text
    assert "--trusted-host mirror.internal:8080" in text
    assert f"# {MIRROR} needs credentials" in text


def test_pylock_writes_archives_and_the_trusted_host_hint() -> None:
    text = pylock_toml("cu129", [ARCHIVE, TORCH], ">=3.9,<4.0", lambda url: False)
    data = tomllib.loads(text)
    mylib = next(p for p in data["packages"] if p["name"] == "mylib")
    assert mylib["archive"] == {"url": URL, "hashes": {"sha256": "a" * 64}}
    torch = next(p for p in data["packages"] if p["name"] == "torch")
    assert torch["wheels"][0]["size"] == 4096  # PEP 751: SHOULD, where known
    assert data["requires-python"] == ">=3.9,<4.0"
    assert "pip install --trusted-host mirror.internal:8080 -r pylock.toml" in text


def test_a_file_dependency_under_a_folder_with_at_keeps_its_path() -> None:
    """A path is no URL: ``libs@2/`` is a folder, not credentials; pip takes the
    file's ``file:`` URL."""
    path = "/work/libs@2/mylib-0.1.0-py3-none-any.whl"
    local = ExportedPackage(
        "mylib",
        "0.1.0",
        "",
        None,
        (("mylib-0.1.0-py3-none-any.whl", None, "a" * 64, None),),
        path,
    )
    text = pylock_toml("cu129", [local, TORCH], ">=3.9,<4.0", lambda url: False)
    mylib = next(p for p in tomllib.loads(text)["packages"] if p["name"] == "mylib")
    assert mylib["archive"] == {"path": path, "hashes": {"sha256": "a" * 64}}
    assert "needs credentials" not in text
    lines = requirements_txt("cu129", [local, TORCH], lambda url: False)
    assert "mylib @ file:///work/libs%402/mylib-0.1.0-py3-none-any.whl " in lines
    assert "needs credentials" not in lines


def test_a_git_dependency_refused_names_its_url_without_the_token() -> None:
    """A private repository's URL carries a token; the refusal names the URL, never
    the token (Poetry locks it as written in pyproject.toml)."""
    import pytest
    from poetry.core.packages.package import Package

    from poetry_torch_cuda.commands.export import _poetry_package
    from poetry_torch_cuda.errors import TorchCudaError

    url = "https://ci:ghp_s3cret@github.com/org/mylib.git"
    package = Package("mylib", "0.1.0", source_type="git", source_url=url)
    with pytest.raises(TorchCudaError) as raised:
        _poetry_package(None, package, "", urls=False)  # type: ignore[arg-type]
    assert "cannot export mylib (git dependency https://" in str(raised.value)
    assert "github.com/org/mylib.git" in str(raised.value)
    assert "ghp_s3cret" not in str(raised.value)
