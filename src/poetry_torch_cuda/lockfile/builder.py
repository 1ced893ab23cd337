"""Lock one variant: its builds of the locked versions and their CUDA closure, from its index.

Dependencies come from PEP 658 metadata (checked by sha256), else the wheel.
Only the torch family is followed; the rest is Poetry's, in poetry.lock. No
solver: variant indexes pin (``nvidia-cublas-cu12==12.9.1.4``); for a range,
the newest build every requirer accepts is taken, as pip would.
"""

from __future__ import annotations

import email.parser
import hashlib
import io
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename
from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name
from packaging.utils import parse_wheel_filename
from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.lockfile.model import LockedDependency
from poetry_torch_cuda.lockfile.model import LockedPackage
from poetry_torch_cuda.lockfile.model import VariantLock
from poetry_torch_cuda.lockfile.model import write_text
from poetry_torch_cuda.project.protection import is_cuda_bound
from poetry_torch_cuda.urls import mask_url
from poetry_torch_cuda.urls import without_credentials


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable
    from collections.abc import Mapping
    from pathlib import Path

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.index.client import IndexFile
    from poetry_torch_cuda.index.client import ProjectFiles
    from poetry_torch_cuda.project.variants import Variant

_MAX_PASSES = 5


class LockError(TorchCudaError):
    """The variant cannot be locked: the index lacks a build, a hash, or answered badly."""

    #: The HTTP status of the index's refusal, when that was the cause.
    status: int | None = None
    #: Why the index did not answer at all (read by the install's message, which
    #: then names the mirror and proxy settings).
    cause: str | None = None


def _unavailable(error: Exception) -> LockError:
    failure = LockError(str(error))
    failure.status = getattr(error, "status", None)
    # No HTTP status: the index did not answer (the client words why).
    failure.cause = getattr(error, "cause", None) or (
        None if failure.status else "no answer"
    )
    return failure


class MissingBuildError(LockError):
    """The variant's index has no build of a locked version."""


class DriftError(LockError):
    """A file already locked now has another sha256 on the index: a supply-chain alarm."""


@dataclass(frozen=True)
class Root:
    """A configured package to lock: at ``version`` (with the label) or the newest in ``specifier``."""

    name: NormalizedName
    version: str | None
    specifier: SpecifierSet = field(default_factory=SpecifierSet)
    extras: frozenset[str] = frozenset()
    markers: str = ""


@dataclass
class _Node:
    name: NormalizedName
    version: str
    files: list[IndexFile]
    markers: Any = None
    extras: set[str] = field(default_factory=set)
    edges: dict[tuple[NormalizedName, str], Any] = field(default_factory=dict)
    requirements: list[Requirement] | None = None


