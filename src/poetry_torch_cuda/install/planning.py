"""Decide what must change so the environment holds the configured variant."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING

from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.environment.installed import CUDA_SUFFIX
from poetry_torch_cuda.environment.installed import InstalledEnvironment
from poetry_torch_cuda.install.build_info import read_builds
from poetry_torch_cuda.project.locked import selected_packages
from poetry_torch_cuda.project.protection import dependency_closure
from poetry_torch_cuda.project.protection import is_cuda_bound
from poetry_torch_cuda.project.protection import protected_names
from poetry_torch_cuda.project.variants import Variant
from poetry_torch_cuda.project.variants import label_of
from poetry_torch_cuda.urls import mask_url


if TYPE_CHECKING:
    from collections.abc import Collection
    from collections.abc import Iterable
    from collections.abc import Mapping

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from poetry.poetry import Poetry

    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.locked import LockedState


@dataclass(frozen=True)
class Target:
    """One package the environment must hold, as pip should be asked for it."""

    name: NormalizedName
    version: Version | None = None
    specifier: SpecifierSet | None = None
    extras: frozenset[str] = frozenset()

    def is_satisfied_by(self, installed_version: str | None, variant: Variant) -> bool:
        """Whether ``installed_version`` is this target's build of ``variant``."""
        try:
            installed = Version(installed_version or "")
        except InvalidVersion:  # none installed, or not a version
            return False
        if self.version is not None:
            return installed == self.version
        spec = self.specifier
        return installed.local == variant.name and (
            spec is None or spec.contains(installed, prereleases=True)
        )

    def __str__(self) -> str:
        """The requirement as pip reads it (``torch==2.8.0+cu129``)."""
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        pin = f"=={self.version}" if self.version is not None else self.specifier or ""
        return f"{self.name}{extras}{pin}"


def build_targets(
    packages: Iterable[Requirement],
    locked_versions: Mapping[NormalizedName, str],
    variant: Variant,
    installed: InstalledEnvironment,
) -> list[Target]:
    """The configured packages to hold: the locked version with the variant's label, else
    the specifier (kept when the env holds it or a locked target comes too)."""
    targets: list[Target] = []
    for requirement in packages:
        name = canonicalize_name(requirement.name)
        extras = frozenset(requirement.extras)
        if (locked := locked_versions.get(name)) is not None:
            version = Version(f"{Version(locked).public}+{variant.name}")
            targets.append(Target(name, version, extras=extras))
        elif requirement.specifier:
            targets.append(Target(name, specifier=requirement.specifier, extras=extras))
    if any(target.version is not None for target in targets):
        return targets
    return [target for target in targets if installed.get(target.name) is not None]


@dataclass(frozen=True)
class Plan:
    """What to install and remove (empty: nothing to change), and what it was made from."""

    variant: Variant
    install: tuple[Target, ...] = ()
    remove: tuple[NormalizedName, ...] = ()
    satisfied: tuple[Target, ...] = ()
    #: The torch family as the lock and the environment see it.
    protected: frozenset[NormalizedName] = frozenset()
    #: The configured packages (never swept as unused).
    configured: frozenset[NormalizedName] = frozenset()
    #: The project's own installed or ``lacking`` dependencies: Poetry's, not the build's.
    own: frozenset[NormalizedName] = frozenset()
    #: poetry.lock's packages: a CUDA wheel of another family there (JAX's ``-cu12``
    #: beside a ``+cu130`` torch) is Poetry's, never a stray.
    poetrys: frozenset[NormalizedName] = frozenset()
    #: The variant's index as ``--dry-run`` shows it (credentials masked).
    index_shown: str = ""
    #: Poetry's packages the family needs and the env lacks, at poetry.lock's version.
    lacking: Mapping[NormalizedName, str] = field(default_factory=dict, compare=False)
    #: Reinstall builds that match already (``sync --force``).
    force: bool = False
    #: The unused wheels the sweep after the install removes, as the plan found them.
    then_remove: tuple[NormalizedName, ...] = ()
    #: The environment as it was when the plan was made.
    installed: InstalledEnvironment = field(
        default_factory=lambda: InstalledEnvironment((), {}), compare=False, repr=False
    )

    @property
    def is_empty(self) -> bool:
        """Whether nothing needs to change."""
        return not self.install and not self.remove

    @property
    def unchanged(self) -> str:
        """The sentence for a failure that changed nothing in the environment."""
        held = [
            f"{target.name} {version}"
            for target in self.install
            if (version := self.installed.version(target.name)) is not None
        ]
        if not held:  # Poetry may have installed the rest: say what is missing
            return "No torch build was installed."
        return f"Nothing changed: the environment still has {', '.join(held)}."

    def unmoved(self, poetry: Poetry) -> dict[str, tuple[str, str, str]]:
        """Installed configured builds no install moves: name -> warning, cause, fix."""
        moved = {target.name for target in (*self.install, *self.satisfied)}
        builds = read_builds(sorted(self.configured - moved), self.installed)
        builds = {n: b for n, b in builds.items() if b.label != self.variant.name}
        if not builds:  # reading poetry.lock's markers costs a parse of it
            return {}
        locked = [(p.name, str(m)) for p, m in selected_packages(poetry)]
        said = {}
        for name, build in builds.items():
            cause = f"poetry.lock does not lock {name}"
            fix = f"add it to the project's dependencies (`poetry add {name}`)"
            if markers := [marker for n, marker in locked if n == name]:
                cause = f"poetry.lock locks {name} only for other environments "
                cause += f"({' or '.join(markers)})"
                fix = "widen the markers that leave it out, then run `poetry lock`"
            cause += f", so no install puts {self.variant}'s build in"
            warning = f"{name} {build.version} ({build.build}) is installed, but "
            said[name] = (f"{warning}{cause}: {fix}", cause, fix)
        return said

    @property
    def sweepable(self) -> frozenset[NormalizedName]:
        """The CUDA wheels removed after an install once nothing needs them."""
        return self.protected - self.configured


