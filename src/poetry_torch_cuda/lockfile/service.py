"""Lock torch-cuda.lock and keep it in step with poetry.lock.

:class:`VariantLocker` locks one variant from its index: the builds poetry.lock locks
and their CUDA closure (PEP 658 metadata checked by sha256, else the wheel). No
solver: for a range, the newest build every requirer accepts, as pip would. The
per-run overrides (``POETRY_TORCH_CUDA_INDEX_URL``, ``_VARIANT``) never make a lock stale.
"""

from __future__ import annotations

import email
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from contextlib import suppress
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import TYPE_CHECKING
from typing import Any
from typing import BinaryIO
from urllib.parse import urlsplit

from cleo.io.outputs.output import Verbosity
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename
from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name
from packaging.utils import parse_wheel_filename
from packaging.version import InvalidVersion
from poetry.core.constraints.version import parse_constraint
from poetry.core.version.markers import parse_marker

from poetry_torch_cuda.environment.envlock import environment_lock
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.client import IndexUnavailableError
from poetry_torch_cuda.index.client import artifact
from poetry_torch_cuda.index.client import new_bytes
from poetry_torch_cuda.index.client import project_client
from poetry_torch_cuda.index.client import wheel_fits
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.lockfile.model import LockedDependency
from poetry_torch_cuda.lockfile.model import LockedPackage
from poetry_torch_cuda.lockfile.model import LockFileError
from poetry_torch_cuda.lockfile.model import LockInputs
from poetry_torch_cuda.lockfile.model import TorchCudaLock
from poetry_torch_cuda.lockfile.model import VariantLock
from poetry_torch_cuda.lockfile.model import lock_path
from poetry_torch_cuda.lockfile.model import read_lock
from poetry_torch_cuda.lockfile.model import recorded_hashes
from poetry_torch_cuda.lockfile.model import write_lock
from poetry_torch_cuda.machine import tables
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project import locked
from poetry_torch_cuda.project.config import ENV_INDEX_URL
from poetry_torch_cuda.project.config import require_config
from poetry_torch_cuda.project.protection import is_cuda_bound
from poetry_torch_cuda.project.variants import SYSTEMS
from poetry_torch_cuda.project.variants import parse_variant
from poetry_torch_cuda.project.variants import public_version
from poetry_torch_cuda.project.variants import version_key
from poetry_torch_cuda.tempfiles import make
from poetry_torch_cuda.tempfiles import read_json
from poetry_torch_cuda.tempfiles import refuse_read_only
from poetry_torch_cuda.tempfiles import write_json
from poetry_torch_cuda.urls import mask_url
from poetry_torch_cuda.urls import plain_http_elsewhere
from poetry_torch_cuda.urls import without_credentials


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Collection
    from collections.abc import Iterable
    from collections.abc import Mapping
    from pathlib import Path

    from cleo.io.io import IO
    from packaging.version import Version
    from poetry.poetry import Poetry

    from poetry_torch_cuda.index.client import IndexAuthenticator
    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.index.client import IndexFile
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.locked import Selected
    from poetry_torch_cuda.project.variants import Variant

    _Specs = dict[NormalizedName, SpecifierSet]

FIX = f"Run `poetry torch-cuda lock` and commit {LOCK_NAME}."
#: The one wording of a torch-cuda.lock that does not fit the project ({}: why).
STALE = f"{LOCK_NAME} does not match this project: {{}}.\n{FIX}"
NOT_LOCKED = "{} is not locked"