class VariantLocker:
    """Locks variants from their indexes with one client (and its cache)."""

    def __init__(
        self,
        client: IndexClient,
        configured: Iterable[NormalizedName],
        python_allows: Callable[[str], bool],
        metadata_cache: Path | None = None,
    ) -> None:
        self._client = client
        self._configured = frozenset(configured)
        self._python_allows = python_allows
        self._metadata_cache = metadata_cache
        self._pages: dict[tuple[str, str], ProjectFiles] = {}

    def lock(
        self,
        variant: Variant,
        url: str,
        roots: Iterable[Root],
        recorded: Mapping[str, set[str]] | None = None,
    ) -> VariantLock:
        """``variant``'s build of ``roots`` from the index at ``url``.

        Each set of roots installed together (one torch version with its
        companions, under their markers) is walked with its own pins.

        Raises:
            MissingBuildError: the index has no build of a root.
            DriftError: a file in ``recorded`` (file name -> sha256s locked
                before) has another sha256 on the index now.
            LockError: a page, a file or a hash could not be had.
        """
        nodes: dict[tuple[NormalizedName, str], _Node] = {}
        for group in _together(list(roots)):
            specs: dict[NormalizedName, SpecifierSet] = {}
            for _ in range(_MAX_PASSES):
                found, seen = self._walk(variant.local_label, url, group, specs)
                if seen == specs:
                    break
                specs = seen
            for key, node in found.items():
                if key in nodes:
                    nodes[key].markers = nodes[key].markers.union(node.markers)
                    nodes[key].edges.update(node.edges)
                else:
                    nodes[key] = node
        self._check_drift(variant, nodes.values(), recorded or {})
        return VariantLock(
            variant.name,
            without_credentials(url),
            tuple(self._package(node, url) for node in nodes.values()),
        )

    # -- the walk -------------------------------------------------------------

    def _walk(
        self,
        label: str,
        url: str,
        roots: list[Root],
        specs: dict[NormalizedName, SpecifierSet],
    ) -> tuple[
        dict[tuple[NormalizedName, str], _Node], dict[NormalizedName, SpecifierSet]
    ]:
        from poetry.core.version.markers import parse_marker

        nodes: dict[tuple[NormalizedName, str], _Node] = {}
        seen: dict[NormalizedName, SpecifierSet] = {}
        stack: list[tuple[NormalizedName, str, frozenset[str], Any]] = []
        for root in roots:
            version = root.version or self._choose(
                url, root.name, root.specifier, label=label
            )
            if root.version is not None and not self._files(
                url, root.name, root.version
            ):
                raise self._missing(url, root.name, root.version)
            stack.append((root.name, version, root.extras, parse_marker(root.markers)))
        while stack:
            name, version, extras, marker = stack.pop()
            key = (name, version)
            node = nodes.get(key)
            if node is None:
                node = _Node(name, version, self._files(url, name, version), marker)
                nodes[key] = node
            else:
                merged = node.markers.union(marker)
                if extras <= node.extras and str(merged) == str(node.markers):
                    continue  # nothing new: the walk ends even around a cycle
                node.markers = merged
            node.extras |= extras
            if node.requirements is None:
                node.requirements = self._requirements(node)
            for requirement in node.requirements:
                dep = canonicalize_name(requirement.name)
                if dep not in self._configured and not is_cuda_bound(dep):
                    continue  # Poetry's, locked in poetry.lock
                dep_marker = parse_marker(str(requirement.marker or ""))
                wanted_extras = dep_marker.only("extra")
                if not wanted_extras.is_any() and not any(
                    wanted_extras.validate({"extra": extra}) for extra in node.extras
                ):
                    continue
                dep_marker = dep_marker.without_extras()
                spec = requirement.specifier & specs.get(dep, SpecifierSet())
                seen[dep] = seen.get(dep, SpecifierSet()) & requirement.specifier
                dep_version = self._choose(url, dep, spec)
                node.edges[(dep, dep_version)] = dep_marker
                stack.append(
                    (
                        dep,
                        dep_version,
                        frozenset(requirement.extras),
                        node.markers.intersect(dep_marker),
                    )
                )
        return nodes, seen

    def _choose(
        self,
        url: str,
        name: NormalizedName,
        specifier: SpecifierSet,
        *,
        label: str | None = None,
    ) -> str:
        """The newest version of ``name`` on the index that ``specifier`` accepts."""
        versions = set()
        for entry in self._page(url, name).entries:
            parsed = wheel_version(entry.filename)
            if parsed is None or (label is not None and parsed.local != label):
                continue
            if self._fits_python(entry):
                versions.add(parsed)
        allowed = sorted(specifier.filter(versions), reverse=True)
        if not allowed:
            allowed = sorted(specifier.filter(versions, prereleases=True), reverse=True)
        if not allowed:
            raise self._missing(url, name, str(specifier) or None)
        return str(allowed[0])

    def _files(self, url: str, name: NormalizedName, version: str) -> list[IndexFile]:
        wanted = Version(version)
        files = []
        for entry in self._page(url, name).entries:
            if wheel_version(entry.filename) == wanted and self._fits_python(entry):
                if not entry.sha256:
                    raise LockError(
                        f"{mask_url(url)} lists no sha256 for {entry.filename}; "
                        "torch-cuda.lock needs the index to give every file's hash "
                        "(PEP 503 #sha256= fragments or PEP 691 hashes)."
                    )
                files.append(entry)
        return files

    def _page(self, url: str, name: NormalizedName) -> ProjectFiles:
        from poetry_torch_cuda.index.client import IndexUnavailableError

        key = (url, name)
        if key not in self._pages:
            try:
                self._pages[key] = self._client.project(url, name)
            except IndexUnavailableError as error:
                raise _unavailable(error) from None
        return self._pages[key]

    def _fits_python(self, entry: IndexFile) -> bool:
        try:
            _, _, _, tags = parse_wheel_filename(entry.filename)
        except (InvalidWheelFilename, InvalidVersion):
            return False
        return any(
            tag.abi == "abi3"
            or not tag.interpreter.startswith(("cp", "pp"))
            or len(tag.interpreter) < 4
            or self._python_allows(f"{tag.interpreter[2]}.{tag.interpreter[3:]}")
            for tag in tags
        )

    def _missing(self, url: str, name: str, wanted: str | None) -> MissingBuildError:
        page = self._page(url, canonicalize_name(name))
        have = sorted(
            {v for v in (wheel_version(e.filename) for e in page.entries) if v},
            reverse=True,
        )
        offered = ", ".join(str(v) for v in have[:8]) or "none"
        asked = (
            name
            if not wanted
            else f"{name}{'' if wanted[0] in '<>=!~' else '=='}{wanted}"
        )
        where = without_credentials(url.rstrip("/"))
        if not page.found:
            return MissingBuildError(
                f"cannot lock {asked} from {where}: the index has no page for "
                f"{name} (HTTP 404).\nCheck the index URL and the variant: "
                f"{where}/{name}/ should list its wheels."
            )
        return MissingBuildError(
            f"cannot lock {asked} from {where}: the index has "
            f"no build of {name} that matches (it offers {offered}).\n"
            "Choose a variant that has it (`poetry torch-cuda switch <variant>`), lock "
            "a version this variant offers, or check that the build exists for this "
            "project's Pythons."
        )

    # -- metadata ---------------------------------------------------------------

    def _requirements(self, node: _Node) -> list[Requirement]:
        """The union of the ``Requires-Dist`` of every file of the node."""
        distinct: dict[str, IndexFile] = {}
        for entry in node.files:
            distinct.setdefault(
                entry.metadata_sha256 or entry.sha256 or entry.filename, entry
            )
        with ThreadPoolExecutor(max_workers=min(8, len(distinct) or 1)) as pool:
            texts = list(pool.map(self._metadata, distinct.values()))
        found: dict[str, Requirement] = {}
        parser = email.parser.Parser()
        for text in texts:
            for line in (
                parser.parsestr(text, headersonly=True).get_all("Requires-Dist") or []
            ):
                try:
                    requirement = Requirement(line)
                except InvalidRequirement:
                    continue
                found.setdefault(str(requirement), requirement)
        return [found[key] for key in sorted(found)]

    def _metadata(self, entry: IndexFile) -> str:
        """The file's metadata: from the cache (by the file's sha256), else the index."""
        from poetry_torch_cuda.index.client import IndexUnavailableError

        cache = self._metadata_cache
        path = cache / f"{entry.sha256}.metadata" if cache and entry.sha256 else None
        with suppress(OSError):
            if path is not None:
                return path.read_text(encoding="utf-8")
        try:
            if entry.metadata_sha256 is not None:
                data = self._client.download(entry.url + ".metadata")
                _check(entry.filename + ".metadata", entry.metadata_sha256, data)
            else:
                wheel = self._client.download(entry.url)
                _check(entry.filename, entry.sha256, wheel)
                data = _wheel_metadata(wheel, entry.filename)
        except IndexUnavailableError as error:
            raise _unavailable(error) from None
        text = data.decode("utf-8", "replace")
        with suppress(OSError):  # a cache not written costs a request next time
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_text(path, text)
        return text

    # -- results ------------------------------------------------------------------

    def _package(self, node: _Node, url: str) -> LockedPackage:
        base = url.rstrip("/") + "/"
        files = []
        for entry in node.files:
            written = (
                entry.url[len(base) :]
                if entry.url.startswith(base)
                else without_credentials(entry.url)
            )
            files.append((entry.filename, written, entry.sha256 or "", entry.size))
        return LockedPackage(
            node.name,
            node.version,
            str(node.markers),
            tuple(
                LockedDependency(name, version, str(marker))
                for (name, version), marker in sorted(node.edges.items())
            ),
            tuple(sorted(files)),
        )

    def _check_drift(
        self, variant: Variant, nodes: Iterable[_Node], recorded: Mapping[str, set[str]]
    ) -> None:
        changed = [
            f"{entry.filename}: locked sha256 {' or '.join(sorted(before))}, the "
            f"index now lists {entry.sha256}"
            for node in nodes
            for entry in node.files
            if (before := recorded.get(entry.filename)) and entry.sha256 not in before
        ]
        if changed:
            raise DriftError(
                f"{variant}: the index or mirror now serves different bytes for files "
                f"already in torch-cuda.lock; refusing to overwrite it:\n"
                + "\n".join(f"  {line}" for line in changed)
                + "\nA published file never changes: treat this as a compromised or "
                "broken mirror. Check with whoever runs it; if the change is known to "
                "be legitimate, re-lock deliberately: `poetry torch-cuda lock "
                "--accept-drift`."
            )


