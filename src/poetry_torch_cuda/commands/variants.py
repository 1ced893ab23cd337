"""``poetry torch-cuda variants``: which variants the index has for the locked torch."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import argument
from cleo.helpers import option
from packaging.utils import canonicalize_name

from poetry_torch_cuda.commands.base import REFRESH
from poetry_torch_cuda.commands.base import TorchCudaCommand
from poetry_torch_cuda.index.offers import wanted_versions
from poetry_torch_cuda.machine import tables
from poetry_torch_cuda.machine.detection import assess
from poetry_torch_cuda.machine.resolution import failures
from poetry_torch_cuda.machine.resolution import offer_finder
from poetry_torch_cuda.machine.resolution import probe
from poetry_torch_cuda.machine.resolution import resolve
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.locked import check_fresh
from poetry_torch_cuda.project.variants import variant_argument
from poetry_torch_cuda.urls import mask_url


if TYPE_CHECKING:
    from cleo.io.inputs.argument import Argument
    from cleo.io.inputs.option import Option

    from poetry_torch_cuda.index.offers import Offer
    from poetry_torch_cuda.project.variants import Variant

#: A row's index cell and style, by whether the index offers the build.
OFFERED = {
    True: ("offered", "success"),
    False: ("missing", "comment"),
    None: ("unknown", "warning"),
}
RUNS = {True: "runs here", False: "does not run here", None: "cannot tell"}


class VariantsCommand(TorchCudaCommand):
    """List the variants offered for the locked torch and whether they run here."""

    name = "torch-cuda variants"
    description = (
        "List the variants the index offers for the locked torch, and which run here."
    )
    arguments: ClassVar[list[Argument]] = [
        argument(
            "variant",
            "Only these variants (default: cpu, every known CUDA and ROCm variant, xpu).",
            optional=True,
            multiple=True,
        )
    ]
    options: ClassVar[list[Option]] = [
        option("json", None, "Print the list as JSON."),
        option("all", None, "Also list variants whose index has no torch at all."),
        REFRESH,
    ]
    help = (
        "Reads each variant's index page (PEP 691 JSON when offered, else PEP 503 "
        "HTML) through Poetry's HTTP client, with Poetry's credentials; the pages "
        "are cached for 10 minutes in Poetry's cache directory."
    )

    def work(self) -> int:
        ctx = self.context()
        config = ctx.config
        check_fresh(self.poetry)
        locked = ctx.view.versions  # every group and extra: the locked torch
        wanted = wanted_versions(config.package_names, locked)
        torch = wanted.get(canonicalize_name("torch"))
        machine = probe(self.env)
        failed = {f.variant for f in failures(self.env.path, machine, torch)}
        finder = offer_finder(config, wanted, ctx)
        # The variants asked for, else every known one and the configured one.
        asked = self.argument("variant")
        known = ["cpu", *tables.CUDA_VARIANTS, *tables.ROCM_VARIANTS, "xpu"]
        names = asked or [*known, config.variant.name]
        candidates = dict.fromkeys(map(variant_argument, names))
        reports = finder.inspect([v for v in candidates if v.kind != "auto"])
        by_variant = {report.variant: report for report in reports}

        def offers(variant: Variant) -> Offer:  # auto's pick, from the answers read
            report, held = by_variant.get(variant), finder.held(variant)
            return held or (report.offer() if report else finder(variant))

        as_auto = dataclasses.replace(config, variant=variant_argument("auto"))
        auto = resolve(as_auto, locked, ctx, machine=machine, offers=offers).variant
        configured, every = config.variant, asked or self.option("all")
        # the configured variant is listed, as the variants asked for are
        shown = [r for r in reports if every or r.listed or r.variant == configured]
        rows = [(r, assess(r.variant, machine, torch)) for r in shown]
        data = {
            "packages": wanted,
            "index_url": mask_url(config.index_url_template),
            "configured": configured.name,
            "auto": auto.name,
            "variants": [
                {
                    "variant": report.variant.name,
                    "index_url": mask_url(report.index_url),
                    "offered": report.available,
                    "packages": [
                        dataclasses.asdict(package) | {"name": str(package.name)}
                        for package in report.packages
                    ],
                    "usable": verdict.usable,
                    "rule": verdict.rule,
                    "reasons": list(verdict.reasons),
                    "configured": report.variant == configured,
                    "failed_verification_here": report.variant.name in failed,
                }
                for report, verdict in rows
            ],
        }
        if self.as_json(data):
            return 0
        asked = ", ".join(f"{n} {v}" for n, v in wanted.items()) or "torch (not locked)"
        self.line(f"Variants for <c2>{esc(asked)}</>:")
        width = max((len(r.variant.name) for r, _ in rows), default=4)
        gpus = len(machine.nvidia.gpus) if machine.nvidia else 0
        # One failure of the index (unreachable, refused) is said once, not per row:
        found = [r.offer().advice for r, _ in rows]  # words that name no variant
        shared = [e for e in found if e and found.count(e) > 1]
        for (report, verdict), error in zip(rows, found):
            offered, style = OFFERED[report.available]
            hits = (("configured", configured), ("auto's pick", auto))
            marks = ", ".join(word for word, hit in hits if report.variant == hit)
            mark = f"  <c1>({marks})</>" if marks else ""
            cell = f"<{style}>{offered}</>" + " " * (8 - len(offered))
            runs = RUNS[verdict.usable]
            runs = "runs on some GPUs" if verdict.serves_some(gpus) else runs
            runs = "failed verification here" if report.variant.name in failed else runs
            self.line(f"  <c2>{report.variant.name:<{width}}</>  {cell} {runs}{mark}")
            if report.available is not True and error not in shared:
                detail = "; ".join(p.describe(report.variant) for p in report.packages)
                self.line(f"  {'':<{width}}    index: {esc(error or detail)}")
            self.line(f"  {'':<{width}}    {esc('; '.join(verdict.reasons))}")
        for error in dict.fromkeys(shared):
            self.line(f"<warning>Index (every unknown row):</> {esc(str(error))}")
        if hidden := ", ".join(r.variant.name for r in reports if r not in shown):
            hint = f"{hidden} (--all lists them)"
            self.line(f"<comment>No torch at all on the index for:</> {hint}")
        self.line(f"<info>auto</> picks <c2>{auto}</> on this machine.")
        return 0
