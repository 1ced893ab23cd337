"""Does a variant's index have the locked torch family, in a build for this environment?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from poetry_torch_cuda.index.client import IndexUnavailableError
from poetry_torch_cuda.project.variants import public_version
from poetry_torch_cuda.urls import mask_url
from poetry_torch_cuda.urls import without_credentials


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    from packaging.utils import NormalizedName

    from poetry_torch_cuda.environment.installed import InstalledEnvironment
    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.index.client import ProjectFiles
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant


@dataclass(frozen=True)
class Offer:
    """Whether the index has the build (``None``: could not ask, ``advice``: why and
    what to do); ``remembered``: "no" because it failed verification here before."""

    available: bool | None
    detail: str
    remembered: bool = False
    advice: str = ""


#: At most this many versions are named in a message.
SHOWN_VERSIONS = 6


@dataclass(frozen=True)
class PackageOffer:
    """One package on one variant index: the wanted build (``None``: any) and the
    versions it has; ``has_wanted`` ``None``: the index could not be asked (``error``)."""

    name: NormalizedName
    wanted: str | None
    has_wanted: bool | None
    versions: tuple[str, ...] = ()
    error: str | None = None
    page: bool = True
    #: ``error`` and what to do about it, the same for every variant of one index.
    cause: str | None = None

    def describe(self, variant: Variant) -> str:
        """``torch 2.14.1+cu129`` or ``no torch 2.14.1+cu126 (it has 2.13.0)``."""
        if self.error is not None:
            return self.error
        asked = (
            f"{self.name} {self.wanted}+{variant.name}" if self.wanted else self.name
        )
        if self.has_wanted:
            return asked if self.wanted else f"{self.name} {_listed(self.versions)}"
        if not self.page:
            return f"no {asked} (no {self.name} page at all)"
        if not self.versions:
            return f"no {asked} (no {self.name} build for this environment)"
        return f"no {asked} (it has {_listed(self.versions)})"


@dataclass(frozen=True)
class VariantOffer:
    """What one variant's index offers of the wanted packages."""

    variant: Variant
    #: Without credentials (an offer is shown and kept, never used to ask).
    index_url: str
    packages: tuple[PackageOffer, ...]

    @property
    def listed(self) -> bool:
        """Whether the index has any build of the first package (torch) at all."""
        first = self.packages[0]
        return first.has_wanted is not False or bool(first.versions)

    @property
    def available(self) -> bool | None:
        """True when every package is there, False when one is missing, else None."""
        found = {package.has_wanted for package in self.packages}
        return False if False in found else None if None in found else True

    def offer(self) -> Offer:
        """The summary :func:`poetry_torch_cuda.machine.detection.decide` works with."""
        parts = "; ".join(package.describe(self.variant) for package in self.packages)
        if self.available is None:
            causes = " ".join(dict.fromkeys(p.cause for p in self.packages if p.cause))
            return Offer(None, f"could not ask the index: {parts}", advice=causes)
        return Offer(self.available, f"{mask_url(self.index_url)} has {parts}")


def wanted_versions(
    package_names: Iterable[NormalizedName], locked: Mapping[NormalizedName, str]
) -> dict[NormalizedName, str]:
    """The locked public versions of the configured packages, torch first."""
    names = sorted(package_names, key=lambda n: (n != "torch", n))
    public = {name: public_version(locked[name]) for name in names if name in locked}
    return {name: version for name, version in public.items() if version is not None}


@dataclass(frozen=True)
class OfferFinder:
    """Answers "does this variant have the locked builds?": none asked when installed
    with the variant's label; else torch's page first, the others only if it has it."""

    client: IndexClient
    config: TorchCudaConfig
    wanted: Mapping[NormalizedName, str]
    marker_env: Mapping[str, Any]
    installed: InstalledEnvironment | None = None

    def __call__(self, variant: Variant) -> Offer:
        """Whether ``variant`` has every wanted build."""
        return self.held(variant) or self.inspect([variant])[0].offer()

    def held(self, variant: Variant) -> Offer | None:
        """A yes without asking when the environment holds ``variant``'s builds."""
        held = {n: f"{v}+{variant.name}" for n, v in self.wanted.items()}
        have = self.installed
        if held and all(have and have.version(n) == v for n, v in held.items()):
            built = ", ".join(f"{n} {v}" for n, v in held.items())
            return Offer(True, f"{built} already installed from it")
        return None

    def inspect(self, variants: Iterable[Variant]) -> list[VariantOffer]:
        """Every wanted package on every variant, in parallel: the others than the
        first, torch, only where the index has the first's wanted build."""
        urls = {variant: self.config.index_url(variant) for variant in variants}
        # The wanted packages (none locked: the first configured), torch first.
        first, *rest = list(self.wanted) or [
            min(self.config.package_names, key=lambda n: (n != "torch", n))
        ]
        answers = self.client.projects([(url, first) for url in urls.values()])
        firsts = {
            v: self._package(v, first, answers[(u, first)]) for v, u in urls.items()
        }
        has = [v for v in urls if firsts[v].has_wanted]
        answers.update(self.client.projects([(urls[v], n) for v in has for n in rest]))
        reports = []
        for variant, url in urls.items():
            names = rest if variant in has else []
            others = (self._package(variant, n, answers[(url, n)]) for n in names)
            packages = (firsts[variant], *others)
            reports.append(VariantOffer(variant, without_credentials(url), packages))
        return reports

    def _package(
        self,
        variant: Variant,
        name: NormalizedName,
        answer: ProjectFiles | IndexUnavailableError,
    ) -> PackageOffer:
        wanted = self.wanted.get(name)
        if isinstance(answer, IndexUnavailableError):
            error = answer.words or str(answer)  # the URL is the variant's
            cause = f"{error}. {answer.advice}" if answer.words else error
            return PackageOffer(name, wanted, None, error=error, cause=cause)
        versions = tuple(
            version.public for version in answer.versions(variant.name, self.marker_env)
        )
        has = wanted in versions if wanted is not None else bool(versions)
        return PackageOffer(name, wanted, has, versions, page=answer.found)


def _listed(versions: tuple[str, ...]) -> str:
    shown = ", ".join(versions[:SHOWN_VERSIONS])
    if len(versions) > SHOWN_VERSIONS:
        shown += f" and {len(versions) - SHOWN_VERSIONS} older"
    return shown or "nothing"