class LockError(TorchCudaError):
    """The variant cannot be locked: the index lacks a build or a hash, or served bad bytes."""


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
    markers: Any
    extras: set[str] = field(default_factory=set)
    edges: dict[tuple[NormalizedName, str], Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VariantLocker:
    """Locks variants from their indexes with one client (and its cache); ``keep``:
    an installing environment's markers, whose wheels read for METADATA it keeps."""

    client: IndexClient
    configured: Collection[NormalizedName]
    python_allows: Callable[[str], bool]
    keep: Mapping[str, Any] | None = None

    def lock(
        self,
        variant: Variant,
        url: str,
        roots: Iterable[Root],
        recorded: Mapping[str, set[str]] | None = None,
    ) -> VariantLock:
        """``variant``'s build of ``roots`` from the index at ``url``, each set of roots
        installed together with its own pins; a :class:`DriftError` if a file in
        ``recorded`` (file name -> sha256s) now has another sha256."""
        nodes: dict[tuple[NormalizedName, str], _Node] = {}
        for group in _together(list(roots)):
            specs: _Specs = {}
            for _ in range(5):  # again with every requirer's range
                found, seen = self._walk(variant.name, url, group, specs)
                if seen == specs:
                    break
                specs = seen
            for key, node in found.items():
                kept = nodes.setdefault(key, node)
                if kept is not node:
                    kept.markers = kept.markers.union(node.markers)
                    kept.edges.update(node.edges)
        changed = [
            f"{entry.filename}: locked sha256 {' or '.join(sorted(before))}, the "
            f"index now lists {entry.sha256}"
            for node in nodes.values()
            for entry in node.files
            if (before := (recorded or {}).get(entry.filename))
            and entry.sha256 not in before
        ]
        if changed:
            raise DriftError(
                f"{variant}: refusing to overwrite {LOCK_NAME}: {new_bytes(True)}\n"
                + "\n".join(f"  {line}" for line in changed)
            )
        base = without_credentials(url).rstrip("/") + "/"
        packages = tuple(
            LockedPackage(
                n.name,
                n.version,
                str(n.markers),
                tuple(sorted(LockedDependency(*k, str(m)) for k, m in n.edges.items())),
                tuple(sorted(_relative(e, base) for e in n.files)),
            )
            for n in nodes.values()
        )
        return VariantLock(variant.name, without_credentials(url), packages)

    def _walk(
        self, label: str, url: str, roots: list[Root], specs: _Specs
    ) -> tuple[dict[tuple[NormalizedName, str], _Node], _Specs]:
        """One pass from ``roots``, and the ranges seen for each dependency."""
        nodes: dict[tuple[NormalizedName, str], _Node] = {}
        seen: _Specs = {}
        stack = []
        pinned = {root.name: root.version for root in roots if root.version}
        for root in roots:
            spec = SpecifierSet(f"=={root.version}") if root.version else root.specifier
            # A root in a range takes a build that accepts the pinned ones, as pip.
            picked = self._pick(
                url, root.name, spec, label, {} if root.version else pinned
            )
            stack.append((root.name, *picked, root.extras, parse_marker(root.markers)))
        while stack:
            name, version, files, extras, marker = stack.pop()
            node = nodes.get((name, version))
            if node is None:
                node = nodes[(name, version)] = _Node(name, version, files, marker)
            else:
                merged = node.markers.union(marker)
                if extras <= node.extras and str(merged) == str(node.markers):
                    continue  # nothing new: the walk ends even around a cycle
                node.markers = merged
            node.extras |= extras
            for dep, requirement, dep_marker in self._followed(node.files, node.extras):
                seen[dep] = seen.get(dep, SpecifierSet()) & requirement.specifier
                spec = requirement.specifier & specs.get(dep, SpecifierSet())
                own = label if dep in self.configured else None  # as a root's
                dep_version, dep_files = self._pick(url, dep, spec, own)
                node.edges[(dep, dep_version)] = dep_marker
                dep_extras = frozenset(requirement.extras)
                dep_marker = node.markers.intersect(dep_marker)
                stack.append((dep, dep_version, dep_files, dep_extras, dep_marker))
        return nodes, seen

    def _pick(
        self,
        url: str,
        name: NormalizedName,
        specifier: SpecifierSet,
        label: str | None = None,
        fit: Mapping[NormalizedName, str] | None = None,
    ) -> tuple[str, list[IndexFile]]:
        """The newest build (``label``'s; ``fit``: accepting those) and its files."""
        page = self.client.project(url, name)
        builds: dict[Version, list[IndexFile]] = {}  # for the project's Pythons
        for entry in page.entries:
            try:
                _, version, _, tags = parse_wheel_filename(entry.filename)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if any(
                tag.abi == "abi3"
                or not tag.interpreter.startswith(("cp", "pp"))
                or len(tag.interpreter) < 4
                or self.python_allows(f"{tag.interpreter[2]}.{tag.interpreter[3:]}")
                for tag in tags
            ):
                builds.setdefault(version, []).append(entry)
        # packaging takes a pre-release only when no final release matches, as pip.
        versions = [v for v in builds if label is None or v.local == label]
        matching = sorted(specifier.filter(versions), reverse=True)
        best = next((v for v in matching if self._fits(builds[v], fit)), None)
        if best is None:
            offered = ", ".join(str(v) for v in page.versions()[:8]) or "none"
            where = without_credentials(url.rstrip("/"))
            accepts = " and ".join(f"{n} {v}" for n, v in (fit or {}).items())
            detail = (
                f"has no page for {name}.\nCheck the index URL and the "
                f"variant: {where}/{name}/ should list its wheels."
                if not page.found
                else f"has no build of {name} that matches (it offers {offered}"
                + (f"; none accepts {accepts}" if matching else "")
                + ").\n"
                "Choose a variant that has it (`poetry torch-cuda switch <variant>`, "
                "or in lock-variants), lock a version this variant offers, or check "
                "that the build exists for this project's Pythons."
            )
            raise MissingBuildError(
                f"cannot lock {name}{specifier} from {where}: the index {detail}"
            )
        for entry in builds[best]:
            if not entry.sha256:
                raise LockError(
                    f"{mask_url(url)} lists no sha256 for {entry.filename}; "
                    "torch-cuda.lock needs the index to give every file's hash "
                    "(PEP 503 #sha256= fragments or PEP 691 hashes). Use an index "
                    "that lists them (index-url, or the url of the source named by "
                    "source)."
                )
        return str(best), builds[best]

    def _fits(
        self, files: list[IndexFile], fit: Mapping[NormalizedName, str] | None
    ) -> bool:
        # A file without a sha256 is not read: the caller refuses it.
        if not fit or not all(entry.sha256 for entry in files):
            return True
        return all(
            r.specifier.contains(fit[name], True)
            for name, r, _ in self._followed(files, set())
            if name in fit
        )

    def _followed(
        self, files: list[IndexFile], extras: set[str]
    ) -> list[tuple[NormalizedName, Requirement, Any]]:
        """The torch family's requirements (the rest is poetry.lock's) with ``extras``."""
        distinct = {(e.metadata_sha256 or e.sha256 or e.filename): e for e in files}
        with ThreadPoolExecutor(max_workers=min(8, len(distinct) or 1)) as pool:
            texts = list(pool.map(self._metadata, distinct.values()))
        found: dict[str, Requirement] = {}
        for text in texts:
            for line in email.message_from_string(text).get_all("Requires-Dist", []):
                with suppress(InvalidRequirement):
                    requirement = Requirement(line)
                    found.setdefault(str(requirement), requirement)
        followed = []
        for _, requirement in sorted(found.items()):
            name = canonicalize_name(requirement.name)
            marker = parse_marker(str(requirement.marker or ""))
            holds = marker.only("extra").validate({"extra": extras})
            if holds and (name in self.configured or is_cuda_bound(name)):
                followed.append((name, requirement, marker.without_extras()))
        return followed

    def _metadata(self, entry: IndexFile) -> str:
        """PEP 658 metadata, else the wheel's, checked; cached by the file's sha256
        as JSON (a file cut short, which its text alone would not show, is read again)."""
        path = self.client.cache_dir.parent / "metadata" / f"{entry.sha256}.json"
        if isinstance(cached := read_json(path, None), str):
            return cached
        pep658 = entry.metadata_sha256 is not None
        suffix = ".metadata" if pep658 else ""
        expected = entry.metadata_sha256 if pep658 else entry.sha256
        # On disk, not in memory (a CUDA wheel is up to a GB); a wheel the install
        # needs in Poetry's artifact cache (else, or where that fails, in TMPDIR).
        keep = None
        if not pep658 and self.keep and wheel_fits(entry.filename, self.keep):
            config = self.client.auth.config
            found = artifact(config, entry.url, str(expected), entry.filename)
            with suppress(OSError):
                found.parent.mkdir(parents=True, exist_ok=True)
                keep = found
        handle, part = make(keep and keep.parent, f".{entry.filename}.", ".part")
        try:
            with os.fdopen(handle, "w+b") as file:
                size = None if pep658 else entry.size
                received = self.client.download(entry.url + suffix, file, size)
                if expected and received != expected:
                    raise LockError(
                        f"{entry.filename}{suffix}: the index lists sha256 {expected}, "
                        f"received sha256 {received}: {new_bytes()}"
                    )
                file.seek(0)
                data = file.read() if pep658 else _wheel_metadata(file, entry.filename)
            if keep:
                part.replace(keep)
        finally:
            with suppress(OSError):
                part.unlink()
        text = data.decode("utf-8", "replace")
        said = email.message_from_string(text)
        named = canonicalize_name(str(said["Name"])), version_key(str(said["Version"]))
        if named != _wheel_of(entry.filename):
            raise LockError(
                f"{entry.filename}{suffix} describes {said['Name']} {said['Version']}, "
                "not this file: a broken mirror; tell whoever runs it."
            )
        write_json(path, text)  # a cache not written costs a request next time
        return text


def _relative(e: IndexFile, base: str) -> tuple[str, str, str, int | None]:
    # A file's URL relative to the index where it can be.
    url = e.url[len(base) :] if e.url.startswith(base) else without_credentials(e.url)
    return e.filename, url, e.sha256 or "", e.size


def _wheel_metadata(wheel: BinaryIO, filename: str) -> bytes:
    with suppress(zipfile.BadZipFile), zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.count("/") == 1 and name.endswith(".dist-info/METADATA"):
                return zf.read(name)
    raise LockError(
        f"{filename} is not a wheel with a METADATA file: the index serves a broken "
        "upload, which re-locking meets again. Tell whoever runs it, or lock another "
        "version, or another variant (`poetry torch-cuda switch <variant>`)."
    )


def _together(roots: list[Root]) -> list[list[Root]]:
    """The sets of roots one environment installs together (one version of each)."""
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


# -- the project's lock ----------------------------------------------------------

#: The variants ``auto`` may choose.
_AUTO = frozenset({*tables.CUDA_VARIANTS, *tables.ROCM_VARIANTS, "cpu"})


def _wanted(config: TorchCudaConfig) -> tuple[str, ...]:
    # ``auto`` stands for its choices.
    return tuple(sorted({*config.lock_variants, config.variant.name}))


def _locks(lock_variants: Iterable[str]) -> frozenset[str]:
    """The variants ``lock`` may write an entry for: ``auto`` stands for its choices
    (each only where the index has its builds)."""
    wanted = set(lock_variants)
    return frozenset(wanted - {"auto"} | (_AUTO if "auto" in wanted else set()))


def locked_variants(config: TorchCudaConfig, lock: TorchCudaLock | None) -> set[str]:
    """The variants ``poetry torch-cuda lock`` locks: the configured one, lock-variants
    and (recorded in ``lock``) what ``auto`` chose."""
    return {*_wanted(config), *(lock.inputs.lock_variants if lock else ())} - {"auto"}


def _project(
    poetry: Poetry,
) -> tuple[TorchCudaConfig, TorchCudaConfig, Selected, LockInputs]:
    """The recorded configuration, this run's (with its mirror), what poetry.lock
    selects and the inputs of a lock now; poetry.lock must exist and be fresh."""
    config = require_config(poetry.pyproject.data, overrides=())  # what is recorded
    locked.require_lock(poetry)
    locked.check_fresh(poetry)  # as lock --check: never from a stale poetry.lock
    selected = locked.selected_packages(poetry)
    current = LockInputs(
        locked.content_hash(poetry),
        locked.locked_versions(selected, config.packages),
        tuple(str(requirement) for requirement in config.packages),
        _wanted(config),
    )
    return config, require_config(poetry.pyproject.data), selected, current


def differences(
    recorded: LockInputs, current: LockInputs, *, whole: bool = False
) -> list[str]:
    """Why ``recorded`` inputs do not fit ``current`` (``whole``: lock-variants too)."""
    reasons = []
    if recorded.content_hash != current.content_hash:
        reasons.append("poetry.lock changed since it was written (content-hash)")
    moved = [
        ("poetry.lock locks", _versions(current.locked), _versions(recorded.locked)),
        ("packages is now", sorted(current.packages), sorted(recorded.packages)),
    ]
    if whole:
        now, then = current.lock_variants, recorded.lock_variants
        if "auto" in then and "auto" in now:  # what auto locked, recorded beside it
            then = tuple(v for v in then if v in now or v not in _AUTO)
        moved.append(("the variants to lock are now", list(now), list(then)))
    return reasons + [
        f"{what} {now}, {LOCK_NAME} was made for {then}"
        for what, now, then in moved
        if now != then
    ]


def _versions(found: Iterable[tuple[Any, tuple[str, ...]]]) -> str:
    return ", ".join(f"{n} {' / '.join(v)}" for n, v in found) or "nothing"


def _stale(
    config: TorchCudaConfig,
    fetch: TorchCudaConfig,
    lock: TorchCudaLock,
    name: str,
    selected: Selected,
) -> list[str]:
    """What is wrong with the entry for ``name`` itself (the inputs: :func:`differences`)."""
    entry = lock.variant(name)
    if entry is None:
        return [NOT_LOCKED.format(name)]
    reasons = []
    variant = parse_variant(name)
    url = without_credentials(config.index_url(variant)).rstrip("/")
    if entry.index_url.rstrip("/") != url:  # a trailing slash names the same index
        was = mask_url(entry.index_url)  # a hand edit's password too
        reasons.append(f"{name}'s index is now {url}, it was locked from {was}")
    roots = [(r.name, r.version) for r in _roots_for(selected, config, variant)]
    edges = [(d.name, d.version) for p in entry.packages for d in p.dependencies]
    missing = {
        f"{n} {v or ''}".strip()  # no version: a specifier's, any build
        for n, v in roots + edges
        if entry.package(n, v) is None
    }
    if missing:
        reasons.append(f"{LOCK_NAME}'s {name} entry lacks {', '.join(sorted(missing))}")
    with suppress(KeyError):  # a hole, named above
        needed = entry.closure(roots, None)
        reasons += [
            f"{name} holds {p.name} {p.version}, which nothing in it needs"
            for p in entry.packages
            if p not in needed
        ]
    # Files of this run's mirror (POETRY_TORCH_CUDA_INDEX_URL): written through it.
    mirror = urlsplit(without_credentials(fetch.index_url(variant))).netloc
    for package in entry.packages:
        held = f"{name}: {package.name} {package.version}"
        if not package.files:
            reasons.append(f"{held} has no file")
        reasons += [
            f"{held} lists {file[0]}, a file of another build"
            for file in package.files
            if _wheel_of(file[0]) != (package.name, version_key(package.version))
        ]
        for file in entry.files(package):
            if not config.allow_insecure_http and plain_http_elsewhere(file.url):
                reasons.append(
                    f"{held} is locked at {mask_url(file.url)}: plain http to a host "
                    "other than this machine (https, or allow-insecure-http = true)"
                )
            if urlsplit(file.url).netloc == mirror != urlsplit(url).netloc:
                reasons.append(
                    f"{name}: {file.filename} is locked at the per-run mirror "
                    f"{mask_url(file.url)}; re-lock without {ENV_INDEX_URL}"
                )
    return reasons


def _wheel_of(filename: str) -> tuple[str, Any] | None:
    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion):
        return None
    return name, version_key(str(version))


