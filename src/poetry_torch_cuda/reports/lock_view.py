"""After ``poetry lock``, never failing it: a warning when the variant's index lacks
the locked torch (one cached request), the driver and GPUs the build needs, and
whether each ``[[tool.poetry-torch-cuda.targets]]`` machine runs it."""

from __future__ import annotations

import platform
import sys
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name
from packaging.version import Version

from poetry_torch_cuda.index.offers import SHOWN_VERSIONS
from poetry_torch_cuda.index.offers import OfferFinder
from poetry_torch_cuda.lockfile.service import built_for
from poetry_torch_cuda.machine import tables
from poetry_torch_cuda.machine.detection import driver_needs
from poetry_torch_cuda.machine.detection import predates
from poetry_torch_cuda.machine.resolution import check_project_fleet
from poetry_torch_cuda.machine.resolution import left_to_pypi
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.config import require_config
from poetry_torch_cuda.project.locked import locked_versions
from poetry_torch_cuda.project.locked import selected_packages
from poetry_torch_cuda.project.variants import version_key
from poetry_torch_cuda.urls import mask_url


if TYPE_CHECKING:
    from poetry_torch_cuda.context import RunContext
    from poetry_torch_cuda.machine.resolution import TargetCheck
    from poetry_torch_cuda.project.variants import Variant


def show_lock_view(ctx: RunContext) -> None:
    """Print the missing-build warnings, the variant line and the fleet lines."""
    config, io, variant = ctx.config, ctx.io, ctx.config.variant
    selected = built_for(selected_packages(ctx.poetry), variant)  # not macOS' pins
    locked = dict(locked_versions(selected, config.packages))
    newest = {n: Version(max(v, key=version_key)).public for n, v in locked.items()}
    # Poetry installs PyPI's torch where the variant has no builds: the hooks said so.
    if variant.kind != "auto" and left_to_pypi(variant, sys.platform) is not None:
        return
    offer = None  # what the variant's index has of the first locked package
    if locked and variant.kind != "auto":
        name = min(locked, key=lambda n: (n != "torch", n))
        wanted = {name: newest[name]}
        finder = OfferFinder(ctx.client, config, wanted, ctx.env.marker_env)
        (offer,) = finder.inspect([variant])[0].packages
        if offer.error is not None:  # a check only: one line, never a failure
            io.write_error_line(
                f"{PREFIX}: skipped the check that {variant} has the locked "
                f"{name}: {esc(offer.error)}"
            )
        else:
            url = mask_url(config.index_url(variant))
            have = ", ".join(offer.versions[:SHOWN_VERSIONS]) or "none"
            missing = {Version(v).public for v in locked[name]} - {*offer.versions}
            for public in sorted(missing, key=version_key, reverse=True):
                io.write_error_line(
                    f"<warning>{PREFIX}: {variant} has no build of {name} {public} "
                    f"(locked in poetry.lock) at {esc(url)}; it has {name} "
                    f"{esc(have)}. Constrain {name} to one of those, or pick another "
                    "variant (`poetry torch-cuda variants` lists them).</>"
                )
    if not (torch := newest.get(canonicalize_name("torch"))):  # else Poetry's
        return
    if variant.kind == "auto":
        matrix = published(torch) or f"torch {torch} is newer than the tables"
        line = f"auto decides at install time; {matrix}"
    else:
        assert offer is not None  # torch, configured and locked, was asked first
        if offer.error is not None:
            has = f"(index not reachable: torch {torch} not checked)"
        else:
            has = f"has {'' if torch in offer.versions else 'no '}torch {torch}"
        needs = requirements(variant, torch, platform.machine(), sys.platform)
        line = f"{variant} {has}{'; ' + needs if needs else ''}"
    io.write_line(f"{PREFIX}: {esc(line)}")
    for check in fleet_checks(ctx):
        line = f"{PREFIX}: target {esc(check.summary())}"
        if check.ok:
            io.write_line(line)
        else:
            io.write_error_line(f"<warning>{line}</>")


def fleet_checks(ctx: RunContext) -> list[TargetCheck]:
    """The declared targets checked against the lock (none without a lock)."""
    if not ctx.config.targets or not ctx.poetry.locker.is_locked():
        return []
    # Other machines: pyproject.toml's variant, not this run's POETRY_TORCH_CUDA_VARIANT
    # (a CI runner installing cpu for itself), and torch locked in any group or extra.
    config = require_config(ctx.poetry.pyproject.data, overrides=("index-url",))
    return check_project_fleet(config, ctx.view.versions, ctx)


def published(torch: str | None) -> str | None:
    """``torch 2.14 publishes cu132, …, rocm7.2 (PyTorch's release matrix, …)``."""
    if (release := tables.torch_release(torch)) is None:
        return None
    variants = ", ".join((*release.cuda, *release.rocm))
    matrix = f"PyTorch's release matrix, read {tables.READ_ON}"
    return f"torch {release.release} publishes {variants} ({matrix})"


def requirements(
    variant: Variant, torch: str | None, machine: str, sys_platform: str
) -> str:
    """``needs driver >= 525.60.13 ...; GPUs sm_70..sm_120+PTX`` for a CUDA variant."""
    if (cuda := variant.cuda_version) is None:
        return ""
    found = tables.arch_list_for(variant.name, torch, machine, sys_platform)
    gpus = "unknown" if found is None else tables.describe_archs(found)
    note = predates(variant, sys_platform)
    needs = f"needs {driver_needs(cuda, sys_platform)}; GPUs {gpus}"
    return needs + (f"; {note}" if note else "")
