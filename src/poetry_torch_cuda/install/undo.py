"""The one way back: a stash of the torch family's files, put back on any failure.

Before pip runs, the family's files are hard-linked into a stash in ``state_dir``:
pip and a removal unlink a file before replacing it, so the stash costs only what
changed. Any failure (kill -9: the next run's :func:`recover`) is undone from it;
after a change it stays as the previous build (one at most), so switch's rollback and
a switch back to it (its files hashed first) are links. :func:`family_problems` checks
every file is there.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import shutil
import stat
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from poetry_torch_cuda import tempfiles
from poetry_torch_cuda.environment.envlock import is_free
from poetry_torch_cuda.environment.envlock import state_dir
from poetry_torch_cuda.environment.installed import installed_environment
from poetry_torch_cuda.environment.installed import located
from poetry_torch_cuda.environment.installed import site_paths
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install import signals
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.protection import is_cuda_bound
from poetry_torch_cuda.tempfiles import remove


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Collection
    from collections.abc import Iterable
    from collections.abc import Mapping
    from collections.abc import Sequence

    from cleo.io.io import IO
    from packaging.utils import NormalizedName
    from poetry.utils.env import Env

    from poetry_torch_cuda.environment.installed import InstalledEnvironment
    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.install.request import InstallRequest
    from poetry_torch_cuda.lockfile.model import TorchCudaLock

    #: The removal pip cannot be spared (``PipRunner.uninstall``).
    Uninstaller = Callable[[Sequence[str]], None]

#: A ``RECORD`` line: (path, as ``RECORD`` lists it, ``algorithm=digest``, size; ``""``: none).
Entry = tuple[str, str, str, str]
PREVIOUS = ".torch-cuda-previous"
#: The prefix of a run's stash folder: ``<STASH><pid>.<random>``.
STASH = ".torch-cuda-stash-"
#: The fix of a damaged build, and the causes :func:`family_problems` gives.
SYNC_FORCE = "`poetry torch-cuda sync --force` reinstalls the build"
SYNC = "`poetry torch-cuda sync` installs the locked one"
#: A put-back that failed: what and why.
NOT_BACK = f"Putting back {{}} failed too ({{}}): torch may not import; {SYNC_FORCE}."
#: A stop once a build is in: what holds then.
UNVERIFIED = "stays installed, unverified; `poetry torch-cuda verify` checks it."
DAMAGED = "a removal or an interrupted install left it incomplete"
OVER = "something wrote over it after the install (an edit, another installer, a disk)"
COPIED = "a hand copy, or an install that kept the other (pip --ignore-installed, say)"
RELOCKED = "it was locked again since, for another build of that version (or edited)"
_MANIFEST = "stash.json"
#: The build the environment holds: the sha256 of the locked file each came from, by name.
INSTALLED = ".torch-cuda-installed.json"
#: Which project's configuration last put a torch build into the environment (two
#: projects sharing one undo each other): ``{"project": path, "variant": name}``.
OWNER = ".poetry-torch-cuda-owner.json"


@dataclass
class Stash:
    """Hard links to the family's files, and the environment's records of that build."""

    root: Path
    before: dict[str, str]  # every distribution's version
    family: list[str]  # what the change may touch (Poetry's changes are kept)
    files: list[tuple[str, str]] = field(default_factory=list)  # (path, link in root)
    locked: dict[str, str] = field(default_factory=dict)  # name: sha256 installed from
    owner: object = None  # the owner record
    # Not kept with a previous build: the family's top-level folders, their files.
    tops: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)

    @classmethod
    def take(cls, env: Env, names: Iterable[str], held: InstalledEnvironment) -> Stash:
        """A stash of what ``env`` holds (``held``) of ``names``, all the change may
        touch; OSError where a file could not be linked nor copied (none is left)."""
        home = state_dir(env.path)
        root = Path(tempfile.mkdtemp(prefix=f"{STASH}{os.getpid()}.", dir=home))
        before = {str(n): d.version for n, d in held.all().items()}
        owner = tempfiles.read_json(home / OWNER, None)
        stash = cls(root, before, sorted(names), locked=_record(home), owner=owner)
        sites = tuple(os.path.join(site, "") for site in site_paths(env))
        try:
            for name, entries in files_by_name(env, stash.family).items():
                for path, *_ in entries:
                    if not os.path.isfile(path) or os.path.islink(path):
                        continue
                    stash.files.append((path, f"{name}.{len(stash.files)}"))
                    link(path, os.path.join(root, stash.files[-1][1]))
                    site = next((s for s in sites if path.startswith(s)), None)
                    top = site and site + path[len(site) :].split(os.sep, 1)[0]
                    if top and top != path and not top.endswith(".dist-info"):
                        stash.tops.add(top)
            stash.present = _files_under(stash.tops)
            stash._save("tops", "present")  # last: a stash without it changed nothing
        except BaseException:  # a failed link, or Ctrl-C between two
            remove(stash.root)
            raise
        return stash

    def put_back(self, env: Env, uninstall: Uninstaller) -> list[str]:
        """Make ``env`` hold the stashed build again (what Poetry installed since stays);
        returns what was undone."""
        with signals.held():
            sweep_leftovers(env)
            installed = installed_environment(env)
            now = {n: d.version for n, d in installed.all().items()}
            folders = installed.names()
            # pip writes RECORD last: a distribution without one is half written (or,
            # without METADATA yet, none to the view), and no uninstaller can remove it;
            # its files are strays (below).
            ours = folders.keys() & self.family
            new = {n for n in ours if self.before.get(n) != now.get(n, "")}
            half = {n for n in new if _drop_unrecorded(folders[n])}
            changed = sorted((new & now.keys()) - half)
            got = {n: d.source for n in changed if (d := installed.get(n)) and d.source}
            by = {n: source.read_text("INSTALLER") or "" for n, source in got.items()}
            poetrys = [n for n in got if by[n].startswith("Poetry")]
            if changed := [n for n in changed if n not in poetrys]:
                # pip writes a wheel's scripts before its RECORD, so a killed pip's
                # are named only in entry_points.txt (as pip's uninstall reads them)
                points = [p for n in changed if n in got for p in got[n].entry_points]
                remove_distributions(env, changed, uninstall)
                for point in points:
                    if point.group in ("console_scripts", "gui_scripts"):
                        remove(env.script_dirs[0] / point.name)
            theirs = {e[0] for d in files_by_name(env, poetrys).values() for e in d}
            for stray in _files_under(self.tops) - self.present - theirs:
                remove(Path(stray))
            relinked = sum(
                _relink(os.path.join(self.root, name), path)
                for path, name in self.files
                if name.rpartition(".")[0] not in poetrys
            )
            records = ((INSTALLED, self.locked), (OWNER, self.owner))
            for name, record in records if self.family else ():  # an aside: no build
                _write_record(state_dir(env.path) / name, record)
        after = {n: d.version for n, d in installed_environment(env).all().items()}
        changes = [
            f"added {name} {after[name]}"
            if name not in now
            else f"removed {name} {now[name]}"
            if name not in after
            else f"changed {name} {now[name]} -> {after[name]}"
            for name in sorted({*now, *after})
            if now.get(name) != after.get(name)
        ]
        files = [f"put back {relinked} file" + "s" * (relinked > 1)] if relinked else []
        kept = [f"kept {n} {now[n]} (installed by Poetry since)" for n in poetrys]
        return (changes or files) + kept

    def changed(self) -> list[str]:
        """The files a put-back would link in (not the env's own: :func:`_linked`)
        whose bytes are not the sha256 their stashed ``RECORD`` lists."""
        kept = {path: os.path.join(self.root, name) for path, name in self.files}
        changed = []
        for record in (r for r in kept if r.endswith(f".dist-info{os.sep}RECORD")):
            text = Path(kept[record]).read_text("utf-8")
            base = os.path.dirname(os.path.dirname(record))
            for path, listed, digest, _ in _entries(text, base):
                if digest[:7] != "sha256=" or path not in kept or path.endswith(".pyc"):
                    continue  # no hash to check, or not in the put-back
                if not _linked(kept[path], path) and _sha256(kept[path]) != digest[7:]:
                    changed.append(listed)
        return changed

    def held(self, names: Iterable[str]) -> str:
        """Its versions of ``names`` in words, torch first ("" for none)."""
        found = sorted(set(names) & self.before.keys(), key=lambda n: (n != "torch", n))
        return ", ".join(f"{name} {self.before[name]}" for name in found)

    def keep(self, env_path: Path) -> None:
        """Make this stash the environment's previous build (replacing the last one)."""
        self._save()
        drop_previous(env_path)
        self.root = self.root.rename(state_dir(env_path) / PREVIOUS)

    def _save(self, *more: str) -> None:
        keys = ("before", "family", "files", "locked", "owner", *more)
        manifest = json.dumps({k: getattr(self, k) for k in keys}, default=sorted)
        (self.root / _MANIFEST).write_text(manifest, encoding="utf-8")


def finish(stash: Stash, env: Env, request: InstallRequest) -> str:
    """After a change that held, its stash becomes the previous build (one of no
    files too: a rollback to it removes the build); a forced reinstall's is dropped (it
    may hold the damage repaired) and the one kept before stays. Signals wait: a stash
    left under its run's name is put back next run. Returns a warning ("" none)."""
    with signals.held():
        record = state_dir(env.path) / INSTALLED
        files = _record(record.parent)
        files.update((f.name, f.sha256) for f in request.files)  # and what stayed
        held = sorted(files.keys() & installed_environment(env).names().keys())
        warning = _write_record(record, {n: files[n] for n in held})
        try:
            if not request.plan.force:
                stash.keep(env.path)
                return warning
        except OSError:  # a full disk, say: the install stands all the same
            drop_previous(env.path)
        remove(stash.root)
    return warning


def _write_record(path: Path, record: object) -> str:
    """Write the state record ``path`` (none: remove it); one that cannot be written
    is removed, not left to describe another build: then a warning ("" none)."""
    said = ""
    try:
        if record:
            tempfiles.write_text(path, json.dumps(record))
            return ""
    except OSError as error:
        said = f"the install record {path} could not be written ({error.strerror}): "
        said += "status and verify cannot tell which locked file each package came "
        said += "from until `poetry torch-cuda sync --force` writes it again"
    remove(path)
    return said


def reusable_previous(env: Env, request: InstallRequest, io: IO) -> Stash | None:
    """The previous build, if it is exactly what ``request`` installs: the plan's
    versions (labels included), from the locked files the request names, each file
    what its ``RECORD`` lists (one that is not: the build is dropped, with a warning)."""
    plan, previous = request.plan, previous_build(env.path)
    if plan.force or not request.config.keep_previous_build or previous is None:
        return None
    fits = all(
        t.is_satisfied_by(previous.before.get(t.name), plan.variant)
        for t in plan.install
    )
    locked = _named(previous.locked)
    if not fits or any(locked.get(f.name) != f.sha256 for f in request.files):
        return None
    if changed := previous.changed():
        io.write_error_line(
            f"<warning>{PREFIX}: the previous build kept in the environment is not put "
            f"back: {esc(_files_said(changed, 'changed since it was kept'))}; "
            "installing the locked files instead</>"
        )
        drop_previous(env.path)
        return None
    return previous


def previous_build(env_path: Path) -> Stash | None:
    """The environment's previous build, if one is kept."""
    return _read(state_dir(env_path) / PREVIOUS)


def _read(root: Path) -> Stash | None:
    try:
        stash = Stash(root, **tempfiles.read_json(root / _MANIFEST, None))
    except TypeError:  # none, or not a manifest
        return None
    stash.tops, stash.present = set(stash.tops), set(stash.present)
    whole = all(os.path.isfile(os.path.join(root, name)) for _, name in stash.files)
    return stash if whole else None  # a file gone: its run was removing it, done


def dead_stashes(env_path: Path) -> list[str]:
    """Killed runs' stashes, for ``status``, as :func:`recover` treats them: with the
    env lock free, every one (its pid may be in use again: in a container, status's)."""
    home, free, found = state_dir(env_path), is_free(env_path), []
    for path in home.glob(f"{STASH}*") if free else tempfiles.dead(home, STASH):
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        fate = "undoes that run" if _read(path) else "removes it, undoing nothing"
        found.append(
            f"a run that was killed left its stash in {path} ({mb(size)}); "
            f"the next install, sync or switch {fate}"
        )
    return found


def mb(size: int) -> str:
    """A size in words: the one way the plugin says one."""
    return f"{size / 1_000_000:.1f} MB"


def recover(env: Env, uninstall: Uninstaller, *, sweep: bool = False) -> list[str]:
    """Under the env lock: put back killed runs' stashes (a removal's aside, the later,
    first) and remove them; returns what was undone. Pip's ``~`` leftovers go only
    then, or asked to (``sweep``: ``sync``, ``switch``): else one may be another pip's
    at work. Each stash is a killed run's, whatever has its pid now (in a container:
    this run, at every start)."""
    killed = sorted(state_dir(env.path).glob(f"{STASH}*"))
    stashes = sorted(filter(None, map(_read, killed)), key=lambda s: bool(s.family))
    undone: list[str] = []
    for stash in stashes:
        try:
            undone += stash.put_back(env, uninstall)
        except (TorchCudaError, OSError) as error:  # every next run would fail
            raise TorchCudaError(
                f"Putting back a killed run's stash ({stash.root}) failed ({error}): "
                "torch may not import. Run the command again once the cause is gone "
                f"(a full disk: free space), or delete that folder: then {SYNC_FORCE}."
            ) from None
    for path in killed:
        remove(path)
    if sweep or (killed and not stashes):  # else each put_back swept them
        undone += [f"removed {path.name}" for path in sweep_leftovers(env)]
    return undone


def drop_previous(env_path: Path) -> None:
    """Forget the environment's previous build."""
    shutil.rmtree(state_dir(env_path) / PREVIOUS, ignore_errors=True)


def _named(found: object) -> dict[str, str]:  # a list: an older plugin's, no names
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _record(home: Path) -> dict[str, str]:
    """The install record in the state folder ``home``: locked file sha256 by name."""
    return _named(tempfiles.read_json(home / INSTALLED, None))


def link(source: str | Path, target: str | Path) -> None:
    """Hard-link ``source`` as ``target``, else copy it (another disk): the one way
    the plugin gives a file a second name (stashes, pip's folder of links)."""
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links refused (not the file's owner)
        shutil.copy2(source, target)


def _linked(kept: str, target: str) -> bool:
    """Whether ``target`` is the stashed file ``kept`` (a link, or a copy on another
    disk, has its size and mtime)."""
    with suppress(FileNotFoundError):
        now, was = os.lstat(target), os.stat(kept)
        return (now.st_size, now.st_mtime_ns) == (was.st_size, was.st_mtime_ns)
    return False


def _relink(kept: str, target: str) -> bool:
    """Make ``target`` the stashed file ``kept`` again; whether it had to change."""
    if _linked(kept, target):
        return False
    with suppress(FileNotFoundError):  # no file there: linked below
        os.unlink(target)
    os.makedirs(os.path.dirname(target), exist_ok=True)  # a removal may have taken it
    link(kept, target)
    return True


def _files_under(tops: Collection[str]) -> set[str]:
    return {os.path.join(d, n) for top in tops for d, _, ns in os.walk(top) for n in ns}


def _drop_unrecorded(folders: list[str]) -> bool:
    """Remove the ``.dist-info`` of ``folders`` without a ``RECORD``; whether one was."""
    half = [f for f in folders if f.endswith(".dist-info")]
    half = [f for f in half if not os.path.exists(os.path.join(f, "RECORD"))]
    for folder in half:
        shutil.rmtree(folder, ignore_errors=True)
    return bool(half)


def sweep_leftovers(env: Env) -> list[Path]:
    """Remove pip's ``~name`` entries in site-packages, which a killed pip leaves (and
    pip warns about on every run); returns them."""
    found = _leftovers(env)
    for path in found:
        remove(path)
    return found


def pip_leftovers(env: Env) -> list[str]:
    """For ``status``: what :func:`sweep_leftovers` removes, and its size (GBs: torch)."""
    if not (found := _leftovers(env)):
        return []
    files = [f for p in found for f in (p, *p.rglob("*")) if f.is_file()]
    names, them = ", ".join(p.name for p in found), "them" if len(found) > 1 else "it"
    where = f"{found[0].parent} ({mb(sum(f.stat().st_size for f in files))})"
    return [
        f"a killed pip left {names} in {where}; `poetry torch-cuda sync` removes {them}"
    ]


def _leftovers(env: Env) -> list[Path]:
    return [path for site in site_paths(env) for path in Path(site).glob("~*")]


def undo(
    error: BaseException, stash: Stash, plan: Plan, env: Env, uninstall: Uninstaller
) -> TorchCudaError:
    """Put ``env`` back from ``stash``; the error to raise says what it holds now."""
    state = plan.unchanged
    try:  # the run ends after it: a stop meanwhile waits, and is not raised again
        with signals.handling(lambda _: None, finish=True):
            if changes := stash.put_back(env, uninstall):
                held = stash.held(t.name for t in plan.install) or "no torch build"
                state = f"The environment was put back as it was ({held}; undone: "
                state += f"{', '.join(changes)})."
            remove(stash.root)
    except (TorchCudaError, OSError) as failure:
        state = NOT_BACK.format("the environment", failure)
    signum = signals.signum_of(error) if isinstance(error, KeyboardInterrupt) else 0
    asked = ", ".join(map(str, plan.install))
    cause = f"{signals.signal_name(signum)} interrupted the install of {asked}"
    wrapped = TorchCudaError(f"{cause if signum else error}\n{state}")
    wrapped.exit_code = 128 + signum if signum else getattr(error, "exit_code", 0) or 1
    return wrapped


def remove_distributions(
    env: Env, names: Sequence[str], uninstall: Uninstaller, *, pip_only: bool = False
) -> None:
    """Remove ``names`` from ``env``, in-process where this Poetry ships its uninstaller;
    what that skips goes to one ``uninstall`` call (all with ``pip_only``: no stash to
    finish a half-done removal). Files another distribution's ``RECORD`` lists stay
    (the real CUDA 12 and 13 wheels ship the same paths). Raises OSError (a file not
    removed: running it again finishes) or TorchCudaError."""
    remover = None
    if not pip_only:
        with suppress(ImportError):  # Poetry before the in-process uninstaller
            from poetry.installation.uninstaller import uninstall_distribution

            remover = uninstall_distribution
    # The files another distribution lists too are linked aside, in a stash (a killed
    # run's is put back), and back.
    owners = files_by_name(env)
    leaving = {canonicalize_name(name) for name in names}
    staying = {e[0] for n, files in owners.items() if n not in leaving for e in files}
    leaving_files = {e[0] for n in leaving for e in owners.get(n, ())}
    shared = sorted(p for p in leaving_files & staying if os.path.isfile(p))
    prefix = f"{STASH}{os.getpid()}.shared-"
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=state_dir(env.path)))
    aside = Stash(root, {}, [], [(path, str(n)) for n, path in enumerate(shared)])
    try:
        for path, name in aside.files:
            link(path, root / name)
        aside._save()  # last, as in Stash.take: without it nothing was removed
        left = [n for n in names if remover is None or remover(env, n) is None]
        if left := [name for name in left if files_by_name(env, [name])]:
            uninstall(left)  # a killed pip's RECORD is the wheel's: no INSTALLER
            found = installed_environment(env).names()
            for name in map(canonicalize_name, left):
                _drop_unrecorded(found.get(name, []))
    finally:
        for path, name in aside.files:
            if not os.path.lexists(path):  # else it was never taken
                _relink(str(root / name), path)
        remove(root)