def lock_project(
    poetry: Poetry,
    io: IO,
    *,
    refresh: bool = False,
    reuse: bool = False,
    extra: Iterable[Variant] = (),
    accept_drift: bool = False,
    auth: IndexAuthenticator | None = None,
    write: bool = True,
    keep: Mapping[str, Any] | None = None,
) -> TorchCudaLock:
    """Lock every wanted variant (and ``extra``), and write torch-cuda.lock (``write``);
    ``reuse`` keeps the entries that still match; ``auth``, ``keep``: the install's."""
    path = lock_path(poetry)  # one lock from the read to the write, for every writer
    with environment_lock(path, io) if write else nullcontext(False) as waited:
        if waited:  # another run wrote meanwhile: lock the project as it is now
            poetry = locked.reread(poetry)
        config, fetch, selected, current = _project(poetry)
        # The fetching URL differs from the configured one at most by credentials
        # (POETRY_TORCH_CUDA_INDEX_URL may carry them); the lock records neither.
        template = without_credentials(fetch.index_url_template)
        if template != without_credentials(config.index_url_template):
            raise LockError(
                f"{LOCK_NAME} is never written through the per-run mirror "
                f"{ENV_INDEX_URL} ({mask_url(template)}): it records the configured "
                f"index, {mask_url(config.index_url_template)}. Unset {ENV_INDEX_URL} "
                "to lock, or make the mirror the index-url in pyproject.toml."
            )
        client = project_client(poetry, refresh=refresh, auth=auth)
        asked = {v.name for v in extra}
        names = _locks(current.lock_variants) | asked
        auto = "auto" in current.lock_variants  # its choices that have the builds
        optional = names - asked - set(current.lock_variants)
        rooted = {n: _roots_for(selected, config, parse_variant(n)) for n in names}
        client.projects(  # auto's candidates' pages at once, kept by the client
            sorted(
                (fetch.index_url(parse_variant(n)), package)
                for n in optional
                if rooted[n]  # else no entry: nothing to ask
                for package in config.package_names
            )
        )
        # The sha256s locked before, line by line: a damaged file's too (a conflict).
        hashes = {} if accept_drift else recorded_hashes(path)
        try:
            previous = None if accept_drift else read_lock(path)
        except LockFileError as error:
            if not hashes:  # nothing to compare the index with: its words say so
                raise LockError(str(error)) from None
            previous = None
        kept = {  # the entries that still match, when reused
            v.name: v
            for p in ([previous] if reuse and previous else [])
            if not differences(p.inputs, current)
            for v in p.variants
            if not _stale(config, fetch, p, v.name, selected)
        }
        allows = poetry.package.python_constraint.allows_any
        locker = VariantLocker(
            client,
            config.package_names,
            lambda v: allows(parse_constraint(f"~{v}")),
            keep,
        )
        variants = []
        down: dict[str, IndexUnavailableError] = {}  # no entry, no answer
        missing: list[MissingBuildError] = []  # answered without the build
        for name in sorted(names):
            if name in kept:
                variants.append(kept[name])
                continue
            variant, roots = parse_variant(name), rooted[name]
            if not roots and name in optional:  # auto: no entry (else 0 packages)
                continue
            recorded = {f: s for (v, f), s in hashes.items() if v == name}
            try:
                variants.append(
                    locker.lock(variant, fetch.index_url(variant), roots, recorded)
                )
            except (MissingBuildError, IndexUnavailableError) as error:
                if name not in optional:  # auto's candidates: only what the index has
                    if write or name in asked:
                        raise
                    continue  # an install locks what it installs; lock --check says
                if isinstance(error, MissingBuildError):
                    missing.append(error)  # the index answered: it has no build
                    continue
                if previous and (entry := previous.variant(name)):
                    if write and _stale(config, fetch, previous, name, selected):
                        raise  # a lock would hold it stale (an install: lock --check says)
                    variants.append(entry)  # no answer: keep its entry
                else:  # auto takes an index it cannot ask as having the build
                    down[name] = error
        if down and (write or not variants):  # an install: lock --check names them
            raise next(iter(down.values()))
        if not variants and missing:  # no candidate has it: the first one's words
            raise missing[0]
        # What auto locked is recorded beside it, so lock --check finds a lost entry.
        chosen = {v.name for v in variants} & (_AUTO if auto else set())
        wanted = tuple(sorted({*current.lock_variants, *chosen, *down}))
        lock = TorchCudaLock(replace(current, lock_variants=wanted), tuple(variants))
        for name in client.skipped():
            io.write_line(
                f"{PREFIX}: skipped {name}: PEP 825 wheel variants are not supported yet",
                verbosity=Verbosity.VERBOSE,
            )
        if write:
            _write(path, lock, io, refresh=refresh)
        return lock


