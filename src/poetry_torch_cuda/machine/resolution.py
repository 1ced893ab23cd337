"""Where ``auto`` decides: the configured variant for one environment becomes a real one.

This is the one place that does it, for the listeners and every command
(install, ``switch``, ``sync``, ``status``, ``detect``, ``variants``, fleets):
:func:`probe` finds the machine, :func:`offer_finder` asks the index,
:func:`choose` decides (the rule is :mod:`.detection`'s, the memory of failed
builds :mod:`.memory`'s) and :func:`resolve` ties them for an environment. A
concrete variant costs nothing; ``auto`` probes the machine (one nvidia-smi
call) and asks the index only about what is not already installed.
:func:`require_builds` is the gate for a variant with no builds on a platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable
    from collections.abc import Mapping

    from cleo.io.io import IO
    from packaging.utils import NormalizedName
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.index.offers import OfferFinder
    from poetry_torch_cuda.machine.detection import Decision
    from poetry_torch_cuda.machine.detection import Offer
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
    from poetry_torch_cuda.index.quick import TIMEOUT

    sources = [(source.name, source.url) for source in poetry.get_sources()]
    # Checks and choices only: one short attempt, never Poetry's retry budget.
    return IndexClient(poetry.config, sources, refresh=refresh, timeout=TIMEOUT)


def probe(env: Env, *, nvcc: bool = False) -> Machine:
    """This machine as ``env`` runs on it (its ``platform_machine``: an x86_64
    env under emulation on arm64 wants x86_64 wheels); ``nvcc`` also asks the
    CUDA compiler's version."""
    from poetry_torch_cuda.machine.probe import probe_machine

    return probe_machine(
        nvcc=nvcc, machine=str(env.marker_env.get("platform_machine") or "")
    )


def offer_finder(
    config: TorchCudaConfig,
    poetry: Poetry,
    env: Env,
    wanted: Mapping[NormalizedName, str],
    client: IndexClient | None = None,
) -> OfferFinder:
    """What the index offers ``env`` of ``wanted`` per variant (installed builds ask nothing)."""
    from poetry_torch_cuda.index.offers import OfferFinder
    from poetry_torch_cuda.install.installed import installed_environment

    return OfferFinder(
        client or index_client(poetry),
        config,
        wanted,
        env.marker_env,
        installed_environment(env),
    )


def choose(
    machine: Machine,
    offers: Callable[[Variant], Offer],
    torch_version: str | None,
    *,
    extra: Iterable[Variant] = (),
    env: Env | None = None,
) -> Decision:
    """``auto``'s decision for ``machine``: :func:`~.detection.decide`'s rule over ``offers``.

    With ``env``, builds that failed verification in it on this machine are
    skipped (:mod:`.memory`); a declared target (no ``env``) has no memory.
    """
    from poetry_torch_cuda.machine.detection import decide

    if env is not None:
        from poetry_torch_cuda.machine.memory import remembering

        offers = remembering(offers, env.path, machine)
    return decide(machine, offers, torch_version, extra)


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

    from poetry_torch_cuda.index.offers import wanted_versions
    from poetry_torch_cuda.machine.detection import Offer

    machine = machine or probe(env)
    wanted = wanted_versions(config.package_names, locked_versions or {})
    offers: Callable[[Variant], Offer]
    if locked_versions is not None and not wanted:
        # No configured package in the lock: nothing to install, nothing to ask.
        offers = lambda _: Offer(None, "not asked")
    else:
        offers = offer_finder(config, poetry, env, wanted, client)
    decision = choose(machine, offers, wanted.get(canonicalize_name("torch")), env=env)
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
    from poetry_torch_cuda.machine.fallback import cpu_fallback_warning

    warning = cpu_fallback_warning(resolution.decision, resolution.machine)
    if warning is not None:
        io.write_error_line(f"<warning>{PREFIX}: {Formatter.escape(warning)}</>")


def require_builds(variant: Variant, sys_platform: str) -> None:
    """Refuse a variant PyTorch publishes no builds of for ``sys_platform``.

    Raises:
        TorchCudaError: there are none (CUDA or ROCm on macOS, say).
    """
    from poetry_torch_cuda.errors import TorchCudaError

    missing = variant.not_built_for(sys_platform)
    if missing is not None:
        raise TorchCudaError(
            f"{missing}; `poetry install` installs PyPI's default build here."
        )


def jetson_warning(
    config: TorchCudaConfig, variant: Variant, machine: str, root: str = "/"
) -> str | None:
    """A warning when a CUDA variant from PyTorch's own index is about to land on a Jetson
    that index does not serve (L4T before R38); ``None`` otherwise.

    Reads two files on aarch64 only, starts no process. A custom ``index-url``
    (NVIDIA's Jetson index, say) is trusted.
    """
    from poetry_torch_cuda.project.config import DEFAULT_INDEX_URL

    if variant.kind != "cuda" or machine.lower() not in ("aarch64", "arm64"):
        return None
    if config.index_url_template != DEFAULT_INDEX_URL:
        return None
    from pathlib import Path

    from poetry_torch_cuda.machine.detection import JETSON_NOTE
    from poetry_torch_cuda.machine.detection import JETSON_SBSA_L4T
    from poetry_torch_cuda.machine.probe import probe_jetson

    jetson = probe_jetson(Path(root))
    if jetson is None or (jetson.l4t is not None and jetson.l4t[0] >= JETSON_SBSA_L4T):
        return None
    return f"{variant} on {jetson}: {JETSON_NOTE}"


def refresher(
    poetry: Poetry, env: Env, locked_versions: Mapping[NormalizedName, str] | None
) -> Callable[[], tuple[TorchCudaConfig, Variant] | None]:
    """What a run that waited for another one calls: config and variant as they are now.

    pyproject.toml is read again from disk (the overrides are this process's
    environment); ``None`` when the table is gone or the plugin disabled.
    """

    def refresh() -> tuple[TorchCudaConfig, Variant] | None:
        from poetry_torch_cuda.project.config import current_config

        config = current_config(poetry.pyproject_path)
        if config is None:
            return None
        return config, resolve(config, poetry, env, locked_versions).variant

    return refresh
