"""What an environment has installed, read from its distribution metadata.

Nothing here imports torch or starts a process: the paths and the marker
environment come from Poetry's ``Env``, which caches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING
from typing import Any

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion
from packaging.version import Version


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Iterator
    from collections.abc import Mapping
    from collections.abc import Sequence

    from poetry.utils.env import Env


@dataclass(frozen=True)
class InstalledDistribution:
    """One installed distribution: its name, version and what it requires here."""

    name: NormalizedName
    version: str
    requires: frozenset[NormalizedName]


class InstalledEnvironment:
    """Look up installed distributions in the site-packages directories of an env."""

    def __init__(self, paths: Sequence[str], marker_env: Mapping[str, Any]) -> None:
        self._paths = list(dict.fromkeys(paths))
        self._marker_env = dict(marker_env)
        self._cache: dict[NormalizedName, InstalledDistribution | None] = {}

    def get(self, name: str) -> InstalledDistribution | None:
        """The installed distribution called ``name``, or ``None``."""
        key = canonicalize_name(name)
        if key not in self._cache:
            found = next(iter(metadata.distributions(name=key, path=self._paths)), None)
            self._cache[key] = None if found is None else self._describe(found)
        return self._cache[key]

    def all(self) -> dict[NormalizedName, InstalledDistribution]:
        """Every installed distribution, by canonical name (first on the path wins)."""
        found: dict[NormalizedName, InstalledDistribution] = {}
        for distribution in metadata.distributions(path=self._paths):
            raw_name = distribution.metadata["Name"]
            if not raw_name:
                continue
            name = canonicalize_name(raw_name)
            if name not in found:
                found[name] = self._describe(distribution)
        self._cache.update(found)
        return found

    def closure(
        self, roots: Iterable[str]
    ) -> dict[NormalizedName, InstalledDistribution]:
        """The installed distributions reachable from ``roots`` through their requirements."""
        reached: dict[NormalizedName, InstalledDistribution] = {}
        stack = [canonicalize_name(root) for root in roots]
        while stack:
            name = stack.pop()
            if name in reached:
                continue
            distribution = self.get(name)
            if distribution is None:
                continue
            reached[name] = distribution
            stack.extend(distribution.requires)
        return reached

    def needs(self, names: Iterable[str]) -> set[NormalizedName]:
        """What the installed ``names`` require here, extras left out."""
        found: set[NormalizedName] = set()
        for name in names:
            for requirement in self._requirements_here(name):
                found.add(canonicalize_name(requirement.name))
        return found

    def unmet(self, roots: Iterable[str]) -> list[str]:
        """What ``pip check`` would say of the distributions reachable from ``roots``.

        One sentence per requirement an installed version does not satisfy
        (``torch 2.14.1+cu130 depends on filelock>=3.21, but filelock 3.20.0 is
        installed``); a requirement that is not installed at all is not counted.
        """
        problems: list[str] = []
        for distribution in self.closure(roots).values():
            for requirement in self._requirements_here(distribution.name):
                have = self.get(requirement.name)
                if have is None or not requirement.specifier:
                    continue
                try:
                    satisfied = requirement.specifier.contains(
                        Version(have.version), prereleases=True
                    )
                except InvalidVersion:
                    continue
                if not satisfied:
                    problems.append(
                        f"{distribution.name} {distribution.version} depends on "
                        f"{requirement}, but {have.name} {have.version} is installed"
                    )
        return problems

    def _requirements_here(self, name: str) -> Iterator[Requirement]:
        """The installed ``name``'s requirements whose markers hold here, extras left out."""
        found = next(
            iter(
                metadata.distributions(name=canonicalize_name(name), path=self._paths)
            ),
            None,
        )
        if found is None:
            return
        environment = {**self._marker_env, "extra": ""}
        for line in found.metadata.get_all("Requires-Dist") or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate(environment):
                yield requirement

    def _describe(self, distribution: metadata.Distribution) -> InstalledDistribution:
        # Each access to ``distribution.metadata`` (and ``.version``, ``.requires``)
        # reads and parses METADATA again: parse it once.
        meta = distribution.metadata
        requires: set[NormalizedName] = set()
        extras = meta.get_all("Provides-Extra") or []
        lines = meta.get_all("Requires-Dist")
        if lines is None:  # an .egg-info keeps them in requires.txt
            lines = distribution.requires or []
        for line in lines:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is None or any(
                requirement.marker.evaluate({**self._marker_env, "extra": extra})
                for extra in ("", *extras)
            ):
                requires.add(canonicalize_name(requirement.name))
        return InstalledDistribution(
            canonicalize_name(meta["Name"]), meta["Version"], frozenset(requires)
        )


def graph_of(
    distributions: Iterable[InstalledDistribution],
) -> dict[NormalizedName, frozenset[NormalizedName]]:
    """The dependency graph (name -> required names) of ``distributions``."""
    return {distribution.name: distribution.requires for distribution in distributions}


def installed_environment(env: Env) -> InstalledEnvironment:
    """The installed distributions of Poetry's ``env`` (paths are cached by Poetry)."""
    return InstalledEnvironment(
        [str(path) for path in env.site_packages.candidates], env.marker_env
    )