def _write(path: Path, lock: TorchCudaLock, io: IO, *, refresh: bool = False) -> None:
    """Write ``lock`` (the caller holds its lock) and say so (``refresh``: even unchanged)."""
    try:
        changed = write_lock(path, lock)
    except OSError as error:
        raise unwritable(error) from None
    if changed:
        summary = "; ".join(
            f"{v.name}: {len(v.packages)} package{'s' * (len(v.packages) != 1)}, "
            f"{files} file{'s' * (files != 1)}"
            for v in lock.variants
            for files in [sum(len(p.files) for p in v.packages)]
        )
        summary = summary or "no variant: poetry.lock locks no configured package"
        io.write_line(f"{PREFIX}: wrote {LOCK_NAME} ({summary})")
    else:
        # Asked for explicitly (refresh): say so; after `poetry lock`: only at -v.
        io.write_line(
            f"{PREFIX}: {LOCK_NAME} is up to date",
            verbosity=Verbosity.NORMAL if refresh else Verbosity.VERBOSE,
        )


def unwritable(error: OSError) -> LockError:
    """torch-cuda.lock could not be written (read-only, say): the one wording."""
    return LockError(
        f"could not write {LOCK_NAME} ({error.strerror or error}); it was not "
        "changed. Make it writable, then run the command again."
    )


