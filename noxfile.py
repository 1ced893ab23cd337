"""Developer tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``demo``, ``bench``, ``compat``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import nox


nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
# Sessions use virtualenv (a dependency of nox, so always there), never uv.
nox.options.default_venv_backend = "virtualenv"


class _NoUvProbeNoise(logging.Filter):
    """Drop nox's "uv binary not found." line.

    nox looks for uv before every session whatever the backend (to list the
    optional ones); with ``virtualenv`` chosen above, its absence is expected.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "uv binary not found."


logging.getLogger("nox").addFilter(_NoUvProbeNoise())

# The newest Poetry release the suite is proven against; override with POETRY_VERSION.
POETRY_DEFAULT = os.environ.get("POETRY_VERSION", "2.5.1")
#: pytest-xdist >= 3.2 for `--dist worksteal` (PARALLEL).
TEST_REQUIREMENTS = ["pytest>=8", "pytest-xdist>=3.2", "hypothesis>=6"]
#: What the packaging, pre-commit and CI-recipe (yaml) tests drive: test-only.
TEST_REQUIREMENTS += ["build>=1", "twine>=5", "pre-commit>=3", "pyyaml>=6"]
#: The e2e tests spend much of their time waiting on Poetry, pip, servers and timeouts
#: (the load stays under 2 with one worker per core): two workers per core. A worker
#: that runs out of tests takes half of a busy one's queue (``worksteal``): with
#: pytest-xdist's default (``load``) the worker that runs the quick in-process tests is
#: handed dozens of end-to-end tests at once and runs them alone after the others are done.
PARALLEL = ["-n", str(2 * (os.cpu_count() or 1)), "--dist", "worksteal"]
#: Python's default: modules are compiled once and the bytecode kept. A machine that
#: sets PYTHONDONTWRITEBYTECODE (as CI's does) would otherwise have every pip, Poetry
#: and pre-commit process the suite starts compile the same modules again.
BYTECODE = {"PYTHONDONTWRITEBYTECODE": ""}

#: The compatibility matrix: every Python the plugin supports x the last release of
#: each Poetry 2.x minor.
COMPAT_PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
COMPAT_POETRY = ["2.0.1", "2.1.4", "2.2.1", "2.3.4", "2.4.3", "2.5.1"]
#: Poetry releases that need a newer Python than the plugin does (their Requires-Python).
POETRY_NEEDS_PYTHON = {"2.3.4": "3.10", "2.4.3": "3.10", "2.5.1": "3.10"}
# A Python the machine lacks is skipped with nox's "interpreter not found" message.
nox.options.error_on_missing_interpreters = False


def _add_pyenv_pythons_to_path() -> None:
    """Let nox find pyenv's interpreters even where pyenv's shims are not set up for them."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if not root.is_dir():
        return
    found = sorted(
        (path for path in root.iterdir() if (path / "bin" / "python3").exists()),
        key=lambda path: [int(part) for part in path.name.split(".") if part.isdigit()],
        reverse=True,
    )
    entries = [str(path / "bin") for path in found]
    os.environ["PATH"] = os.pathsep.join([*entries, os.environ.get("PATH", "")])


_add_pyenv_pythons_to_path()


def install_project(session: nox.Session, poetry_version: str) -> None:
    """Install the plugin next to a given Poetry, as `poetry self add` would."""
    session.install(f"poetry=={poetry_version}", ".", *TEST_REQUIREMENTS)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite, end-to-end tests included, against the default Poetry."""
    install_project(session, POETRY_DEFAULT)
    session.run("pytest", *PARALLEL, *session.posargs, env=BYTECODE)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the floors of ARCHITECTURE.md (import-linter)."""
    session.install("ruff", "import-linter>=2.17")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # import-linter reads the source; nothing needs installing for it
    session.run("lint-imports", env={"PYTHONPATH": "src"})


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src/ (the files, against the Poetry they are typed for)."""
    session.install("mypy", f"poetry=={POETRY_DEFAULT}")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """Offline demo: local indexes, a kept project (.nox/demo-project), install keeps +cu130, switch cu126.

    ``nox -s demo -- --serve`` keeps the indexes up until Ctrl-C to explore the
    project; ``-- --keep DIR``; ``-- --help``.
    """
    # Poetry, the plugin and pytest (tests.support.gpus marks with it): the README
    # promises nothing else is downloaded.
    session.install(f"poetry=={POETRY_DEFAULT}", ".", "pytest")
    session.run("python", "-m", "tests.support.demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks, offline: plugin vs the same Poetry without it; writes benchmarks/RESULTS.md.

    ``nox -s bench -- --pairs 5``; ``--only startup,noop``; ``--help``. ``-- --real``: the
    real-scale rows (real CUDA wheels, cached in ~/.cache/ptc-real; not offline the first
    time); ``-- --real --plugin-src /path/to/checkout`` measures another checkout.
    """
    # The script builds both Poetry venvs itself, pinned to this session's Poetry.
    # uv: a contender (rows 7b, R1-R3); a bench-only dependency.
    session.install(f"poetry=={POETRY_DEFAULT}", "uv")
    venvs = f"{session.create_tmp()}/venvs"
    session.run("python", "-m", "benchmarks.bench", "--venvs", venvs, *session.posargs)


@nox.session(python=COMPAT_PYTHONS)
@nox.parametrize("poetry", COMPAT_POETRY)
def compat(session: nox.Session, poetry: str) -> None:
    """The suite against one Poetry release on one Python.

    ``nox -s compat`` runs the whole matrix; one cell:
    ``nox -s "compat-3.9(poetry='2.0.1')" -- -m e2e``.
    """
    needed = POETRY_NEEDS_PYTHON.get(poetry)
    python = str(session.python)
    if needed and _version(python) < _version(needed):
        session.skip(f"Poetry {poetry} needs Python >= {needed}, not {python}")
    install_project(session, poetry)
    session.run(
        "pytest", "-p", "no:cacheprovider", *PARALLEL, *session.posargs, env=BYTECODE
    )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))