def files_by_name(
    env: Env, names: Collection[str] | None = None
) -> dict[NormalizedName, list[Entry]]:
    """The ``RECORD`` entries of the installed distributions (of ``names``), by name,
    missing files too (the ``importlib_metadata`` backport drops them); strings, as
    pathlib objects for the family's ~20,000 files were most of a switch back's time."""
    every = installed_environment(env).names() if names is None else names
    found: dict[NormalizedName, list[Entry]] = {}
    for name in map(canonicalize_name, every):
        if not (distribution := located(site_paths(env), name)):
            continue
        base = str(distribution.locate_file(""))
        found[name] = _entries(distribution.read_text("RECORD") or "", base)
    return found


def _files_said(listed: list[str], what: str) -> str:
    """``2 of its files missing (torch/__init__.py, …)``: the first of ``listed`` named."""
    more = ", …" if len(listed) > 1 else ""
    return f"{len(listed)} of its files {what} ({listed[0]}{more})"


def _entries(text: str, base: str) -> list[Entry]:
    """The lines of the ``RECORD`` ``text`` of a distribution installed in ``base``."""
    rows = csv.reader(text.splitlines())
    return [
        (os.path.normpath(os.path.join(base, row[0])), row[0], row[1], row[2])
        for row in ([*row, "", ""] for row in rows if row)
    ]


