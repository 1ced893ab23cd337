"""``poetry torch-cuda detect``: what ``auto`` picks on this machine, step by step."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

from cleo.helpers import option
from packaging.utils import canonicalize_name

from poetry_torch_cuda.commands.base import TorchCudaCommand
from poetry_torch_cuda.output import esc


if TYPE_CHECKING:
    from collections.abc import Mapping

    from cleo.io.inputs.option import Option
    from cleo.io.io import IO
    from packaging.utils import NormalizedName

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.machine.detection import Decision
    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.targets import FleetTarget


class DetectCommand(TorchCudaCommand):
    """Explain the variant ``auto`` resolves to here."""

    name = "torch-cuda detect"
    description = "Show which variant <c2>auto</> picks on this machine, and why."
    options: ClassVar[list[Option]] = [
        option("json", None, "Print the decision as JSON."),
        option(
            "refresh", None, "Ask the index again instead of using its cached pages."
        ),
        option(
            "target",
            None,
            "Decide for a machine declared in [[tool.poetry-torch-cuda.targets]] "
            "instead of this one.",
            flag=False,
        ),
        option(
            "forget",
            None,
            "Forget the builds that failed verification in this environment.",
        ),
    ]
    help = (
        "Probes nvidia-smi (or /proc/driver/nvidia/version) and rocminfo, maps the "
        "driver to the newest CUDA it runs, drops variants not built for every GPU's "
        "compute capability and keeps the newest one whose index has the locked "
        "torch version. Works whatever variant the project configures. Builds that "
        "failed verification in this environment are remembered and skipped; "
        "<c1>--forget</> clears that memory."
    )

    def reads_only(self, io: IO) -> bool:
        """Only reads (never creates the virtualenv)."""
        return True

    def work(self) -> int:
        """Decide as ``auto`` would and print the steps (text and JSON from one record)."""
        from poetry_torch_cuda.index.client import project_client
        from poetry_torch_cuda.machine.memory import failures
        from poetry_torch_cuda.machine.memory import forget
        from poetry_torch_cuda.machine.resolution import resolve
        from poetry_torch_cuda.project.locked import locked_state
        from poetry_torch_cuda.project.variants import Variant

        configured = self._config_or_default()
        if self.option("forget"):
            count = forget(self.env.path)
            self.line_error(
                f"Forgot {count} failed build{'s' if count != 1 else ''} "
                "remembered for this environment"
            )
        config = dataclasses.replace(configured, variant=Variant("auto", "auto"))
        locked = None
        if self.poetry.locker.is_locked():
            locked = locked_state(self.poetry, self.env).versions
        client = project_client(self.poetry, refresh=bool(self.option("refresh")))
        torch = None if locked is None else locked.get(canonicalize_name("torch"))
        data: dict[str, Any] = {}
        if self.option("target"):
            target = self._target(config)
            decision, machine = self._for_target(config, target, locked, client, torch)
            where = f"on target <c1>{esc(target.describe())}</>"
            data["target"] = target.name
            applies, elsewhere = [], []
        else:
            resolution = resolve(config, self.poetry, self.env, locked, client=client)
            assert resolution.decision is not None and resolution.machine is not None
            decision, machine = resolution.decision, resolution.machine
            where = "on this machine"
            applies = failures(self.env.path, machine)
            elsewhere = [f for f in failures(self.env.path) if f not in applies]
        data |= {
            "variant": decision.variant.name,
            "configured": configured.variant.name,
            "torch": torch,
            "steps": list(decision.steps),
            "forced_by": decision.forced_by,
            "candidates": _candidates(decision),
            "machine": machine.to_json(),
            "remembered": [failure.to_json() for failure in applies],
            "remembered_elsewhere": [failure.to_json() for failure in elsewhere],
        }
        if self.option("json"):
            self.write_json(data)
            return 0
        about = f" for torch {esc(torch)}" if torch else " (no lock yet: any torch)"
        self.line(f"<info>auto</> picks <c2>{decision.variant}</> {where}{about}")
        for number, step in enumerate(decision.steps, start=1):
            self.line(f"  {number}. {esc(step)}")
        if decision.forced_by:
            self.line(f"<comment>Note:</> {esc(decision.forced_by)}")
        if self.io.is_verbose() or self.option("target"):
            _published_note(self, torch)
        for title, entries in (
            ("Remembered for this environment (failed verification here)", applies),
            ("Remembered for another driver or GPU set (not applied here)", elsewhere),
        ):
            if entries:
                self.line(f"{title}:")
            for failure in entries:
                self.line(
                    f"  - <c2>{failure.variant}</> ({esc(failure.when)}, "
                    f"{esc(failure.machine)}): {esc(failure.reason)}"
                )
        mine = configured.variant
        if not data.get("target") and mine.kind != "auto" and mine != decision.variant:
            self.line(
                f"<comment>Note:</> this project configures <c2>{mine}</> "
                f"({esc(configured.variant_origin)}); `poetry torch-cuda switch auto` "
                "would follow the machine instead"
            )
        return 0

    def _target(self, config: TorchCudaConfig) -> FleetTarget:
        """The declared target ``--target`` names."""
        from poetry_torch_cuda.project.targets import find_target

        return find_target(config.targets, str(self.option("target")))

    def _for_target(
        self,
        config: TorchCudaConfig,
        target: FleetTarget,
        locked: Mapping[NormalizedName, str] | None,
        client: IndexClient,
        torch: str | None,
    ) -> tuple[Decision, Machine]:
        """``auto``'s decision for a declared machine, asking its platform's index."""
        from poetry_torch_cuda.index.offers import wanted_versions
        from poetry_torch_cuda.machine.fleet import target_machine
        from poetry_torch_cuda.machine.fleet import target_offers
        from poetry_torch_cuda.machine.resolution import choose

        wanted = wanted_versions(config.package_names, locked or {})
        finder = target_offers(config, client, wanted, target, self.env.marker_env)
        machine = target_machine(target)
        return choose(machine, finder, torch), machine

    def _config_or_default(self) -> TorchCudaConfig:
        from poetry_torch_cuda.project.config import TorchCudaConfig
        from poetry_torch_cuda.project.config import load_config
        from poetry_torch_cuda.project.variants import Variant

        config = load_config(self.poetry.pyproject.data)
        return (
            config if config is not None else TorchCudaConfig(Variant("auto", "auto"))
        )


def _published_note(command: DetectCommand, torch: str | None) -> None:
    """What the locked torch's release publishes, per PyTorch's release matrix."""
    from poetry_torch_cuda.machine import tables

    release = tables.torch_release(torch)
    if release is not None:
        published = ", ".join((*release.cuda, *release.rocm))
        command.line(
            f"<comment>Note:</> torch {release.release} publishes {published} "
            f"(PyTorch's release matrix, read {tables.READ_ON})"
        )


def _candidates(decision: Decision) -> list[dict[str, Any]]:
    return [
        {
            "variant": verdict.variant.name,
            "usable": verdict.usable,
            "reasons": list(verdict.reasons),
            "offered": None if offer is None else offer.available,
            "offer": None if offer is None else offer.detail,
            "rule": verdict.rule,
        }
        for verdict, offer in decision.candidates
    ]
