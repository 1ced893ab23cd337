"""Developer tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``demo``."""

from __future__ import annotations

import os

import nox


nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

# The newest Poetry release the suite is proven against; override with POETRY_VERSION.
POETRY_DEFAULT = os.environ.get("POETRY_VERSION", "2.5.1")
TEST_REQUIREMENTS = ["pytest>=8", "hypothesis>=6"]


def install_project(session: nox.Session, poetry_version: str) -> None:
    """Install the plugin next to a given Poetry, as `poetry self add` would."""
    session.install(f"poetry=={poetry_version}", ".", *TEST_REQUIREMENTS)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite, end-to-end tests included, against the default Poetry."""
    install_project(session, POETRY_DEFAULT)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src/."""
    session.install("mypy", f"poetry=={POETRY_DEFAULT}", ".")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """Offline demo: local indexes, a throwaway project, install keeps +cu129, switch cpu."""
    install_project(session, POETRY_DEFAULT)
    session.run("python", "-m", "tests.support.demo", *session.posargs)
