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
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from poetry_torch_cuda.environment.envlock import STASH


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Collection
    from collections.abc import Iterator
    from collections.abc import Sequence
    from pathlib import Path

    from packaging.utils import NormalizedName
    from poetry.utils.env import Env

    #: What does the removal pip cannot be spared (``PipRunner.uninstall``).
    Uninstaller = Callable[[Sequence[str]], None]

#: A ``RECORD`` line: (path, as ``RECORD`` lists it, ``algorithm=digest`` or ``""``).
Entry = tuple[str, str, str]


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
) -> dict[NormalizedName, list[Entry]]:
    """The ``RECORD`` entries of the installed distributions (of ``names``), by name:
    (path, as ``RECORD`` lists it, ``algorithm=digest`` or ``""``).

    The first distribution of a name on ``paths`` is the installed one, as for pip.
    Every entry is read, missing files included (the ``importlib_metadata``
    backport, which Poetry's dependencies install as the finder, drops those),
    as strings: the real CUDA family lists ~20,000 files, and pathlib objects
    for each were most of a switch back's time.
    """
    wanted = None if names is None else {canonicalize_name(n) for n in names}
    found: dict[NormalizedName, list[Entry]] = {}
    for distribution in metadata.distributions(path=list(paths)):
        name = canonicalize_name(distribution.metadata["Name"] or "")
        if name in found or (wanted is not None and name not in wanted):
            continue
        base = str(distribution.locate_file(""))
        rows = csv.reader((distribution.read_text("RECORD") or "").splitlines())
        found[name] = [
            (os.path.normpath(os.path.join(base, row[0])), row[0], "".join(row[1:2]))
            for row in rows
            if row
        ]
    return found


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
        entries = [e for e in all_entries if e[2] and not e[0].endswith(".pyc")]
        missing = [listed for path, listed, _ in entries if not os.path.isfile(path)]
        changed = [
            listed
            for path, listed, digest in entries
            if name in checked
            and digest.startswith("sha256=")
            and os.path.isfile(path)
            and _sha256(path) != digest[len("sha256=") :]
        ]
        for bad, what in ((missing, "missing"), (changed, "changed since install")):
            if bad:
                problems.append(
                    f"{name}: {len(bad)} of its files {what} ({bad[0]}"
                    f"{', …' if len(bad) > 1 else ''})"
                )
    return problems


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
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
    staying = {e[0] for n, files in owners.items() if n not in leaving for e in files}
    shared = sorted(
        {
            e[0]
            for n in leaving
            for e in owners.get(n, ())
            if e[0] in staying and os.path.isfile(e[0])
        }
    )
    if not shared:
        yield
        return
    # Named as undo.py's stashes, so a killed run's is swept and reported too.
    prefix = f"{STASH}{os.getpid()}.shared-"
    aside = tempfile.mkdtemp(prefix=prefix, dir=parent)
    kept: list[tuple[str, str]] = []
    try:
        for path in shared:
            kept.append((path, os.path.join(aside, str(len(kept)))))
            os.link(path, kept[-1][1])
        yield
    finally:
        for path, link in kept:
            if os.path.exists(link) and not os.path.exists(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
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
