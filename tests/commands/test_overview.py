"""``poetry torch-cuda`` and ``poetry torch-cuda --help`` list the subcommands (in-process)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from poetry_torch_cuda import COMMANDS
from tests.support.inprocess import Result
from tests.support.inprocess import run_in
from tests.support.poetry_project import isolated_env


if TYPE_CHECKING:
    from pathlib import Path

SUBCOMMANDS = sorted(
    name.split(" ", 1)[1] for name in COMMANDS if name.startswith("torch-cuda ")
)


def poetry(tmp_path: Path, *args: str) -> Result:
    """``poetry --no-ansi *args`` outside any project."""
    return run_in(tmp_path, isolated_env(tmp_path), *args)


def listed(text: str) -> list[str]:
    """Subcommands the listing names, one per line, in order."""
    return [
        line.split()[0]
        for line in text.splitlines()
        if line.strip() and line.split()[0] in SUBCOMMANDS
    ]


@pytest.mark.parametrize("args", [(), ("--help",)], ids=["alone", "help"])
def test_the_namespace_lists_its_commands(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = poetry(tmp_path, "torch-cuda", *args)
    assert result.returncode == 0, result
    assert listed(result.stdout) == SUBCOMMANDS
    assert "does not exist" not in result.stdout + result.stderr
    assert "Documentation:" in result.stdout
    assert "python-poetry.org/docs/cli/#torch-cuda" not in result.stdout


def test_a_mistyped_subcommand_fails_with_the_list(tmp_path: Path) -> None:
    result = poetry(tmp_path, "torch-cuda", "swich", "cpu")
    assert result.returncode == 1, result
    assert "The requested command swich does not exist in the torch-cuda namespace" in (
        result.stderr
    )
    assert listed(result.stderr) == SUBCOMMANDS


def test_subcommands_and_poetry_list_still_work(tmp_path: Path) -> None:
    result = poetry(tmp_path, "torch-cuda", "status", "--help")
    assert result.returncode == 0, result
    assert "--check" in result.stdout
    listing = poetry(tmp_path, "list", "torch-cuda")
    assert listing.returncode == 0, listing
    assert [f"torch-cuda {name}" for name in SUBCOMMANDS] == [
        " ".join(line.split()[:2])
        for line in listing.stdout.splitlines()
        if line.strip().startswith("torch-cuda ")
    ]
