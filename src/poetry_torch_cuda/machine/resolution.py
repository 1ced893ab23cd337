"""Where ``auto`` decides, for the listeners and every command: :func:`choose` applies
:mod:`.detection`'s rule minus the builds that failed verification here
(:func:`remember`), :func:`resolve` for an environment, :func:`check_project_fleet`
on the declared targets."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol

from cleo.io.outputs.output import Verbosity
from packaging.utils import canonicalize_name

from poetry_torch_cuda.environment.envlock import state_dir
from poetry_torch_cuda.environment.installed import unlabelled_cuda
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.offers import Offer
from poetry_torch_cuda.index.offers import OfferFinder
from poetry_torch_cuda.index.offers import wanted_versions
from poetry_torch_cuda.machine.detection import JETSON_NOTE
from poetry_torch_cuda.machine.detection import Decision
from poetry_torch_cuda.machine.detection import assess
from poetry_torch_cuda.machine.detection import cpu_fallback_warning
from poetry_torch_cuda.machine.detection import decide
from poetry_torch_cuda.machine.detection import old_jetson
from poetry_torch_cuda.machine.probe import Machine
from poetry_torch_cuda.machine.probe import NvidiaDriver
from poetry_torch_cuda.machine.probe import NvidiaGpu
from poetry_torch_cuda.machine.probe import probe_jetson
from poetry_torch_cuda.machine.probe import probe_machine
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.config import DEFAULT_INDEX_URL
from poetry_torch_cuda.project.variants import arch
from poetry_torch_cuda.project.variants import label_of
from poetry_torch_cuda.project.variants import parse_variant
from poetry_torch_cuda.project.variants import public_version
from poetry_torch_cuda.tempfiles import read_json
from poetry_torch_cuda.tempfiles import write_json


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable
    from collections.abc import Mapping
    from pathlib import Path

    from cleo.io.io import IO
    from packaging.utils import NormalizedName
    from poetry.utils.env import Env

    from poetry_torch_cuda.environment.installed import InstalledEnvironment
    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.project.config import FleetTarget
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant

    Offers = Callable[[Variant], Offer]
    Locked = Mapping[NormalizedName, str]


class Run(Protocol):
    """A run (``context.RunContext``): its env, its one index client and view."""

    env: Env

    @property
    def client(self) -> IndexClient: ...
    @property
    def installed(self) -> InstalledEnvironment: ...


@dataclass(frozen=True)
class Resolution:
    """The configured variant, the one to install, and for ``auto`` why."""

    configured: Variant
    variant: Variant
    origin: str
    decision: Decision | None = None
    machine: Machine | None = None


def probe(env: Env) -> Machine:
    """This machine as ``env`` sees it (its ``platform_machine``)."""
    return probe_machine(machine=env.marker_env.get("platform_machine"))


def offer_finder(config: TorchCudaConfig, wanted: Locked, run: Run) -> OfferFinder:
    """What the index offers the run's env of ``wanted``, through the run's client."""
    return OfferFinder(run.client, config, wanted, run.env.marker_env, run.installed)


def choose(
    machine: Machine,
    offers: Offers,
    torch_version: str | None,
    *,
    env: Env | None = None,
) -> Decision:
    """:func:`~.detection.decide`, where builds of ``torch_version`` that failed in
    ``env`` before are offered "no" (a target has no memory)."""
    memory = failures(env.path, machine, torch_version) if env else []
    failed = {f.variant: f for f in memory}

    def offer(variant: Variant) -> Offer:
        if (failure := failed.get(variant.name)) is None:
            return offers(variant)
        why = f"failed verification in this environment ({failure.when}): "
        why += f"{failure.reason} (`poetry torch-cuda detect --forget` tries it again)"
        return Offer(False, why, remembered=True)

    return decide(machine, offer, torch_version)


def resolve(
    config: TorchCudaConfig,
    locked_versions: Locked | None,
    run: Run,
    *,
    machine: Machine | None = None,
    offers: Offers | None = None,
) -> Resolution:
    """``config.variant`` for the run's env and the lock's versions (``offers``: the
    index's answers, when the caller has them)."""
    if config.variant.kind != "auto":
        return Resolution(config.variant, config.variant, config.variant_origin)
    machine = machine or probe(run.env)
    decision = _kept_build(config, run, machine) if _probe_failed(machine) else None
    if decision is None:
        asked, torch = _offers(config, locked_versions, run, offers)
        decision = choose(machine, asked, torch, env=run.env)
    return Resolution(
        config.variant, decision.variant, config.variant_origin, decision, machine
    )


def next_choice(
    config: TorchCudaConfig,
    locked_versions: Locked | None,
    machine: Machine,
    failed: Variant,
    run: Run,
) -> Variant | None:
    """``auto``'s move after ``failed`` failed verification here: :func:`resolve`'s
    choice without ``failed``; ``None`` when the probe failed (never a guessed build)
    or only a build that leaves a GPU out is left."""
    if _probe_failed(machine):
        return None
    offers, torch = _offers(config, locked_versions, run)

    def without(variant: Variant) -> Offer:
        return Offer(False, "just failed") if variant == failed else offers(variant)

    decision = choose(machine, without, torch, env=run.env)
    return None if decision.left_out else decision.variant


def _offers(
    config: TorchCudaConfig,
    locked_versions: Locked | None,
    run: Run,
    given: Offers | None = None,
) -> tuple[Offers, str | None]:
    wanted = wanted_versions(config.package_names, locked_versions or {})
    if locked_versions is not None and not wanted:
        # No configured package in the lock: nothing to install, nothing to ask.
        why = "torch is not locked (`poetry add torch`), so the index is not asked"
        return (lambda _: Offer(None, why)), None
    finder = given or offer_finder(config, wanted, run)
    return finder, wanted.get(canonicalize_name("torch"))


def _probe_failed(machine: Machine) -> bool:
    """nvidia-smi failed, and no container nor ROCm (then it decides) explains it."""
    nvidia, rocm = machine.nvidia, machine.rocm
    return bool(machine.smi_failure) and (nvidia.reachable if nvidia else not rocm)


def _kept_build(config: TorchCudaConfig, run: Run, machine: Machine) -> Decision | None:
    """The installed build, kept on a failed probe (PyPI's: its CUDA's variant)."""
    for name in sorted(config.package_names):
        if (dist := run.installed.get(name)) is None:
            continue
        label = label_of(dist.version)
        what, never = "the installed {} build", "a build"
        if label is None:  # PyPI's: the CUDA it requires, or none (CPU-only)
            cuda = unlabelled_cuda(dist.lines, dist.version_py)
            label = "cpu" if cuda == "" else "cu" + (cuda or "").replace(".", "")
            built = f"CUDA {cuda}" if cuda else "CPU-only"
            what = f"{built} of PyPI's {name} {dist.version} installed here: {{}}"
            never = "CUDA"
        try:
            kept = parse_variant(label)
        except ValueError:  # "12.x": no variant is known to be it
            continue
        step = f"auto keeps {what.format(kept)} (it never changes {never} on a failed "
        step += f"probe): {machine.smi_failure}"
        return Decision(kept, (step,), forced_by=step)
    return None


def report(resolution: Resolution, config: TorchCudaConfig, env: Env, io: IO) -> None:
    """What every install says of its variant: ``auto``'s steps at ``-v``; a warning
    when ``auto`` settles for cpu next to a GPU or keeps a build, or when a CUDA build
    from PyTorch's index (a custom one is trusted) lands on a Jetson before L4T R38."""
    decision, machine = resolution.decision, resolution.machine
    variant, warnings = resolution.variant, []
    if decision is not None:
        io.write_line(f"{PREFIX}: auto -> {variant}", verbosity=Verbosity.VERBOSE)
        for step in decision.steps:
            io.write_line(f"  - {esc(step)}", verbosity=Verbosity.VERBOSE)
        warnings.append(cpu_fallback_warning(decision, machine))
        if machine is not None and _probe_failed(machine):
            smi = f"auto decides on what else it knows: {machine.smi_failure}"
            warnings[-1] = decision.forced_by or smi
    arm = arch(str(env.marker_env.get("platform_machine") or "")) == "aarch64"
    pytorchs = config.index_url_template == DEFAULT_INDEX_URL
    if variant.kind == "cuda" and pytorchs and arm:
        jetson = probe_jetson() if machine is None else machine.jetson  # auto probed
        if old_jetson(jetson):
            warnings.append(f"{variant} on {jetson}: {JETSON_NOTE}")
    for warning in filter(None, warnings):
        io.write_error_line(f"<warning>{PREFIX}: {esc(warning)}</>")


def left_to_pypi(variant: Variant, sys_platform: str) -> str | None:
    """``PyTorch publishes no cu129 builds for darwin; Poetry installs PyPI's default
    build here``, or ``None``: the one wording for ``status``, hooks, switch, sync."""
    missing = variant.not_built_for(sys_platform)
    return missing and f"{missing}; Poetry installs PyPI's default build here"


def require_builds(variant: Variant, sys_platform: str) -> None:
    """Raise :class:`TorchCudaError` for a variant with no builds on ``sys_platform``."""
    if (missing := left_to_pypi(variant, sys_platform)) is not None:
        raise TorchCudaError(f"{missing}.")


@dataclass(frozen=True)
class Failure:
    """One remembered failure: which build, when, and the verification's finding."""

    variant: str
    torch: str | None
    reason: str
    when: str
    machine: str


def failures(
    env_path: Path, machine: Machine | None = None, torch: str | None = None
) -> list[Failure]:
    """The remembered failures: all, or ``machine``'s of a build of ``torch``."""
    key = None if machine is None else _machine_key(machine)  # None: no driver
    found = [f for f in _read(env_path) if machine is None or f.machine == key]
    same = public_version(torch or "")
    return [f for f in found if not torch or public_version(f.torch or torch) == same]


def remember(
    env_path: Path, machine: Machine, variant: Variant, torch: str | None, reason: str
) -> bool:
    """Record that ``variant`` failed here; ``False`` when the machine has no key."""
    if (key := _machine_key(machine)) is None:
        return False
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    kept = [f for f in _read(env_path) if (f.machine, f.variant) != (key, variant.name)]
    entries = [*kept, Failure(variant.name, torch, reason, when, key)]
    data = {"schema": 1, "failures": [dataclasses.asdict(f) for f in entries]}
    write_json(_memory_path(env_path), data)
    return True


def forget(env_path: Path) -> int:
    """Clear the memory; returns how many failures it held."""
    count = len(_read(env_path))
    _memory_path(env_path).unlink(missing_ok=True)
    return count


def _machine_key(machine: Machine) -> str | None:
    """What a failure is kept for: the driver and the GPUs (``None``: no GPU driver)."""
    if (gpu := machine.nvidia or machine.rocm) is None:
        return None
    gpus = "; ".join(str(one) for one in gpu.gpus)
    if machine.nvidia is not None:
        return f"NVIDIA driver {gpu.version}; {gpus or 'GPUs unknown'}"
    return f"ROCm {gpu.version or '?'}; {gpus}"


def _memory_path(env_path: Path) -> Path:
    return state_dir(env_path) / ".poetry-torch-cuda-memory.json"


def _read(env_path: Path) -> list[Failure]:
    data = read_json(_memory_path(env_path), None)
    entries = data.get("failures") if isinstance(data, dict) else None
    found = []
    for entry in entries if isinstance(entries, list) else []:
        with contextlib.suppress(KeyError, TypeError):  # a damaged entry is none
            values = {f.name: entry[f.name] for f in dataclasses.fields(Failure)}
            if all(isinstance(value, (str, type(None))) for value in values.values()):
                found.append(Failure(**values))
    return found


@dataclass(frozen=True)
class TargetCheck:
    """One target: the variant it would get, whether that runs there, and why;
    ``decision``: ``auto``'s, when the project configures ``auto``."""

    target: FleetTarget
    variant: Variant
    ok: bool
    reasons: tuple[str, ...]
    rule: str | None = None
    decision: Decision | None = None

    def summary(self) -> str:
        """``training: cu130 runs there (minor-version compatibility)`` or why not."""
        where = f"{self.target.describe()}: {self.variant}"
        if self.ok:
            return f"{where} runs there" + (f" ({self.rule})" if self.rule else "")
        return f"{where} cannot run there: " + "; ".join(self.reasons)

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
    gpus = [NvidiaGpu(i, f"declared GPU {i}", cc) for i, cc in enumerate(target.gpus)]
    driver = NvidiaDriver(target.driver, f"target {target.name}", tuple(gpus))
    system, machine = target.markers["sys_platform"], target.markers["platform_machine"]
    return Machine(system, machine, driver)


def check_target(
    target: FleetTarget, configured: Variant, torch_version: str | None, offers: Offers
) -> TargetCheck:
    """Whether ``configured`` (or ``auto``'s pick) runs the locked torch on ``target``."""
    machine = target_machine(target)
    if configured.kind == "auto":
        decision = choose(machine, offers, torch_version)
        variant, why = decision.variant, str(decision.forced_by)
        if variant.kind != "cuda":  # steps[-1]: "cpu: no CUDA variant fits; …"
            why = f"auto would fall back to {decision.steps[-1]}"
        elif not decision.left_out:  # a pick that serves every GPU runs there
            pick = decision.candidates[-1][0]  # its verdict: where decide stopped
            return TargetCheck(target, variant, True, pick.reasons, pick.rule, decision)
        return TargetCheck(target, variant, False, (why,), decision=decision)
    missing = configured.not_built_for(target.markers["sys_platform"], target.platform)
    if missing is None and configured.kind != "cuda":
        missing = f"{configured} builds do not use the target's NVIDIA GPUs"
    if missing is not None:
        return TargetCheck(target, configured, False, (missing,))
    verdict = assess(configured, machine, torch_version)
    ok, reasons = bool(verdict.usable), verdict.reasons
    if verdict.usable is None:
        reasons = ("cannot tell whether it runs", *reasons)
    elif ok and (offer := offers(configured)).available is not True:
        ok = offer.available is None
        reasons = (*reasons, offer.detail) if ok else (offer.detail,)
    return TargetCheck(target, configured, ok, reasons, verdict.rule if ok else None)


def check_project_fleet(
    config: TorchCudaConfig,
    locked_versions: Locked,
    run: Run,
    targets: Iterable[FleetTarget] | None = None,
) -> list[TargetCheck]:
    """The declared ``targets`` (default: all) against the lock, on their wheels."""
    wanted = wanted_versions(config.package_names, locked_versions)
    torch = wanted.get(canonicalize_name("torch"))
    checks = []
    for target in config.targets if targets is None else targets:
        # each on its platform's wheels: the env's markers moved to its OS and machine
        markers = {**run.env.marker_env, **target.markers}
        offers = OfferFinder(run.client, config, wanted, markers)
        checks.append(check_target(target, config.variant, torch, offers))
    return checks
