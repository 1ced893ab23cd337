"""Pytest fixtures; load with ``pytest_plugins = ["tests.support.fixtures"]``.

``universe``        session: the default universe, built once into a temp dir.
``index_server``    session: an IndexServer over ``universe``.
``index``           function: ``index_server``, reset before and after the test
                    (requests cleared, fault injection and options off). Use it
                    whenever a test sets ``fail_paths`` & co.
``seed_packages_compiled`` session, autouse: the venvs Poetry makes link their pip
                    to one compiled copy (see its docstring).
``terminal_signals`` session, autouse: Ctrl-C and a hangup act as in a terminal,
                    however the suite was started (see its docstring).
``project_factory`` function: ``project_factory(dependencies, torch_cuda=None,
                    package_mode=False) -> Project`` in the test's tmp_path.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING
from typing import Protocol

import pytest

from tests.support.catalog import Universe
from tests.support.catalog import build_universe
from tests.support.index import IndexServer
from tests.support.poetry_project import Project


if TYPE_CHECKING:
    from collections.abc import Iterator
    from collections.abc import Mapping
    from pathlib import Path


__all__ = [
    "ProjectFactory",
    "index",
    "index_server",
    "no_state_in_the_real_poetry_cache",
    "project_factory",
    "reset_around",
    "seed_packages_compiled",
    "served",
    "served_gpu_builds",
    "terminal_signals",
    "torch_project",
    "universe",
]


def served(root: Path) -> Iterator[IndexServer]:
    """For a fixture (``yield from``): an :class:`IndexServer` over ``root`` while it lives."""
    with IndexServer(root) as server:
        yield server


def served_gpu_builds(root: Path, builds: Mapping[str, str]) -> Iterator[IndexServer]:
    """For a module fixture: torch 2.14.1 on cpu, cu128 and cu130 (no cu129), each
    variant's torch module replaced by the fake build in ``builds`` (its source)."""
    from tests.support.catalog import default_specs
    from tests.support.fake_torch import replace_module

    specs = {k: v for k, v in default_specs().items() if k != "cu129"}
    universe = build_universe(root, specs)
    for variant, source in builds.items():
        replace_module(universe, variant, "torch", f"2.14.1+{variant}", source)
    yield from served(universe.root)


def torch_project(tmp_path: Path, index: IndexServer, variant: str) -> Project:
    """A project of torch 2.14.1 alone on ``index``, configured for ``variant``."""
    return Project.create(
        tmp_path,
        index,
        {"torch": "2.14.1"},
        f'variant = "{variant}"\npackages = ["torch"]',
    )


def reset_around(server: IndexServer) -> Iterator[IndexServer]:
    """For a fixture (``yield from``): ``server``, reset before and after the test."""
    server.reset()
    yield server
    server.reset()


class ProjectFactory(Protocol):
    def __call__(
        self,
        dependencies: Mapping[str, str],
        torch_cuda: str | None = None,
        package_mode: bool = False,
        *,
        name: str = "e2e-project",
    ) -> Project: ...


@pytest.fixture(autouse=True)
def no_state_in_the_real_poetry_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """For an env that is no virtualenv the plugin keeps its state in Poetry's
    cache (``envlock.state_dir``); a test's default Poetry cache is a folder of
    its own, never this machine's, and a test that leaves state there fails: it
    made an env of a folder without ``pyvenv.cfg`` by mistake, or must say its
    cache (``POETRY_CACHE_DIR``, or ``cache-dir`` in the config it makes)."""
    from poetry.config import config

    cache = tmp_path_factory.mktemp("poetry-cache")
    monkeypatch.setitem(config.Config.default_config, "cache-dir", str(cache))
    monkeypatch.setattr(config, "_default_config", None)  # Config.create() anew
    yield
    kept = sorted(str(path) for path in cache.glob("torch-cuda/*"))
    assert not kept, f"state kept outside the test's env: {kept}"


@pytest.fixture(scope="session", autouse=True)
def terminal_signals() -> None:
    """SIGINT raises KeyboardInterrupt and SIGHUP ends the process, as for a command
    typed in a terminal, however the suite was started: a background job of a script
    (``nox ... &``) inherits SIGINT ignored, ``nohup`` SIGHUP, and Python keeps an
    ignored signal so: a test that Ctrl-Cs this process saw nothing raised (DID NOT
    RAISE KeyboardInterrupt), and each Poetry the tests start inherited the signal
    ignored."""
    if os.name == "posix":  # Windows has no SIGHUP
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture(scope="session", autouse=True)
def seed_packages_compiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The pip that virtualenv puts into every venv Poetry makes, compiled once.

    virtualenv copies pip into each new venv as bare sources, and the tests run
    with ``PYTHONDONTWRITEBYTECODE`` (as this machine does), so every ``python -m
    pip`` in a project's venv compiled pip's modules again: about 0.9 s of CPU
    of a 1.5 s pip run, paid on every install the plugin makes. With
    ``VIRTUALENV_SYMLINK_APP_DATA`` the venvs link pip to one image that
    virtualenv compiles when it builds it. The image lives in this session's own
    app-data folder, never the user's: a pip that uninstalled a linked seed
    package would delete it from the image.
    """
    app_data = tmp_path_factory.mktemp("virtualenv-app-data")
    overrides = {
        "VIRTUALENV_OVERRIDE_APP_DATA": str(app_data),
        "VIRTUALENV_SYMLINK_APP_DATA": "1",
    }
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    yield app_data
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def universe(tmp_path_factory: pytest.TempPathFactory) -> Universe:
    return build_universe(tmp_path_factory.mktemp("universe"))


@pytest.fixture(scope="session")
def index_server(universe: Universe) -> Iterator[IndexServer]:
    yield from served(universe.root)


@pytest.fixture
def index(index_server: IndexServer) -> Iterator[IndexServer]:
    yield from reset_around(index_server)


@pytest.fixture
def project_factory(tmp_path: Path, index: IndexServer) -> ProjectFactory:
    def make(
        dependencies: Mapping[str, str],
        torch_cuda: str | None = None,
        package_mode: bool = False,
        *,
        name: str = "e2e-project",
    ) -> Project:
        return Project.create(
            tmp_path, index, dependencies, torch_cuda, package_mode, name=name
        )

    return make