def protected_for(
    config: TorchCudaConfig, locked: LockedState, installed: InstalledEnvironment
) -> frozenset[NormalizedName]:
    """The torch family as the lock and the environment see it, but the project's own."""
    names, graph = config.package_names, installed.graph(config.package_names)
    # What the installed build needs but the lock never heard of is pip's, not Poetry's.
    unknown = frozenset(graph) - frozenset(locked.graph) - locked.direct
    return protected_names(names, [locked.graph, graph], locked.direct) | unknown


def plan_for(
    config: TorchCudaConfig,
    variant: Variant,
    locked: LockedState,
    installed: InstalledEnvironment,
    *,
    force: bool = False,
) -> Plan:
    """The offline plan that makes the env holding ``installed`` hold ``variant``."""
    configured = config.package_names
    targets = build_targets(config.packages, locked.versions, variant, installed)
    install = tuple(
        target
        for target in targets
        if force or not target.is_satisfied_by(installed.version(target.name), variant)
    )
    # pip reads the version in a .dist-info folder's name: a build whose METADATA was
    # written over since (`Version: banana`) it keeps as installed unless forced.
    force = force or any(
        t.is_satisfied_by(installed.folder_version(t.name), variant) for t in install
    )
    protected = protected_for(config, locked, installed)
    poetrys, sweep = frozenset(locked.graph), protected - configured
    then: tuple[NormalizedName, ...] = ()
    orphans = [] if install else find_orphans(sweep, targets, installed, poetrys)
    if foreign_wheels(orphans, cuda_majors(targets, installed)):
        # It may have replaced the build's files (the families share paths): only
        # reinstalling the build puts them back; the sweep after it removes the wheel.
        install, orphans, force, then = tuple(targets), [], True, tuple(orphans)
    elif not install and any(
        is_cuda_bound(name)
        for name in [
            *(name for _, name in installed.missing(t.name for t in targets)),
            *installed.unmet(t.name for t in targets).values(),
        ]
    ):
        # A wheel of the family a killed install left out (Poetry skips them) or at a
        # version the build rejects (another pip's): pip puts the locked one in, the
        # rest is in place; orphans go after it
        install, orphans, then = tuple(targets), [], tuple(orphans)
    # Poetry's packages the targets need and the env lacks (a hook's graph holds
    # only the family), at poetry.lock's versions.
    reached = dependency_closure([t.name for t in install], locked.graph)
    versions = locked.pins or locked.versions
    lacking = {
        name: versions[name]
        for name in sorted(reached - protected)
        if name in versions and installed.get(name) is None
    }
    return Plan(
        variant,
        install,
        tuple(orphans),
        tuple(target for target in targets if target not in install),
        protected=protected,
        configured=configured,
        own=frozenset(
            n for n in locked.direct - configured if installed.get(n) or n in lacking
        ),
        poetrys=poetrys,
        index_shown=mask_url(config.index_url(variant)),
        lacking=lacking,
        force=force,
        then_remove=then,
        installed=installed,
    )


def find_orphans(
    candidates: Iterable[NormalizedName],
    targets: Collection[Target],
    installed: InstalledEnvironment,
    poetrys: Collection[NormalizedName] = (),
) -> list[NormalizedName]:
    """Installed ``candidates`` nothing else installed requires, and the CUDA wheels of
    another family than ``targets``' build (pip leaves them; they share its paths) that
    are not ``poetrys``."""
    strays = foreign_wheels(installed.names(), cuda_majors(targets, installed))
    present = {
        name
        for name in (*candidates, *(name for name in strays if name not in poetrys))
        if installed.get(name) is not None
    }
    if not present or not present - set(installed.graph(t.name for t in targets)):
        return []
    graph = installed.graph()
    needed = dependency_closure([name for name in graph if name not in present], graph)
    return sorted(present - needed)


def cuda_majors(
    targets: Iterable[Target], installed: InstalledEnvironment
) -> frozenset[int]:
    """The CUDA majors of the installed builds of ``targets`` (13 for ``+cu130``)."""
    labels = {label_of(installed.version(t.name) or "") or "" for t in targets}
    found = (Variant(label, "cuda").cuda_version for label in labels)
    return frozenset(version[0] for version in found if version is not None)


def foreign_wheels(
    names: Iterable[NormalizedName], majors: Collection[int]
) -> dict[NormalizedName, int]:
    """Of ``names``, the CUDA wheels (``-cu12``) whose major is none of ``majors``."""
    if not majors:  # a build of no CUDA: every family is another one, no risk
        return {}
    matches = ((name, CUDA_SUFFIX.search(name)) for name in sorted(names))
    found = {name: int(m[1]) for name, m in matches if m and is_cuda_bound(name)}
    return {name: major for name, major in found.items() if major not in majors}
