"""Whole fleets: does the locked torch run on every declared target?

The same rules as on a real machine (:mod:`.detection`), for the configured
variant or ``auto``'s pick there; pure apart from the offers callable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import canonicalize_name

from poetry_torch_cuda.index.client import project_client
from poetry_torch_cuda.index.offers import OfferFinder
from poetry_torch_cuda.index.offers import wanted_versions
from poetry_torch_cuda.machine.detection import assess
from poetry_torch_cuda.machine.probe import Machine
from poetry_torch_cuda.machine.probe import NvidiaDriver
from poetry_torch_cuda.machine.probe import NvidiaGpu
from poetry_torch_cuda.machine.resolution import choose


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Mapping

    from packaging.utils import NormalizedName
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.index.offers import Offer
    from poetry_torch_cuda.machine.detection import Verdict
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.targets import FleetTarget
    from poetry_torch_cuda.project.variants import Variant


@dataclass(frozen=True)
class TargetCheck:
    """One target: the variant it would get, whether that runs there, and why."""

    target: FleetTarget
    variant: Variant
    ok: bool
    reasons: tuple[str, ...]
    rule: str | None = None

    def summary(self) -> str:
        """``training: cu130 runs (minor-version compatibility)`` or why not."""
        if self.ok:
            how = f" ({self.rule})" if self.rule else ""
            return f"{self.target.describe()}: {self.variant} runs there{how}"
        return (
            f"{self.target.describe()}: {self.variant} cannot run there: "
            + "; ".join(self.reasons)
        )

    def to_json(self) -> dict[str, Any]:
        """JSON form, as ``status --json`` prints it."""
        return {
            "name": self.target.name,
            "driver": self.target.driver,
            "gpus": [f"{major}.{minor}" for major, minor in self.target.gpus],
            "platform": self.target.platform,
            "variant": self.variant.name,
            "ok": self.ok,
            "rule": self.rule,
            "reasons": list(self.reasons),
        }


def target_machine(target: FleetTarget) -> Machine:
    """The :class:`Machine` a target describes, as if probed there."""
    gpus = tuple(
        NvidiaGpu(index, f"declared GPU {index}", capability)
        for index, capability in enumerate(target.gpus)
    )
    return Machine(
        target.sys_platform,
        target.machine,
        NvidiaDriver(target.driver, f"target {target.name}", gpus),
    )


def target_marker_env(target: FleetTarget, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` (this env's markers) moved to the target's OS and machine."""
    windows = target.sys_platform.startswith("win")
    return {
        **base,
        "sys_platform": target.sys_platform,
        "platform_machine": target.machine,
        "platform_system": "Windows" if windows else "Linux",
        "os_name": "nt" if windows else "posix",
    }


def check_target(
    target: FleetTarget,
    configured: Variant,
    torch_version: str | None,
    offers: Callable[[Variant], Offer],
) -> TargetCheck:
    """Whether ``configured`` (or ``auto``'s pick) runs the locked torch on ``target``."""
    machine = target_machine(target)
    if configured.kind == "auto":
        decision = choose(machine, offers, torch_version)
        variant = decision.variant
        if variant.kind != "cuda":
            why = f"auto would fall back to {variant}: {decision.steps[-1]}"
            return TargetCheck(target, variant, False, (why,))
        if decision.left_out:  # no variant serves every GPU of the target
            return TargetCheck(target, variant, False, (str(decision.forced_by),))
        return _from_verdict(target, assess(variant, machine, torch_version), None)
    missing = configured.not_built_for(target.sys_platform, target.platform)
    if missing is None and configured.kind != "cuda":
        missing = f"{configured} builds do not use the target's NVIDIA GPUs"
    if missing is not None:
        return TargetCheck(target, configured, False, (missing,))
    verdict = assess(configured, machine, torch_version)
    return _from_verdict(
        target, verdict, offers(configured) if verdict.usable else None
    )


def _from_verdict(
    target: FleetTarget, verdict: Verdict, offer: Offer | None
) -> TargetCheck:
    available = None if offer is None else offer.available
    ok = bool(verdict.usable) and available is not False
    reasons = verdict.reasons
    if verdict.usable is None:
        reasons = ("cannot tell whether it runs", *reasons)
    elif verdict.usable and offer is not None and available is not True:
        reasons = (offer.detail,) if available is False else (*reasons, offer.detail)
    return TargetCheck(
        target, verdict.variant, ok, reasons, verdict.rule if ok else None
    )


def check_project_fleet(
    config: TorchCudaConfig,
    poetry: Poetry,
    env: Env,
    locked_versions: Mapping[NormalizedName, str],
    client: IndexClient | None = None,
) -> list[TargetCheck]:
    """The project's declared targets against its lock, each asking the index for
    its own platform's wheels."""
    if not config.targets:
        return []
    client = client or project_client(poetry)
    wanted = wanted_versions(config.package_names, locked_versions)
    torch = wanted.get(canonicalize_name("torch"))
    return [
        check_target(
            target,
            config.variant,
            torch,
            target_offers(config, client, wanted, target, env.marker_env),
        )
        for target in config.targets
    ]


def target_offers(
    config: TorchCudaConfig,
    client: IndexClient,
    wanted: Mapping[NormalizedName, str],
    target: FleetTarget,
    marker_env: Mapping[str, Any],
) -> OfferFinder:
    """What the index offers ``target``: ``wanted`` for its platform's wheels
    (``marker_env`` is this environment's, the target's facts put over it)."""
    return OfferFinder(
        client, config, wanted, target_marker_env(target, dict(marker_env))
    )
