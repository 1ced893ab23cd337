"""Put back the builds an environment held before a ``switch`` whose new build failed.

The snapshot holds the exact versions (``2.14.1+cu129``) of the configured
packages; putting them back installs those same pinned versions from the
previous variant's index, through the same reconcile path as every install
(so the CUDA wheels the new build brought are swept again).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.installed import installed_environment
from poetry_torch_cuda.project.variants import parse_variant


if TYPE_CHECKING:
    from collections.abc import Mapping

    from cleo.io.io import IO
    from packaging.utils import NormalizedName
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.locked import LockedState
    from poetry_torch_cuda.project.variants import Variant


@dataclass(frozen=True)
class Snapshot:
    """The configured packages an environment held, and the variant they were."""

    versions: Mapping[NormalizedName, str]
    variant: Variant | None

    def describe(self) -> str:
        """``torch 2.14.1+cu129, torchvision 0.29.1+cu129``."""
        return ", ".join(f"{name} {version}" for name, version in self.versions.items())


def take_snapshot(config: TorchCudaConfig, env: Env) -> Snapshot:
    """What ``env`` holds of the configured packages now (metadata only)."""
    installed = installed_environment(env)
    versions: dict[NormalizedName, str] = {}
    for name in sorted(config.package_names, key=lambda name: name != "torch"):
        distribution = installed.get(name)
        if distribution is not None:
            versions[name] = distribution.version
    variant = None
    for version in versions.values():
        label = _label(version)
        if label is None:
            continue
        try:
            variant = parse_variant(label)
        except ValueError:
            continue
        break
    return Snapshot(versions, variant)


def restore(
    snapshot: Snapshot,
    config: TorchCudaConfig,
    locked: LockedState,
    env: Env,
    io: IO,
    *,
    poetry: Poetry,
) -> str:
    """Install the snapshot's exact builds again; returns what to tell the user."""
    from poetry_torch_cuda.install.reconcile import reconcile_environment
    from poetry_torch_cuda.install.request import InstallSettings
    from poetry_torch_cuda.project.locked import LockedState as State

    if not snapshot.versions:
        return (
            "There was no earlier build to put back; the failing one stays "
            "installed until you switch to a variant that runs here."
        )
    if snapshot.variant is None:
        return (
            f"The earlier {snapshot.describe()} carried no variant label, so it "
            "cannot be fetched again from a variant's index; it was not put back."
        )
    previous = dataclasses.replace(config, variant=snapshot.variant)
    try:
        reconcile_environment(
            previous,
            snapshot.variant,
            State(dict(snapshot.versions), locked.graph, direct=locked.direct),
            env,
            io,
            InstallSettings.of(poetry, io),
        )
    except TorchCudaError as error:
        return f"Putting back {snapshot.describe()} failed as well: {error}"
    return f"Put back the previous build: {snapshot.describe()}."


def _label(version: str) -> str | None:
    try:
        return Version(version).local
    except InvalidVersion:
        return None
