"""Which packages belong to the torch family and so are kept out of Poetry's hands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    Graph = Mapping[NormalizedName, Iterable[NormalizedName]]


_CUDA_BOUND_NAMES = {"cuda-toolkit", "cuda-bindings", "cuda-pathfinder", "triton"}


def is_cuda_bound(name: str) -> bool:
    """Whether ``name`` is a wheel that exists per CUDA/ROCm build (``nvidia-*``, ``triton``…)."""
    name = canonicalize_name(name)
    return name in _CUDA_BOUND_NAMES or name.startswith(("nvidia-", "pytorch-triton"))


def dependency_closure(
    roots: Iterable[NormalizedName], graph: Graph
) -> set[NormalizedName]:
    """Every name reachable from ``roots`` in ``graph``, the roots included."""
    seen: set[NormalizedName] = set()
    stack = list(roots)
    while stack:
        if (name := stack.pop()) not in seen:
            seen.add(name)
            stack.extend(graph.get(name, ()))
    return seen


def merge_graphs(*graphs: Graph) -> dict[NormalizedName, set[NormalizedName]]:
    """One graph with every edge of ``graphs``."""
    merged: dict[NormalizedName, set[NormalizedName]] = {}
    for graph in graphs:
        for name, requires in graph.items():
            merged.setdefault(name, set()).update(requires)
    return merged


def protected_names(
    configured: Iterable[NormalizedName],
    graphs: Iterable[Graph],
    direct: Iterable[NormalizedName] = (),
) -> frozenset[NormalizedName]:
    """The configured packages plus the CUDA-bound wheels in their closure in any of
    ``graphs`` (the lock's, the env's: its torch's cu12 wheels when the lock knows
    cu13), less the project's own ``direct`` dependencies (its ``triton``): Poetry's."""
    configured = frozenset(configured)
    closure = dependency_closure(configured, merge_graphs(*graphs))
    return configured | {n for n in closure if is_cuda_bound(n)} - frozenset(direct)
