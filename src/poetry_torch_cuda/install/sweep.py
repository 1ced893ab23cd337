"""Remove distributions from an environment, never a file another one still lists.

The real CUDA 12 and 13 wheels ship the same paths (``nvidia-cudnn-cu12`` and
``-cu13`` both install ``nvidia/cudnn/lib/libcudnn.so.9``). After a switch
pip has overwritten them with the new family's files, and the old family's
``RECORD`` still lists them: removing it would delete files the new build
needs. :func:`remove_distributions` hard-links every such shared file aside,
removes the distributions and links back whatever the removal took.

Removal is in-process where this Poetry ships pip's uninstaller adapted to
run in-process (``poetry.installation.uninstaller``), else one pip run.
:func:`record_problems` is the check that every installed file is there.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from poetry_torch_cuda.environment.envlock import STASH


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Collection
    from collections.abc import Iterator
    from collections.abc import Sequence

    from packaging.utils import NormalizedName
    from poetry.utils.env import Env

    #: What does the removal pip cannot be spared (``PipRunner.uninstall``).
    Uninstaller = Callable[[Sequence[str]], None]


def remove_distributions(
    env: Env,
    names: Sequence[str],
    pip_uninstall: Uninstaller,
    *,
    pip_only: bool = False,
) -> list[str]:
    """Remove ``names`` from ``env``; return those left to ``pip_uninstall``.

    Files another installed distribution's ``RECORD`` lists stay. The names
    Poetry's uninstaller skips (or all, in a Poetry without one) go to one
    call of ``pip_uninstall``, which gets all with ``pip_only`` (no stash
    to finish a half-done removal).

    Raises:
        OSError: a file could not be removed (the distribution's
            ``.dist-info`` is still there, so running it again finishes).
        TorchCudaError: pip failed on what it was given.
    """
    paths = site_paths(env)
    remover = None if pip_only else _poetry_uninstaller()
    left: list[str] = []
    with _keeping_shared(paths, names, env.path):
        for name in names:
            if remover is None or remover(env, name) is None:
                left.append(name)
        left = [name for name in left if files_by_name(paths, [name])]
        if left:
            pip_uninstall(left)
    return left


def site_paths(env: Env) -> list[str]:
    """Where ``env``'s distributions are installed, as pip looks for them."""
    return [str(path) for path in env.site_packages.candidates]


def files_by_name(
    paths: Sequence[str], names: Collection[str] | None = None
) -> dict[NormalizedName, list[tuple[Path, metadata.PackagePath]]]:
    """The ``RECORD`` entries of the installed distributions (of ``names``), by name.

    The first distribution of a name on ``paths`` is the installed one, as for pip.
    """
    wanted = None if names is None else {canonicalize_name(n) for n in names}
    found: dict[NormalizedName, list[tuple[Path, metadata.PackagePath]]] = {}
    for distribution in metadata.distributions(path=list(paths)):
        name = canonicalize_name(distribution.metadata["Name"] or "")
        if name in found or (wanted is not None and name not in wanted):
            continue
        found[name] = [
            (Path(os.path.normpath(str(distribution.locate_file(entry)))), entry)
            for entry in _record(distribution)
        ]
    return found


def _record(distribution: metadata.Distribution) -> list[metadata.PackagePath]:
    """Every ``RECORD`` entry, missing files included: the ``importlib_metadata``
    backport (which Poetry's dependencies install as the finder) drops those."""
    entries = []
    for row in csv.reader((distribution.read_text("RECORD") or "").splitlines()):
        if not row:
            continue
        entry = metadata.PackagePath(row[0])
        digest = row[1] if len(row) > 1 else ""
        entry.hash = metadata.FileHash(digest) if digest else None
        entry.size = int(row[2]) if len(row) > 2 and row[2] else None
        entry.dist = distribution
        entries.append(entry)
    return entries


def record_problems(
    paths: Sequence[str],
    names: Collection[str] | None = None,
    *,
    hashed: Collection[str] = (),
) -> list[str]:
    """What is wrong with each installed distribution's files, one line per distribution.

    A file its ``RECORD`` lists is missing; for the ``hashed`` distributions
    also one whose sha256 differs from the recorded one.
    """
    problems = []
    checked = {canonicalize_name(name) for name in hashed}
    for name, all_entries in sorted(files_by_name(paths, names).items()):
        # Bytecode is the interpreter's to rewrite or a slim image's to delete.
        entries = [(p, e) for p, e in all_entries if e.hash and p.suffix != ".pyc"]
        missing = [e for p, e in entries if not p.is_file()]
        changed = [
            e
            for p, e in entries
            if name in checked
            and e.hash is not None
            and e.hash.mode == "sha256"
            and p.is_file()
            and _sha256(p) != e.hash.value
        ]
        for bad, what in ((missing, "missing"), (changed, "changed since install")):
            if bad:
                problems.append(
                    f"{name}: {len(bad)} of its files {what} ({bad[0]}"
                    f"{', …' if len(bad) > 1 else ''})"
                )
    return problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


@contextmanager
def _keeping_shared(
    paths: Sequence[str], names: Collection[str], parent: Path
) -> Iterator[None]:
    """Keep the files of ``names`` that other installed distributions list too."""
    owners = files_by_name(paths)
    leaving = {canonicalize_name(name) for name in names}
    staying = {p for n, files in owners.items() if n not in leaving for p, _ in files}
    shared = sorted(
        {
            p
            for n in leaving
            for p, _ in owners.get(n, ())
            if p in staying and p.is_file()
        }
    )
    if not shared:
        yield
        return
    # Named as undo.py's stashes, so a killed run's is swept and reported too.
    prefix = f"{STASH}{os.getpid()}.shared-"
    aside = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    kept: list[tuple[Path, Path]] = []
    try:
        for path in shared:
            kept.append((path, aside / str(len(kept))))
            os.link(path, kept[-1][1])
        yield
    finally:
        for path, link in kept:
            if link.exists() and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                os.link(link, path)
        shutil.rmtree(aside, ignore_errors=True)


def _poetry_uninstaller() -> Callable[[Env, str], object] | None:
    try:
        from poetry.installation.uninstaller import uninstall_distribution
    except ImportError:  # Poetry before the in-process uninstaller
        return None
    return uninstall_distribution


def family_problems(
    env: Env, roots: Collection[str], *, hashes: bool = False
) -> list[str]:
    """:func:`record_problems` of what ``roots`` need as installed in ``env``
    (sha256 of every file too with ``hashes``)."""
    from poetry_torch_cuda.environment.installed import installed_environment

    family = set(installed_environment(env).graph(roots))
    if not family:
        return []
    return record_problems(site_paths(env), family, hashed=family if hashes else ())