def entry_for(
    poetry: Poetry, variant: Variant | None = None, *, whole: bool = False
) -> tuple[TorchCudaLock | None, list[str], list[str] | None]:
    """Offline: torch-cuda.lock (``None``: no file), why an install of ``variant`` (none:
    of any) would not install what it says, and (``whole``) why ``lock --check`` fails."""
    config, fetch, selected, current = _project(poetry)
    lock = read_lock(lock_path(poetry))
    if lock is None:
        absent = [f"{LOCK_NAME} does not exist"]
        return None, absent, absent if whole else None

    def why(names: Iterable[str], file: bool = False) -> list[str]:
        reasons = differences(lock.inputs, current, whole=file)
        for name in sorted(names):
            reasons += _stale(config, fetch, lock, name, selected)
        return reasons

    every = locked_variants(config, lock) | {entry.name for entry in lock.variants}
    # A variant `lock` skips (a per-run one) is no fault of the file: installs lock it.
    mine = why({variant.name} & every if variant else [])
    if not whole:
        return lock, mine, None
    dropped = [  # entries `lock` drops
        f"it holds {entry.name}, a variant neither variant nor lock-variants names "
        "(add it to lock-variants to keep it)"
        for entry in lock.variants
        if entry.name not in _locks(current.lock_variants)
    ]
    return lock, mine, why(every, file=True) + dropped


