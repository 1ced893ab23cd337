"""Rewrite the ``variant`` key of pyproject.toml with tomlkit, leaving the rest as it was."""

from __future__ import annotations

from typing import TYPE_CHECKING

import tomlkit

from poetry_torch_cuda.config import TABLE


if TYPE_CHECKING:
    from pathlib import Path


def set_variant(pyproject: Path, variant: str) -> bool:
    """Set ``[tool.poetry-torch-cuda] variant``; return whether the file changed.

    Comments, ordering and formatting elsewhere are preserved; the table is
    created when the project has none.
    """
    original = pyproject.read_bytes().decode("utf-8")
    document = tomlkit.parse(original)
    tool = document.get("tool")
    if tool is None:
        tool = tomlkit.table(is_super_table=True)
        document["tool"] = tool
    table = tool.get(TABLE)
    if table is None:
        table = tomlkit.table()
        tool[TABLE] = table
    if table.get("variant") == variant:
        return False
    table["variant"] = variant
    updated = tomlkit.dumps(document)
    pyproject.write_bytes(updated.encode("utf-8"))
    return updated != original
