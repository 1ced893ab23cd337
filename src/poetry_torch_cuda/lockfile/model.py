"""What torch-cuda.lock holds: per variant, the builds, their dependencies and files."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urljoin

from packaging.markers import Marker
from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion
from packaging.version import Version


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

#: The name of the file, beside poetry.lock.
LOCK_NAME = "torch-cuda.lock"
#: The format of the file; a reader refuses a newer major version.
LOCK_VERSION = "1.0"


@dataclass(frozen=True)
class LockedFile:
    """One file of a locked build: what a downloader fetches and checks.

    ``url`` is absolute (resolved against the variant's index, never with
    credentials); ``size`` is ``None`` when the index did not say.
    """

    name: NormalizedName
    version: str
    filename: str
    url: str
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class LockedDependency:
    """An edge of the locked graph: ``name==version`` when ``markers`` hold."""

    name: NormalizedName
    version: str
    markers: str = ""


@dataclass(frozen=True)
class LockedPackage:
    """One package of a variant's build: its version, markers, dependencies and files.

    ``files`` keep the URL as written in the lock (relative to the index
    where possible); :meth:`VariantLock.files` resolves them.
    """

    name: NormalizedName
    version: str
    markers: str = ""
    dependencies: tuple[LockedDependency, ...] = ()
    #: ``(file name, url as written, sha256, size)``
    files: tuple[tuple[str, str, str, int | None], ...] = ()

    @property
    def hashes(self) -> list[str]:
        """Every file's sha256, sorted."""
        return sorted({sha256 for _, _, sha256, _ in self.files})


@dataclass(frozen=True)
class VariantLock:
    """The locked build of one variant from one index."""

    name: str
    index_url: str
    packages: tuple[LockedPackage, ...] = ()

    def package(self, name: str, version: str | None = None) -> LockedPackage | None:
        """The package ``name`` (at ``version`` if given; else the newest)."""
        wanted = canonicalize_name(name)
        found = [p for p in self.packages if p.name == wanted]
        if version is not None:
            found = [p for p in found if _same_version(p.version, version)]
        return max(found, key=lambda p: _key(p.version), default=None)

    def closure(
        self, roots: Iterable[tuple[str, str | None]], marker_env: Mapping[str, Any]
    ) -> list[LockedPackage]:
        """``roots`` (name, version) and every dependency whose markers hold in ``marker_env``.

        Raises:
            KeyError: a root or a dependency is not in the lock.
        """
        environment = {**marker_env, "extra": ""}
        chosen: dict[tuple[str, str], LockedPackage] = {}
        stack: list[tuple[str, str | None]] = list(roots)
        while stack:
            name, version = stack.pop()
            package = self.package(name, version)
            if package is None:
                raise KeyError(f"{name} {version or ''}".strip())
            key = (package.name, package.version)
            if key in chosen:
                continue
            chosen[key] = package
            for dependency in package.dependencies:
                if dependency.markers and not Marker(dependency.markers).evaluate(
                    environment
                ):
                    continue
                stack.append((dependency.name, dependency.version))
        return sorted(chosen.values(), key=lambda p: (p.name, _key(p.version)))

    def files(self, package: LockedPackage) -> list[LockedFile]:
        """``package``'s files with absolute URLs."""
        base = self.index_url.rstrip("/") + "/"
        return [
            LockedFile(
                package.name, package.version, filename, urljoin(base, url), sha, size
            )
            for filename, url, sha, size in package.files
        ]


@dataclass(frozen=True)
class LockInputs:
    """What the lock was derived from; equal inputs mean a fresh lock.

    All of it is known offline: poetry.lock's content-hash and the versions it
    locks for the configured packages, the configuration, and the index per
    variant (without credentials).
    """

    content_hash: str
    locked: tuple[tuple[NormalizedName, tuple[str, ...]], ...]
    packages: tuple[str, ...]
    lock_variants: tuple[str, ...]
    indexes: tuple[tuple[str, str], ...] = ()

    @property
    def index_by_variant(self) -> dict[str, str]:
        """Variant name -> index URL."""
        return dict(self.indexes)


@dataclass(frozen=True)
class TorchCudaLock:
    """The whole file: its inputs and one entry per locked variant."""

    inputs: LockInputs
    variants: tuple[VariantLock, ...] = field(default=())

    def variant(self, name: str) -> VariantLock | None:
        """The entry for ``name``, if locked."""
        return next((v for v in self.variants if v.name == name), None)


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)
