"""The tomlkit edit of the variant key, and the pending write switch commits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from poetry_torch_cuda.errors import ConfigError
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.project.pyproject_edit import prepare_variant
from poetry_torch_cuda.project.pyproject_edit import with_variant


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


def test_only_the_variant_changes() -> None:
    assert with_variant(ORIGINAL, "cu130") == ORIGINAL.replace(
        '"cu129"   #', '"cu130"   #'
    )


def test_same_variant_is_no_change() -> None:
    assert with_variant(ORIGINAL, "cu129") is None


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize(
    "value",
    [
        '"cu129"',
        "'cu129'",
        '"""cu129"""',
        "'''cu129'''",
        '"""NLcu129"""',  # the newline after the quotes is not in the value
        "'''NLcu129'''",
    ],
)
def test_the_strings_kind_is_kept_byte_for_byte(
    tmp_path: Path, value: str, newline: str
) -> None:
    """switch rewrote a multi-line string ('''cu129''', \"\"\"cu129\"\"\") as a
    one-line one; only the value changes, in the file as written too."""
    before = ORIGINAL.replace('"cu129"', value).replace("\n", newline)
    before = before.replace("NL", newline)
    after = before.replace("cu129", "cu130")
    assert with_variant(before, "cu130") == after
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_bytes(before.encode())
    pending = prepare_variant(pyproject, "cu130")
    assert pending is not None
    with pending:
        assert pending.commit()
    assert pyproject.read_bytes() == after.encode()


def test_crlf_preserved() -> None:
    edited = with_variant(ORIGINAL.replace("\n", "\r\n"), "cpu")
    assert edited is not None
    assert 'variant = "cpu"' in edited
    assert edited.count("\r\n") == ORIGINAL.count("\n")


@pytest.mark.parametrize(
    "original",
    [
        '[project]\nname = "x"\n',  # no table
        '[tool.poetry-torch-cuda]\npackages = ["torch"]\n',  # no variant
        '[[tool.poetry-torch-cuda]]\nvariant = "cu129"\n',  # not a table
    ],
)
def test_only_a_variant_there_is_replaced(original: str) -> None:
    """switch refuses such a file before it runs; one edited so meanwhile is left
    alone, not given a table or a key: the switch does not happen (a ConfigError)."""
    with pytest.raises(ConfigError) as raised:
        with_variant(original, "cpu")
    assert str(raised.value) == (
        "pyproject.toml no longer has a [tool.poetry-torch-cuda] table with a variant "
        "(edited while the switch ran); nothing was changed. Restore it, then run the "
        "switch again."
    )


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


def test_a_file_broken_meanwhile_is_left_alone_with_the_way_on(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.poetry-torch-cuda]\nvariant = "cu129"\n')
    pending = prepare_variant(pyproject, "cu130")
    assert pending is not None
    broken = b'[tool.poetry-torch-cuda]\nvariant = "cu129\n'  # an editor's save
    pyproject.write_bytes(broken)
    with pending, pytest.raises(TorchCudaError) as raised:
        pending.commit()
    message = str(raised.value)
    assert message.startswith("pyproject.toml is not valid TOML (")
    assert message.endswith(
        '); it was not changed. Set variant = "cu130" in it by hand.'
    )
    assert pyproject.read_bytes() == broken
    assert [p.name for p in tmp_path.iterdir()] == ["pyproject.toml"]
