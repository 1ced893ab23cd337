"""ARCHITECTURE.md names only what exists, and its floors are the enforced ones.

A newcomer starts reading where the map points; a renamed symbol or a moved file
must fail here, not mislead them.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import tomlkit


ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "src" / "poetry_torch_cuda"
DOC = ROOT / "ARCHITECTURE.md"
#: Backticked words that are commands, files or terms, not symbols.
WORDS = {
    "auto", "detect", "export", "lint", "lock", "packages", "poetry", "status",
    "switch", "sync", "variant", "variants", "verify", "work()",
}  # fmt: skip


@cache
def _defined(path: Path) -> frozenset[str]:
    """Every name a module defines: functions, classes, methods, assignments."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        targets: list[ast.expr] = []
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
        names.update(t.attr for t in targets if isinstance(t, ast.Attribute))
    return frozenset(names)


SEARCHED = [*PACKAGE.rglob("*.py"), *(ROOT / "tests" / "support").glob("*.py")]
#: Poetry's names the map mentions.
POETRYS = {"Authenticator"}


def _exists(reference: str) -> bool:
    """Whether a backticked ``reference`` of the map names a file, a folder or a
    symbol that exists (``module.name``, ``Class.method``, ``folder/module.name``)."""
    if reference.endswith("/"):
        return any((base / reference).is_dir() for base in (PACKAGE, ROOT))
    folder, _, tail = reference.rpartition("/")
    stem, _, rest = tail.removesuffix(".py").partition(".")
    names = [n for n in rest.split(".") if n]
    if tail.endswith(".py") or folder or stem in {p.stem for p in SEARCHED}:
        where = f"{folder}/{stem}.py".lstrip("/")
        modules = [p for p in [*SEARCHED, ROOT / where] if p.match(where)]
        return any(p.is_file() and set(names) <= _defined(p) for p in modules)
    every = {name for path in SEARCHED for name in _defined(path)}
    return reference in POETRYS or set(reference.strip(".").split(".")) <= every


def _references() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    spans = re.findall(r"`([^`\s]+)`", text)
    flow = "\n".join(re.findall(r"```\n(.*?)```", text, flags=re.DOTALL))
    dotted = re.findall(r"\b((?:[a-z]+/)?[a-z_]+\.[A-Za-z_.]*[A-Za-z_])\b", flow)
    wanted = [*spans, *dotted]
    return sorted(
        {
            ref
            for ref in wanted
            if "<" not in ref
            and ref not in WORDS
            and not ref.startswith(("-", "["))
            and not ref.endswith((".lock", ".toml", ".md"))
            and re.fullmatch(r"[\w./()]+", ref)
            and (ref.endswith(("/", ".py")) or not ref.startswith(("tests", "src")))
            and not ref.startswith(("poetry.", "nvidia"))
        }
    )


@pytest.mark.parametrize("reference", _references())
def test_every_name_the_map_gives_exists(reference: str) -> None:
    assert _exists(reference.removesuffix("()")), (
        f"ARCHITECTURE.md names `{reference}`, which does not exist"
    )


def test_the_floors_are_the_enforced_layers() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("The floors, top to bottom:", 1)[1].split("```")[1]
    floors = [line.split("  ")[0].strip() for line in block.strip().splitlines()]
    settings = tomlkit.parse((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = settings["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    assert floors == layers


def test_the_benchmark_times_only_what_exists() -> None:
    """benchmarks/phases.py wraps these names at import: a renamed one would crash
    the benchmark's Poetry process instead of timing it."""
    import importlib

    from benchmarks.phases import TIMED

    for module, names in TIMED.items():
        for dotted in names:
            owner = importlib.import_module(module)
            for part in dotted.split("."):
                owner = getattr(owner, part)
