"""``poetry torch-cuda detect``: what ``auto`` picks on this machine, step by step."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

from cleo.helpers import option
from packaging.utils import canonicalize_name

from poetry_torch_cuda.commands.base import REFRESH
from poetry_torch_cuda.commands.base import NotCreatedEnv
from poetry_torch_cuda.commands.base import TorchCudaCommand
from poetry_torch_cuda.machine.resolution import check_project_fleet
from poetry_torch_cuda.machine.resolution import failures
from poetry_torch_cuda.machine.resolution import forget
from poetry_torch_cuda.machine.resolution import resolve
from poetry_torch_cuda.machine.resolution import target_machine
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.config import ENV_VARIANT
from poetry_torch_cuda.project.config import TorchCudaConfig
from poetry_torch_cuda.project.config import find_target
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.variants import Variant
from poetry_torch_cuda.reports.lock_view import published


if TYPE_CHECKING:
    from cleo.io.inputs.option import Option


class DetectCommand(TorchCudaCommand):
    """Explain the variant ``auto`` resolves to here."""

    name = "torch-cuda detect"
    description = "Show which variant <c2>auto</> picks on this machine, and why."
    options: ClassVar[list[Option]] = [
        option("json", None, "Print the decision as JSON."),
        REFRESH,
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

    def work(self) -> int:
        auto = Variant("auto", "auto")
        found = load_config(self.poetry.pyproject.data)  # None: no table, no installs
        configured = found or TorchCudaConfig(auto)
        if self.option("forget"):
            count = forget(self.env.path)  # nothing is kept before the virtualenv
            s = "s" if count != 1 else ""
            self.line_error(
                "No virtualenv yet: no failed build is remembered to forget"
                if isinstance(self.env, NotCreatedEnv)
                else f"Forgot {count} failed build{s} remembered for this environment"
            )
        config = dataclasses.replace(configured, variant=auto)
        ctx = self.context(config)
        locked = ctx.view.versions if self.poetry.locker.is_locked() else None
        torch = None if locked is None else locked.get(canonicalize_name("torch"))
        data: dict[str, Any] = {}
        applies, elsewhere = [], []
        if named := self.option("target"):
            target = find_target(config.targets, str(named))
            [check] = check_project_fleet(config, locked or {}, ctx, [target])
            assert check.decision is not None
            decision, machine = check.decision, target_machine(target)
            where = f"on target <c1>{esc(target.describe())}</>"
            data["target"] = target.name
        else:
            resolution = resolve(config, locked, ctx)
            assert resolution.decision is not None and resolution.machine is not None
            decision, machine = resolution.decision, resolution.machine
            where = "on this machine"
            applies = failures(self.env.path, machine, torch)
            elsewhere = [f for f in failures(self.env.path) if f not in applies]
        data |= {
            "variant": decision.variant.name,
            "configured": found and found.variant.name,
            "torch": torch,
            "steps": list(decision.steps),
            "forced_by": decision.forced_by,
            "candidates": [
                {
                    "variant": verdict.variant.name,
                    "usable": verdict.usable,
                    "reasons": list(verdict.reasons),
                    "offered": None if offer is None else offer.available,
                    "offer": None if offer is None else offer.detail,
                    "advice": None if offer is None else offer.advice or None,
                    "rule": verdict.rule,
                }
                for verdict, offer in decision.candidates
            ],
            "machine": machine.to_json(),
            "remembered": [dataclasses.asdict(f) for f in applies],
            "remembered_elsewhere": [dataclasses.asdict(f) for f in elsewhere],
        }
        if self.as_json(data):
            return 0
        about = f" for torch {esc(torch)}" if torch else " (torch not locked)"
        self.line(f"<info>auto</> picks <c2>{decision.variant}</> {where}{about}")
        for number, step in enumerate(decision.steps, start=1):
            self.line(f"  {number}. {esc(step)}")
        matrix = self.io.is_verbose() or named
        advice = dict.fromkeys(o.advice for _, o in decision.candidates if o)
        for note in (decision.forced_by, published(torch) if matrix else None, *advice):
            if note and note not in decision.steps:
                self.line(f"<comment>Note:</> {esc(note)}")
        told = {v.variant.name for v, o in decision.candidates if o and o.remembered}
        untold = [f for f in applies if f.variant not in told]  # not in a step
        here = ("this environment (failed verification here)", untold)
        there = ("another driver, GPU set or torch (not applied here)", elsewhere)
        for title, listed in (here, there):
            if listed:
                self.line(f"Remembered for {title}:")
            for f in listed:
                self.line(
                    f"  - <c2>{f.variant}</> ({esc(f.when)}, {esc(f.machine)}): "
                    f"{esc(f.reason)}"
                )
        mine, origin = configured.variant, configured.variant_origin
        if not named and mine.kind != "auto" and mine != decision.variant:
            switch = "`poetry torch-cuda switch auto`"
            how = f"{switch} would follow the machine instead"
            if origin == ENV_VARIANT:  # it outlasts a switch
                how = f"unset it to follow pyproject.toml ({switch} makes that auto)"
            self.line(
                f"<comment>Note:</> this project configures <c2>{mine}</> "
                f"({esc(origin)}); {how}"
            )
        return 0
