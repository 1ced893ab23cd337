"""What an environment has installed, read from its distribution metadata.

A view reads each distribution's metadata once, when first asked; a run shares its
view (``RunContext.installed``) and reads a new one after it changed the environment.
"""

from __future__ import annotations

import os
import re
from contextlib import suppress
from dataclasses import dataclass
from dataclasses import field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.errors import TorchCudaError


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping
    from collections.abc import Sequence

    from poetry.utils.env import Env

    Metadata = metadata.PackageMetadata

#: A requirement whose marker holds here, and the extra of ours that activates it or "".
Edge = tuple[Requirement, str]


@dataclass(frozen=True)
class InstalledDistribution:
    """One installed distribution: its name, version and requirements that hold here."""

    name: NormalizedName
    version: str
    edges: tuple[Edge, ...] = ()
    #: Every ``Requires-Dist`` line, markers and extras included.
    lines: tuple[str, ...] = ()
    source: metadata.Distribution | None = field(default=None, compare=False)

    @property
    def version_py(self) -> str | None:
        """The package's ``version.py`` (torch's names its CUDA), if readable."""
        if self.source is not None:
            path = self.source.locate_file(f"{self.name.replace('-', '_')}/version.py")
            with suppress(OSError):
                return Path(str(path)).read_text(encoding="utf-8")
        return None


class InstalledEnvironment:
    """Look up installed distributions in the site-packages directories of an env."""

    def __init__(self, paths: Sequence[str], marker_env: Mapping[str, Any]) -> None:
        self._paths = list(dict.fromkeys(paths))
        self._marker_env = dict(marker_env)
        self._cache: dict[NormalizedName, InstalledDistribution | None] = {}
        self._everything: dict[NormalizedName, InstalledDistribution] | None = None

    def get(self, name: str) -> InstalledDistribution | None:
        """The installed distribution called ``name``, or ``None``."""
        key = canonicalize_name(name)
        if self._everything is not None:
            return self._everything.get(key)
        if key not in self._cache and (found := located(self._paths, key)) is not None:
            self._cache[key] = self._describe(found, key, _metadata_of(found))
        return self._cache.setdefault(key, None)

    def version(self, name: str) -> str | None:
        """The installed version of ``name``, or ``None``."""
        return None if (found := self.get(name)) is None else found.version

    def names(self) -> dict[NormalizedName, list[str]]:
        """Installed names from their folders' names as pip reads them (no ``~orch-…``),
        each with its folders (two: a hand copy's)."""
        found: dict[NormalizedName, list[str]] = {}
        for path in self._paths:
            with suppress(OSError):
                for entry in os.scandir(path):
                    stem, _, kind = entry.name.rpartition(".")
                    if kind in ("dist-info", "egg-info") and stem[:1] != "~":
                        name = canonicalize_name(stem.split("-", 1)[0])
                        found.setdefault(name, []).append(entry.path)
        return found

    def folder_version(self, name: str) -> str | None:
        """The version in ``name``'s .dist-info folder name, which pip reads first."""
        found = self.names().get(canonicalize_name(name), [])
        stems = [Path(f).stem for f in found if f.endswith(".dist-info")]
        return stems[0].partition("-")[2] if stems else None

    def all(self) -> dict[NormalizedName, InstalledDistribution]:
        """Every installed distribution by name (first on the path wins); none yet for a
        folder whose METADATA names none (a wheel pip is unpacking)."""
        if self._everything is None:
            self._everything = {
                n: self._describe(d, n, meta)
                for n in self.names()
                if (d := located(self._paths, n))
                and header(meta := _metadata_of(d), "Name")
            }
        return dict(self._everything)

    def without(self, names: Iterable[str]) -> InstalledEnvironment:
        """This view less ``names`` (the env a dry run's Poetry would leave)."""
        view, gone = InstalledEnvironment(self._paths, self._marker_env), {*names}
        view._everything = {n: d for n, d in self.all().items() if n not in gone}
        return view

    def graph(
        self, roots: Iterable[str] | None = None
    ) -> dict[NormalizedName, frozenset[NormalizedName]]:
        """Name -> required names for what ``roots`` (default: all) reach, through active
        requirements only: markers that hold here, extras only where a requirer asks."""
        stack: list[tuple[NormalizedName, frozenset[str]]] = [
            (canonicalize_name(root), frozenset())
            for root in (self.all() if roots is None else roots)
        ]
        asked: dict[NormalizedName, frozenset[str]] = {}
        edges: dict[NormalizedName, set[NormalizedName]] = {}
        while stack:
            name, extras = stack.pop()
            distribution = self.get(name)
            if distribution is None or (name in asked and extras <= asked[name]):
                continue
            asked[name] = asked.get(name, frozenset()) | extras
            required = edges.setdefault(name, set())
            for requirement, extra in distribution.edges:
                if not extra or extra in extras:
                    required.add(child := canonicalize_name(requirement.name))
                    wanted = frozenset(map(canonicalize_name, requirement.extras))
                    stack.append((child, wanted))
        return {name: frozenset(required) for name, required in edges.items()}

    def missing(self, roots: Iterable[str]) -> list[tuple[str, NormalizedName]]:
        """What ``roots`` reach through active requirements and is not installed (a
        killed install, say): the requirer (``torch 2.14.1``) and the name."""
        return [
            (f"{requirer} {self.version(requirer)}", name)
            for requirer, required in self.graph(roots).items()
            for name in sorted(required)
            if self.get(name) is None
        ]

    def unmet(self, roots: Iterable[str]) -> dict[str, NormalizedName]:
        """``pip check``'s sentences for installed versions that what ``roots`` reach
        reject, each with the name of the package rejected."""
        problems: dict[str, NormalizedName] = {}
        for name in self.graph(roots):
            distribution = self.get(name)
            assert distribution is not None
            for requirement, extra in distribution.edges:
                have, specifier = self.get(requirement.name), requirement.specifier
                if extra or have is None or not specifier:
                    continue
                with suppress(InvalidVersion):  # no version to judge
                    if not specifier.contains(Version(have.version), prereleases=True):
                        problems[
                            f"{distribution.name} {distribution.version} depends on "
                            f"{requirement}, but {have.name} {have.version} is installed"
                        ] = have.name
        return problems

    def _describe(
        self, dist: metadata.Distribution, name: NormalizedName, meta: Metadata | None
    ) -> InstalledDistribution:
        # ``meta`` is passed in because each ``dist.metadata`` parses the file again
        version = header(meta, "Version")
        if not (meta and version):  # a killed install's; its Name may be gone too
            raise TorchCudaError(
                f"{name}'s METADATA in {dist.locate_file('')} names no "
                f"version: a damaged install. Delete {name}'s .dist-info folder there, "
                "then run `poetry install`."
            )
        extras = [canonicalize_name(e) for e in meta.get_all("Provides-Extra") or []]
        lines = meta.get_all("Requires-Dist")
        if lines is None:  # an .egg-info keeps them in requires.txt
            lines = dist.requires or []
        edges: list[Edge] = []
        here = self._marker_env
        for line in lines:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            # An extra the line does not name reads as no extra: evaluating only
            # the named ones spares thousands (fsspec: 103 lines x 28 extras).
            named = re.sub(r"[-_.]+", "-", line).lower()
            marker = requirement.marker
            for extra in ("", *(e for e in extras if e in named)):
                if marker is None or marker.evaluate({**here, "extra": extra}):
                    edges.append((requirement, extra))
                    if not extra:
                        break
        return InstalledDistribution(name, version, tuple(edges), tuple(lines), dist)


