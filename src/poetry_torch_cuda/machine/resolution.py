"""Resolve the configured variant for one environment: ``auto`` becomes a real one.

This is the one place that does it, for the listeners and every command. A
concrete variant costs nothing; ``auto`` probes the machine (one nvidia-smi
call) and asks the index only about what is not already installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from collections.abc import Mapping

    from cleo.io.io import IO
    from packaging.utils import NormalizedName
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.machine.detection import Decision
    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant


@dataclass(frozen=True)
class Resolution:
    """The configured variant, the one to install, and for ``auto`` why."""

    configured: Variant
    variant: Variant
    origin: str
    decision: Decision | None = None
    machine: Machine | None = None

    def describe(self) -> str:
        """``cu129`` or ``auto -> cu126``."""
        if self.configured.kind == "auto":
            return f"auto -> {self.variant}"
        return str(self.variant)


def index_client(poetry: Poetry, *, refresh: bool = False) -> IndexClient:
    """An :class:`IndexClient` with Poetry's config and the project's sources."""
    from poetry_torch_cuda.index.client import IndexClient

    sources = [(source.name, source.url) for source in poetry.get_sources()]
    return IndexClient(poetry.config, sources, refresh=refresh)


def resolve(
    config: TorchCudaConfig,
    poetry: Poetry,
    env: Env,
    locked_versions: Mapping[NormalizedName, str] | None,
    *,
    machine: Machine | None = None,
    client: IndexClient | None = None,
) -> Resolution:
    """Resolve ``config.variant`` for ``env``; ``locked_versions`` come from the lock.

    ``machine`` and ``client`` let a command that already has them reuse them.
    """
    if config.variant.kind != "auto":
        return Resolution(config.variant, config.variant, config.variant_origin)
    from packaging.utils import canonicalize_name

    from poetry_torch_cuda.index.offers import OfferFinder
    from poetry_torch_cuda.index.offers import wanted_versions
    from poetry_torch_cuda.install.installed import installed_environment
    from poetry_torch_cuda.machine.detection import decide
    from poetry_torch_cuda.machine.probe import probe_machine

    marker_env = env.marker_env
    if machine is None:
        machine = probe_machine(machine=str(marker_env.get("platform_machine") or ""))
    wanted = wanted_versions(config.package_names, locked_versions or {})
    finder = OfferFinder(
        client or index_client(poetry),
        config,
        wanted,
        marker_env,
        installed_environment(env),
    )
    from poetry_torch_cuda.machine.memory import remembering

    # Builds that failed verification in this environment on this machine are skipped.
    offers = remembering(finder, env.path, machine)
    decision = decide(machine, offers, wanted.get(canonicalize_name("torch")))
    return Resolution(
        config.variant, decision.variant, config.variant_origin, decision, machine
    )


def report(resolution: Resolution, io: IO) -> None:
    """At ``-v``: what the variant resolved to and, for ``auto``, each step of the decision."""
    from cleo.formatters.formatter import Formatter
    from cleo.io.outputs.output import Verbosity

    from poetry_torch_cuda.output import PREFIX

    if resolution.decision is None:
        return
    io.write_line(f"{PREFIX}: {resolution.describe()}", verbosity=Verbosity.VERBOSE)
    for step in resolution.decision.steps:
        io.write_line(f"  - {Formatter.escape(step)}", verbosity=Verbosity.VERBOSE)


def require_builds(variant: Variant, sys_platform: str) -> None:
    """Refuse a variant PyTorch publishes no builds of for ``sys_platform``.

    Raises:
        TorchCudaError: there are none (CUDA or ROCm on macOS, say).
    """
    from poetry_torch_cuda.errors import TorchCudaError

    if not variant.has_builds_for(sys_platform):
        raise TorchCudaError(
            f"PyTorch publishes no {variant} builds for {sys_platform}; "
            "`poetry install` installs PyPI's default build here."
        )
