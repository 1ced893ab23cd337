from __future__ import annotations

from typing import TYPE_CHECKING


if TYPE_CHECKING:
    import pytest


pytest_plugins = ["tests.support.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "long: an end-to-end test of a minute or more, started first"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first, then the other end-to-end ones, then the in-process ones.

    With ``-n`` and ``--dist worksteal`` (``nox -s tests``) a worker that runs out
    of tests takes half of another's queue from its end: what is left at the end
    is then many short tests, never one long test that keeps a worker busy while
    the others are done. The sort is stable: a module's tests stay together, in
    order, and share its fixtures.
    """
    items.sort(key=_rank)


def _rank(item: pytest.Item) -> int:
    if item.get_closest_marker("long"):
        return 0
    return 1 if item.get_closest_marker("e2e") else 2