def located(paths: Sequence[str], name: str) -> metadata.Distribution | None:
    """The metadata of ``name`` first on ``paths``, by its folder's name (as pip finds it)."""
    return next(iter(metadata.distributions(name=name, path=list(paths))), None)


def _metadata_of(found: metadata.Distribution) -> Metadata | None:
    """Its METADATA; None before pip wrote it (the backport: None, or 9+ raises)."""
    with suppress(OSError):
        return found.metadata
    return None


def header(meta: Metadata | None, name: str) -> str | None:
    """A METADATA header, or None where it is missing (the backport raises KeyError)."""
    return next(iter(meta.get_all(name) or ()), None) if meta else None


def site_paths(env: Env) -> list[str]:
    """Where ``env``'s distributions are installed, as pip looks for them."""
    return [str(path) for path in env.site_packages.candidates]


def installed_environment(env: Env) -> InstalledEnvironment:
    """The installed distributions of Poetry's ``env``, read afresh."""
    return InstalledEnvironment(site_paths(env), env.marker_env)


_RUNTIMES = ("cuda-toolkit", "nvidia-cuda-runtime", "nvidia-cuda-nvrtc")
_VERSION_PY_CUDA = re.compile(
    r"^cuda\s*(?::[^=]*)?=\s*(?:['\"](\d+\.\d+)|(None))", flags=re.MULTILINE
)
_SPEC_VERSION = re.compile(r"(\d+)\.(\d+)")
#: The CUDA major a wheel of one family names: ``nvidia-cudnn-cu12`` -> ``12``.
CUDA_SUFFIX = re.compile(r"-cu(\d+)$")


def unlabelled_cuda(requires: Iterable[str], version_py: str | None) -> str | None:
    """The CUDA an unlabelled (PyPI) build carries: the runtime it pins (``13.0`` from
    ``cuda-toolkit==13.0.*``, markers ignored: it names the CUDA built with), else
    ``12.x`` from ``nvidia-*-cu12`` wheels, else version.py's ``cuda = '12.8'``; ``""``:
    CPU-only (``cuda = None``); ``None``: nothing says."""
    family: str | None = None
    for line in requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        name = canonicalize_name(requirement.name)
        base = CUDA_SUFFIX.sub("", name)
        if base in _RUNTIMES:
            for specifier in requirement.specifier:
                match = _SPEC_VERSION.match(specifier.version)
                if match and specifier.operator in ("==", "~=", ">=", "==="):
                    return f"{match.group(1)}.{match.group(2)}"
        suffix = CUDA_SUFFIX.search(name)
        if family is None and suffix and name.startswith("nvidia-"):
            family = f"{suffix.group(1)}.x"
    found = _VERSION_PY_CUDA.search(version_py or "")
    if family is None and found is not None:
        return found.group(1) or ""
    return family