def lock_problem(
    poetry: Poetry, variant: Variant | None = None, *, whole: bool = False
) -> tuple[TorchCudaLock | None, str | None, str | None]:
    """torch-cuda.lock, read once, and ``lock --check``'s words (``None``: nothing
    wrong) for what an install of ``variant`` takes, then (``whole``) for the whole file."""
    try:
        lock, *reasons = entry_for(poetry, variant, whole=whole)
    except TorchCudaError as error:  # unreadable, or poetry.lock stale: its words
        return None, str(error), str(error) if whole else None
    mine, every = (STALE.format("; ".join(r)) if r else None for r in reasons)
    return lock, mine, every


def left(poetry: Poetry) -> str:
    """Where a stopped write left the project: ``lock --check``'s words on it now."""
    now = locked.reread(poetry)
    return lock_problem(now, whole=True)[2] or f"{LOCK_NAME} matches poetry.lock."


def locked_entry(
    poetry: Poetry,
    io: IO,
    variant: Variant,
    auth: IndexAuthenticator | None,
    markers: Mapping[str, Any],
    would: bool = False,
) -> tuple[VariantLock, Callable[[], None]]:
    """``variant``'s entry for an install (``would``: a dry run's), a missing or stale one
    locked now as Poetry locks a missing poetry.lock, and what writes it once it holds."""
    before, reasons, _ = entry_for(poetry, variant)  # another run may change it
    if not reasons and before and (found := before.variant(variant.name)):
        return found, lambda: None
    reasons = reasons or [NOT_LOCKED.format(variant)]
    path = lock_path(poetry)
    try:  # written once the install holds: refused before anything changes
        refuse_read_only(path)
    except OSError as error:
        raise unwritable(error) from None
    doing = "would lock" if would else "locking"
    io.write_line(f"{PREFIX}: {doing} <c2>{variant}</> first ({reasons[0]})")
    # An install asks the index afresh: it is about to download from it anyway.
    made = lock_project(
        poetry,
        io,
        refresh=True,
        reuse=True,
        extra=[variant],
        auth=auth,
        write=False,
        keep=markers,
    )
    entry = made.variant(variant.name)
    assert entry is not None  # lock_project raised instead

    def write() -> None:
        # Into a file another run rewrote meanwhile for the same poetry.lock, this
        # entry alone; one rewritten for another poetry.lock stays as it is.
        with environment_lock(path, io):  # no other write between the read and this
            now = read_lock(path)
            if now is None or now == before:
                _write(path, made, io)
            elif not differences(now.inputs, made.inputs):
                others = tuple(v for v in now.variants if v.name != entry.name)
                _write(path, TorchCudaLock(now.inputs, (*others, entry)), io)

    return entry, write