def family_problems(
    env: Env,
    held: InstalledEnvironment,
    roots: Collection[str],
    hashes: bool = False,
    locked: Collection[str] | None = None,
    install: str = "",
    lock: TorchCudaLock | None = None,
    unmoved: Mapping[str, tuple[str, str, str]] = {},
) -> list[tuple[str, str | None, str]]:
    """What is wrong with what ``roots`` need as ``env`` holds it (``held``), with cause
    and fix: two .dist-info folders of one in a directory, its ``RECORD`` or a file it
    lists missing, (``hashes``) a file's sha256 not the recorded one, its file not
    one ``lock`` (torch-cuda.lock) names; a version a requirement rejects, a requirement
    missing (``install`` adds those ``locked``; not an ``unmoved`` build's: warned)."""
    family = set(held.graph(roots))
    if not family:  # nothing installed: no distribution's metadata to read
        return []
    # cause, fix: a wheel of the family the build rejects, the plan puts in
    problems: dict[str, tuple[str | None, str]] = {
        said: (None, SYNC if is_cuda_bound(name) else SYNC_FORCE)
        for said, name in held.unmet(roots).items()
    }
    ours = {canonicalize_name(root) for root in roots}
    for name, folders in sorted(i for i in held.names().items() if i[0] in family):
        for where in sorted({os.path.dirname(f) for f in folders}):
            here = [os.path.basename(f) for f in folders if os.path.dirname(f) == where]
            if len(here) > 1:  # pip warns, and uses either
                problems[
                    f"{name}: {len(here)} .dist-info folders in {where} "
                    f"({', '.join(sorted(here))}), so pip and imports may read either "
                    "(delete the stale one first)"
                ] = COPIED, repair(name, unmoved)
    for name, all_entries in sorted(files_by_name(env, family).items()):
        # The family pip installed has a RECORD: nothing to check without it, and
        # nothing a removal could find (a system package may have none: not ours).
        if not all_entries and (name in ours or is_cuda_bound(name)):
            problems[
                f"{name}: its RECORD is missing or empty, so nothing can remove it "
                "(delete its .dist-info folder first)"
            ] = DAMAGED, repair(name, unmoved)
            continue
        # Bytecode is the interpreter's to rewrite or a slim image's to delete.
        entries = [e for e in all_entries if e[2] and not e[0].endswith(".pyc")]
        missing, changed = [], []
        for path, listed, digest, size in entries:  # one stat a file (~20,000)
            info = None
            with suppress(OSError):
                info = os.stat(path)
            if info is None or not stat.S_ISREG(info.st_mode):
                missing.append(listed)
            elif (size.isdigit() and info.st_size != int(size)) or (
                hashes and digest[:7] == "sha256=" and digest[7:] != _sha256(path)
            ):  # a size is the stat's (status), a sha256 reads the file (verify)
                changed.append(listed)
        for bad, what in ((missing, "missing"), (changed, "changed since install")):
            if bad:
                problems[f"{name}: {_files_said(bad, what)}"] = (
                    (DAMAGED if bad is missing else OVER),
                    repair(name, unmoved),
                )
    variants = lock.variants if lock else ()  # each from a file torch-cuda.lock names
    for dist, sha in sorted(_record(state_dir(env.path)).items() if variants else ()):
        at = held.version(dist) if dist in family else None
        got = [p for v in variants if at and (p := v.package(dist, at))]
        builds = [p for v in variants for p in v.packages if p.name == dist]
        # A file of another of its builds: another installer replaced it (said apart).
        if got and sha not in {file[2] for p in builds for file in p.files}:
            problems[
                f"{dist} {at}: installed from a file (sha256 {sha[:12]}…) "
                "torch-cuda.lock no longer names"
            ] = RELOCKED, SYNC_FORCE
    found = [(problem, why, fix) for problem, (why, fix) in problems.items()]
    for requirer, name in held.missing(r for r in roots if r not in unmoved):
        problem, fix = f"{requirer} requires {name}, which is not installed", install
        who = requirer.split()[0]  # locked: the install puts its locked build in
        if locked is not None and name not in locked and who not in locked:
            problem += ", nor locked"
            fix = f"`poetry add {who}` locks it"
        found.append((problem, None, fix))
    return found


def repair(name: str, unmoved: Mapping[str, tuple[str, str, str]]) -> str:
    """A damaged build's fix; for one no install moves (``Plan.unmoved``), what moves it."""
    return unmoved[name][2] if name in unmoved else SYNC_FORCE


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
