"""Which packages belong to the torch family and so are kept out of Poetry's hands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping


_CUDA_BOUND_NAMES = frozenset(
    {"cuda-toolkit", "cuda-bindings", "cuda-pathfinder", "triton"}
)
_CUDA_BOUND_PREFIXES = ("nvidia-", "pytorch-triton")


def is_cuda_bound(name: str) -> bool:
    """Whether ``name`` is a wheel that exists per CUDA/ROCm build (``nvidia-*``, ``triton``…)."""
    name = canonicalize_name(name)
    return name in _CUDA_BOUND_NAMES or name.startswith(_CUDA_BOUND_PREFIXES)


def dependency_closure(
    roots: Iterable[NormalizedName],
    graph: Mapping[NormalizedName, Iterable[NormalizedName]],
) -> set[NormalizedName]:
    """Every name reachable from ``roots`` in ``graph``, the roots included."""
    seen: set[NormalizedName] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(graph.get(name, ()))
    return seen


def merge_graphs(
    *graphs: Mapping[NormalizedName, Iterable[NormalizedName]],
) -> dict[NormalizedName, set[NormalizedName]]:
    """One graph with every edge of ``graphs``."""
    merged: dict[NormalizedName, set[NormalizedName]] = {}
    for graph in graphs:
        for name, requires in graph.items():
            merged.setdefault(name, set()).update(requires)
    return merged


def protected_names(
    configured: Iterable[NormalizedName],
    graphs: Iterable[Mapping[NormalizedName, Iterable[NormalizedName]]],
    direct: Iterable[NormalizedName] = (),
) -> frozenset[NormalizedName]:
    """The configured packages plus the CUDA-bound wheels in their dependency closure,
    less the project's own ``direct`` dependencies (its own ``triton``), which stay
    Poetry's.

    ``graphs`` are dependency graphs (the lock's, the environment's); a name
    reachable in any of them counts, so a cu12 wheel the installed torch
    needs is protected even when the lock only knows PyPI's cu13 names.
    """
    configured = frozenset(configured)
    closure = dependency_closure(configured, merge_graphs(*graphs))
    family = frozenset(name for name in closure if is_cuda_bound(name))
    return configured | (family - frozenset(direct))
