"""Which configured packages move together, and one concrete build for each.

A package the lock lacks but the configuration names with a version specifier
(``"torchaudio>=2.8"``) goes with the family: it is installed when the
environment holds it or when a locked configured package is installed too, never
on its own (so ``--without gpu`` leaves it out as well). Before pip runs it is
pinned to one concrete build of the variant, so pip cannot keep an installed
build of another variant that happens to satisfy the specifier.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING
from typing import Any

from packaging.version import Version

from poetry_torch_cuda.errors import TorchCudaError


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.install.installed import InstalledEnvironment
    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.install.planning import Target
    from poetry_torch_cuda.project.config import TorchCudaConfig


def with_family(
    targets: Iterable[Target], installed: InstalledEnvironment
) -> list[Target]:
    """``targets`` without specifier-only ones that would be installed on their own."""
    targets = list(targets)
    has_locked = any(target.version is not None for target in targets)
    return [
        target
        for target in targets
        if target.version is not None
        or has_locked
        or installed.get(target.name) is not None
    ]


def pin_specifiers(
    plan: Plan,
    config: TorchCudaConfig,
    client: IndexClient,
    marker_env: Mapping[str, Any],
    installed: InstalledEnvironment,
) -> Plan:
    """``plan`` with every specifier-only target to install pinned to one build.

    The build kept is the installed public version when the variant has it
    (the family moves sideways), else the newest that satisfies the specifier.

    Raises:
        TorchCudaError: the variant's index has no build that satisfies it.
    """
    if all(target.version is not None for target in plan.install):
        return plan
    label = plan.variant.local_label
    pinned = []
    for target in plan.install:
        if target.version is not None:
            pinned.append(target)
            continue
        url = config.index_url(plan.variant)
        files = client.project(url, target.name)
        builds = [
            version
            for version in files.versions(label, marker_env)
            if target.specifier is None
            or target.specifier.contains(version, prereleases=True)
        ]
        if not builds:
            offered = ", ".join(str(v) for v in files.versions(label, marker_env)[:6])
            raise TorchCudaError(
                f"the {plan.variant} index has no build of {target.name} that "
                f"satisfies {target.specifier or 'any version'} "
                f"({'it has ' + offered if offered else 'it has none'}); nothing was "
                f"changed. Loosen the specifier in [tool.poetry-torch-cuda] packages "
                f"or choose another variant."
            )
        chosen = builds[0]
        held = installed.get(target.name)
        if held is not None:
            public = Version(held.version).public
            chosen = next((v for v in builds if v.public == public), chosen)
        pinned.append(dataclasses.replace(target, version=chosen))
    return dataclasses.replace(plan, install=tuple(pinned))
