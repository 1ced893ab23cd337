from __future__ import annotations

from typing import TYPE_CHECKING

from poetry_torch_cuda.project.pyproject_edit import set_variant


if TYPE_CHECKING:
    from pathlib import Path

ORIGINAL = """\
[project]
name = "demo"  # the app
version = "0.1.0"

# PyTorch build
[tool.poetry-torch-cuda]
variant = "cu129"   # matches our cluster
packages = ["torch", "torchvision"]

[tool.other]
keep = true
"""


def test_only_the_variant_changes(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(ORIGINAL)
    assert set_variant(path, "cu130")
    assert path.read_text() == ORIGINAL.replace('"cu129"   #', '"cu130"   #')


def test_same_variant_leaves_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(ORIGINAL)
    before = path.stat().st_mtime_ns
    assert not set_variant(path, "cu129")
    assert path.stat().st_mtime_ns == before


def test_crlf_preserved(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_bytes(ORIGINAL.replace("\n", "\r\n").encode())
    set_variant(path, "cpu")
    data = path.read_bytes()
    assert b'variant = "cpu"' in data
    assert data.count(b"\r\n") == ORIGINAL.count("\n")


def test_table_created_when_missing(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n')
    assert set_variant(path, "cpu")
    assert (
        path.read_text()
        == '[project]\nname = "x"\n\n[tool.poetry-torch-cuda]\nvariant = "cpu"\n'
    )
