"""After ``poetry lock``: what the lock means for the variant and the declared fleet.

A report, never a failure of the lock: first a warning when the variant's
index has no build of the locked torch (one cached request, naming what it
has), then the variant's line (the oldest driver and the GPU architectures its
build needs), then one line per ``[[tool.poetry-torch-cuda.targets]]`` entry:
whether that machine runs it.
"""

from __future__ import annotations

import platform
import sys
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from poetry_torch_cuda.index.client import IndexUnavailableError
from poetry_torch_cuda.index.offers import SHOWN_VERSIONS
from poetry_torch_cuda.machine import tables
from poetry_torch_cuda.machine.resolution import check_project_fleet
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.locked import locked_state
from poetry_torch_cuda.project.locked import locked_versions
from poetry_torch_cuda.project.variants import public_version
from poetry_torch_cuda.project.variants import version_key
from poetry_torch_cuda.urls import mask_url


if TYPE_CHECKING:
    from poetry_torch_cuda.context import RunContext
    from poetry_torch_cuda.project.variants import Variant


def show_lock_view(ctx: RunContext) -> None:
    """Print the missing-build warnings, the variant line and the fleet lines."""
    config, io = ctx.config, ctx.io
    try:
        for warning in _missing_builds(ctx):
            io.write_error_line(f"<warning>{PREFIX}: {esc(warning)}</>")
    except IndexUnavailableError as error:  # a check only: one line, never a failure
        io.write_error_line(
            f"{PREFIX}: skipped the check that {config.variant} has the locked "
            f"torch: {esc(str(error))}"
        )
    found = dict(locked_versions(ctx.poetry, ["torch"])).get(canonicalize_name("torch"))
    if not found:
        return
    newest = max(found, key=version_key)
    io.write_line(
        f"{PREFIX}: {esc(_variant_line(ctx, public_version(newest) or newest))}"
    )
    locked = locked_state(ctx.poetry, ctx.env).versions
    for check in check_project_fleet(config, ctx.poetry, ctx.env, locked, ctx.client):
        line = f"{PREFIX}: target {esc(check.summary())}"
        if check.ok:
            io.write_line(line)
        else:
            io.write_error_line(f"<warning>{line}</>")


def _missing_builds(ctx: RunContext) -> list[str]:
    """Warnings when the variant lacks a locked torch (``auto``: at install time)."""
    variant = ctx.config.variant
    if variant.kind == "auto" or not variant.has_builds_for(sys.platform):
        return []
    locked = dict(locked_versions(ctx.poetry, ctx.config.package_names))
    if not locked:
        return []
    name = min(locked, key=lambda n: (n != "torch", n))
    url = ctx.config.index_url(variant)
    have = [
        v.public for v in ctx.client.project(url, name).versions(variant.local_label)
    ]
    missing = {public_version(v) or v for v in locked[name]} - set(have)
    offered = ", ".join(have[:SHOWN_VERSIONS]) or "none"
    return [
        f"{variant} has no build of {name} {public} (locked in poetry.lock) at "
        f"{mask_url(url)}; it has {name} {offered}. Constrain {name} to one of "
        "those, or pick another variant (`poetry torch-cuda variants` lists them)."
        for public in sorted(missing, key=version_key, reverse=True)
    ]


def _variant_line(ctx: RunContext, torch: str) -> str:
    """The configured variant's line (``auto``: what this torch release publishes)."""
    variant = ctx.config.variant
    if variant.kind == "auto":
        release = tables.torch_release(torch)
        if release is None:
            return (
                f"auto decides at install time; torch {torch} is newer than the tables"
            )
        published = ", ".join((*release.cuda, *release.rocm, "cpu"))
        return (
            f"auto decides at install time; torch {release.release} publishes "
            f"{published} (PyTorch's release matrix, read {tables.READ_ON})"
        )
    try:
        files = ctx.client.project(ctx.config.index_url(variant), "torch")
        have = {v.public for v in files.versions(variant.local_label)}
        has = f"has torch {torch}" if torch in have else f"has no torch {torch}"
    except IndexUnavailableError:
        has = f"(index not reachable: torch {torch} not checked)"
    needs = requirements(variant, torch, platform.machine(), sys.platform)
    return f"{variant} {has}{'; ' + needs if needs else ''}"


def requirements(
    variant: Variant, torch: str | None, machine: str, sys_platform: str
) -> str:
    """``needs driver >= 525.60.13 ..., GPUs sm_70..sm_120+PTX`` for a CUDA variant."""
    cuda = variant.cuda_version
    if cuda is None:
        return ""
    floor = tables.compat_floor(cuda[0], sys_platform)
    full = tables.minimum_driver(cuda, sys_platform)
    parts = []
    if floor is not None:
        parts.append(f"driver >= {floor} (CUDA {cuda[0]}.x floor, SASS only)")
    if full is not None:
        parts.append(f">= {full} (full CUDA {cuda[0]}.{cuda[1]}, for PTX JIT)")
    driver = " or ".join(parts) or "a driver newer than the tables"
    found = tables.arch_list_for(variant.name, torch, machine, sys_platform)
    gpus = "GPUs unknown" if found is None else tables.describe_archs(found)
    note = ""
    if not tables.is_known_variant(variant.name):
        note = f" (the tables predate {variant}; {tables.UPDATE_HINT})"
    return f"needs {driver}; GPUs {gpus}{note}"