def _roots_for(
    selected: Selected, config: TorchCudaConfig, variant: Variant
) -> list[Root]:
    built = built_for(selected, variant)
    roots = []
    for requirement in config.packages:
        name = canonicalize_name(requirement.name)
        wanted = parse_marker(str(requirement.marker or ""))
        extras = frozenset(requirement.extras)
        found = [(p, m) for p, m in built if p.name == name]
        if not found and requirement.specifier:
            roots.append(Root(name, None, requirement.specifier, extras, str(wanted)))
        roots += [
            Root(name, f"{public}+{variant.name}", SpecifierSet(), extras, markers)
            for package, marker in found
            if (public := public_version(package.version.text)) is not None
            for markers in [str(wanted.intersect(marker))]
        ]
    return roots


def built_for(selected: Selected, variant: Variant) -> Selected:
    """``selected`` but what poetry.lock locks only where ``variant`` has no builds
    (a torch pinned for macOS, however named): Poetry installs PyPI's build there."""
    built = [m for name, m in SYSTEMS.items() if not variant.not_built_for(name)]
    return [(p, m) for p, m in selected if any(map(m.validate, built))]


def settle(
    poetry: Poetry,
    io: IO,
    *,
    switched: bool = False,
    keep: Mapping[str, Any] | None = None,
) -> None:
    """Re-lock after ``poetry lock`` or a ``switch``; a failure is a warning, except
    a :class:`DriftError` after ``poetry lock``."""
    try:
        lock_project(poetry, io, reuse=switched, keep=keep)
    except TorchCudaError as error:
        if not switched and (
            isinstance(error, DriftError)
            or not isinstance(error, (LockError, IndexUnavailableError))
        ):
            raise
        # A LockError names its own way on; re-locking as it is fails the same way.
        fix = "" if isinstance(error, LockError) else f" {FIX}"
        io.write_error_line(
            f"<warning>{PREFIX}: could not update {LOCK_NAME}: {esc(error)}{fix}</>"
        )