def _check(filename: str, expected: str | None, data: bytes) -> None:
    if not expected:
        return
    received = hashlib.sha256(data).hexdigest()
    if received != expected:
        raise LockError(
            f"{filename}: the index lists sha256 {expected} but served bytes with "
            f"sha256 {received}; the index or mirror serves a corrupt or altered file."
        )


def _wheel_metadata(wheel: bytes, filename: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
            for name in archive.namelist():
                if name.count("/") == 1 and name.endswith(".dist-info/METADATA"):
                    return archive.read(name)
    except zipfile.BadZipFile:
        pass
    raise LockError(f"{filename} is not a wheel with a METADATA file.")


def _together(roots: list[Root]) -> list[list[Root]]:
    """The sets of roots one environment installs together: a package locked at
    several versions (under exclusive markers) splits them, one version each."""
    from poetry.core.version.markers import parse_marker

    by_name: dict[NormalizedName, list[Root]] = {}
    for root in roots:
        by_name.setdefault(root.name, []).append(root)
    groups: list[list[Root]] = [[]]
    for choices in by_name.values():
        split = [
            [*group, choice]
            for group in groups
            for choice in choices
            if len(choices) == 1
            or not any(
                parse_marker(choice.markers)
                .intersect(parse_marker(r.markers))
                .is_empty()
                for r in group
            )
        ]
        groups = split or [[*group, *choices] for group in groups]
    return groups


def wheel_version(filename: str) -> Version | None:
    """The version in a wheel file name (``None``: not a wheel)."""
    try:
        return parse_wheel_filename(filename)[1]
    except (InvalidWheelFilename, InvalidVersion):
        return None
