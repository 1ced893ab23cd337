"""The one way back: a stash of the torch family's files, put back on any failure.

Before pip runs, every file of the installed torch family is hard-linked into
a stash inside the environment (``.torch-cuda-stash-<pid>.<random>``): no
copy, no network. pip and a removal unlink a file before anything replaces
it, so the stash keeps the old contents and costs disk only for what
changed. Whatever fails afterwards (pip, an interrupt, the check of what pip
installed, the sweep, switch's verification) is undone from it: what changed
is removed, pip's ``~`` leftovers go, the stashed files are linked back.

After a change the stash stays as the environment's previous build (one at
most, ``.torch-cuda-previous``): switch's rollback, and a switch back to that
build while torch-cuda.lock still names its files, are then a set of links.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from contextlib import suppress
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.installed import installed_environment
from poetry_torch_cuda.install.sweep import files_by_name
from poetry_torch_cuda.install.sweep import remove_distributions
from poetry_torch_cuda.install.sweep import site_paths
from poetry_torch_cuda.tempfiles import alive


if TYPE_CHECKING:
    from collections.abc import Collection
    from collections.abc import Iterator
    from collections.abc import Mapping

    from packaging.utils import NormalizedName
    from poetry.config.config import Config
    from poetry.utils.env import Env

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.install.installed import InstalledEnvironment
    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.install.request import InstallRequest
    from poetry_torch_cuda.install.sweep import Uninstaller
    from poetry_torch_cuda.project.config import TorchCudaConfig

STASH = ".torch-cuda-stash-"
PREVIOUS = ".torch-cuda-previous"
_MANIFEST = "stash.json"
#: The sha256 of the locked files the environment's torch family came from.
INSTALLED = ".torch-cuda-installed.json"


class UnfitInstall(TorchCudaError):
    """pip succeeded, but what it installed cannot stay: the installer puts it back."""


@dataclass
class Stash:
    """Hard links to the torch family's files, and what the environment held then."""

    root: Path
    #: Every installed distribution's version when the stash was taken.
    before: dict[str, str]
    #: The stashed distributions.
    family: list[str]
    #: (installed path, its link's name in ``root``).
    files: list[tuple[str, str]] = field(default_factory=list)
    #: pip's ``~`` leftovers that were there already.
    leftovers: list[str] = field(default_factory=list)
    #: The sha256 of the locked files the stashed family was installed from.
    locked: list[str] = field(default_factory=list)
    #: The family's top-level directories, and every file in them when taken
    #: (not kept with a previous build).
    tops: list[str] = field(default_factory=list)
    present: set[str] = field(default_factory=set)

    @classmethod
    def take(cls, env: Env, names: Collection[str]) -> Stash | None:
        """Link the files of the installed ``names`` into a new stash in ``env``.

        ``None`` when links cannot be made there (another filesystem, no
        permission): then there is nothing to put back from.
        """
        try:
            root = Path(tempfile.mkdtemp(prefix=f"{STASH}{os.getpid()}.", dir=env.path))
        except OSError:
            return None
        before = {str(k): v for k, v in versions_of(installed_environment(env)).items()}
        stash = cls(root, before, sorted(names))
        stash.leftovers = _leftovers(env)
        stash.locked = _installed_from(env.path)
        try:
            for entries in files_by_name(site_paths(env), names).values():
                for path, _ in entries:
                    if path.is_file() and not path.is_symlink():
                        stash.files.append((str(path), str(len(stash.files))))
                        os.link(path, root / stash.files[-1][1])
        except OSError:
            stash.drop()
            return None
        sites = [Path(site) for site in site_paths(env)]
        tops = {
            str(site / Path(path).relative_to(site).parts[0])
            for path, _ in stash.files
            for site in sites
            if Path(path).is_relative_to(site)
        }
        stash.tops = sorted(t for t in tops if ".dist-info" not in t)
        stash.present = _files_under(stash.tops)
        return stash

    def put_back(
        self,
        env: Env,
        pip_uninstall: Uninstaller,
        within: Collection[str] | None = None,
    ) -> list[str]:
        """Make ``env`` hold the stashed build again; what changed, as words.

        Removes the distributions whose version changed since (only those in
        ``within`` and the stash's family, when given) and pip's new ``~``
        leftovers, then links every stashed file back. Signals wait meanwhile.
        """
        with _signals_held():
            for leftover in set(_leftovers(env)) - set(self.leftovers):
                _remove(Path(leftover))
            now = versions_of(installed_environment(env))
            scope = None if within is None else {*within, *self.family}
            changed = sorted(
                name
                for name in now
                if self.before.get(name) != now[name]
                and (scope is None or name in scope)
            )
            if changed:
                remove_distributions(env, changed, pip_uninstall)
            # What an interrupted pip wrote where no RECORD lists it yet.
            for path in _files_under(self.tops) - self.present:
                _remove(Path(path))
            relinked = 0
            for destination, name in self.files:
                kept, target = self.root / name, Path(destination)
                with suppress(OSError):
                    if kept.samefile(target):
                        continue
                if target.exists() or target.is_symlink():
                    target.unlink()
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(kept, target)
                relinked += 1
        after = versions_of(installed_environment(env))
        changes = [
            _change(name, now.get(name), after.get(name))
            for name in sorted(set(now) | set(after))
            if now.get(name) != after.get(name)
        ]
        if relinked and not changes:
            changes.append(f"put back {relinked} files pip had changed")
        return changes

    def keep(self, env_path: Path) -> None:
        """Make this stash the environment's previous build (replacing the last one)."""
        previous = env_path / PREVIOUS
        shutil.rmtree(previous, ignore_errors=True)
        (self.root / _MANIFEST).write_text(
            json.dumps(
                {
                    "before": self.before,
                    "family": self.family,
                    "files": self.files,
                    "locked": self.locked,
                }
            ),
            encoding="utf-8",
        )
        self.root.rename(previous)
        self.root = previous

    def drop(self) -> None:
        """Remove the stash."""
        shutil.rmtree(self.root, ignore_errors=True)

    def describe(self, names: Collection[str]) -> str:
        """``torch 2.14.1+cu129, torchvision 0.29.1+cu129`` of ``names``."""
        return ", ".join(f"{n} {self.before[n]}" for n in names if n in self.before)


def finish(stash: Stash | None, env: Env, request: InstallRequest) -> None:
    """After a change that held: its stash becomes the previous build.

    ``sync --force`` keeps none: it reinstalls from torch-cuda.lock alone.
    """
    files = {item.sha256 for item in request.files or ()}
    if request.force or stash is None or not stash.files:
        drop_previous(env.path)
        if stash is not None:
            stash.drop()
    else:
        stash.keep(env.path)
        files |= set(_installed_from(env.path))
    record_installed(env.path, files)


def reusable_previous(env: Env, request: InstallRequest) -> Stash | None:
    """The previous build, when it is exactly what ``request`` installs from the lock.

    Its versions (labels included) must be the plan's and every locked file
    the request names must be one it was installed from.
    """
    plan = request.plan
    if request.files is None or plan.force or not request.config.keep_previous_build:
        return None
    previous = previous_build(env.path)
    if previous is None or not all(
        target.is_satisfied_by(previous.before.get(target.name), plan.variant)
        for target in plan.install
    ):
        return None
    if not {item.sha256 for item in request.files} <= set(previous.locked):
        return None
    if not all((previous.root / name).is_file() for _, name in previous.files):
        return None
    return previous


def previous_build(env_path: Path) -> Stash | None:
    """The environment's previous build, if one is kept."""
    root = env_path / PREVIOUS
    try:
        data = json.loads((root / _MANIFEST).read_text(encoding="utf-8"))
        return Stash(
            root,
            dict(data["before"]),
            list(data["family"]),
            [(str(a), str(b)) for a, b in data["files"]],
            [],
            [str(sha) for sha in data["locked"]],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def drop_previous(env_path: Path) -> None:
    """Forget the environment's previous build (``sync --force``, or keeping is off)."""
    shutil.rmtree(env_path / PREVIOUS, ignore_errors=True)


def record_installed(env_path: Path, sha256: Collection[str]) -> None:
    """Note the locked files the environment's torch family now comes from."""
    with suppress(OSError):
        (env_path / INSTALLED).write_text(json.dumps(sorted(sha256)), encoding="utf-8")


def _installed_from(env_path: Path) -> list[str]:
    try:
        return [str(sha) for sha in json.loads((env_path / INSTALLED).read_text())]
    except (OSError, ValueError, TypeError):
        return []


def dead_stashes(env_path: Path) -> list[Path]:
    """Stashes whose run is gone (``kill -9``): nothing will put them back."""
    found = []
    for path in env_path.glob(f"{STASH}*"):
        owner = path.name[len(STASH) :].split(".", 1)[0]
        if not owner.isdigit() or not alive(int(owner)):
            found.append(path)
    return found


def leftover_warnings(env_path: Path) -> list[str]:
    """What ``status`` says of the stashes of dead runs."""
    warnings = []
    for path in dead_stashes(env_path):
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        warnings.append(
            f"a run that was killed left its stash of the previous build in {path} "
            f"({size / 1e6:.1f} MB); the next install, sync or switch removes it"
        )
    return warnings


def sweep_dead_stashes(env_path: Path) -> None:
    """Remove the stashes of dead runs (under the environment's lock)."""
    for path in dead_stashes(env_path):
        shutil.rmtree(path, ignore_errors=True)


def _files_under(tops: Collection[str]) -> set[str]:
    """Every file under the directories ``tops``."""
    found: set[str] = set()
    for top in tops:
        for folder, _, names in os.walk(top):
            found.update(str(Path(folder, name)) for name in names)
    return found


def _remove(path: Path) -> None:
    with suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _leftovers(env: Env) -> list[str]:
    """pip's temporary ``~name`` entries in the environment's site-packages."""
    return sorted(
        str(path) for site in site_paths(env) for path in Path(site).glob("~*")
    )


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP until the block is done (main thread, POSIX)."""
    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def undo(
    error: BaseException,
    stash: Stash | None,
    plan: Plan,
    env: Env,
    pip_uninstall: Uninstaller,
) -> TorchCudaError:
    """Put ``env`` back from ``stash``; the error to raise says what it holds now."""
    cause = str(error) if isinstance(error, TorchCudaError) else _interrupted(error)
    code = getattr(error, "exit_code", None) or (
        130 if isinstance(error, KeyboardInterrupt) else 1
    )
    if stash is None:
        wrapped = with_state(
            TorchCudaError(cause), plan, versions_of(plan.installed), env
        )
    else:
        try:
            changes = stash.put_back(env, pip_uninstall)
        except (TorchCudaError, OSError) as failure:
            wrapped = TorchCudaError(
                f"{cause}\nPutting the environment back failed too ({failure}): torch "
                "may not import. `poetry torch-cuda sync --force` reinstalls the "
                "locked build once the cause is fixed."
            )
        else:
            stash.drop()
            held = stash.describe([t.name for t in plan.install])
            wrapped = TorchCudaError(
                f"{cause}\n"
                + (
                    f"The environment was put back as it was ({held or 'no torch build'}; "
                    f"undone: {', '.join(changes)})."
                    if changes
                    else f"Nothing changed: the environment still has {held or 'no torch build'}."
                )
            )
    wrapped.exit_code = code
    return wrapped


def _interrupted(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted while installing"
    return f"{type(error).__name__}: {error}"


def index_client_for(
    config: TorchCudaConfig, poetry_config: Config | None
) -> IndexClient:
    """An index client with the project's Poetry config and sources (for credentials)."""
    from poetry.config.config import Config

    from poetry_torch_cuda.index.client import IndexClient

    return IndexClient(poetry_config or Config.create(), config.project_sources)


def versions_of(installed: InstalledEnvironment) -> dict[NormalizedName, str]:
    """Every installed distribution's version, by name."""
    return {name: dist.version for name, dist in installed.all().items()}


def with_state(
    error: TorchCudaError, plan: Plan, before: Mapping[NormalizedName, str], env: Env
) -> TorchCudaError:
    """``error`` with a line that says what the environment holds now."""
    after = versions_of(installed_environment(env))
    names = [target.name for target in plan.install]
    held = ", ".join(f"{name} {after[name]}" for name in names if name in after)
    targets_kept = all(before.get(name) == after.get(name) for name in names)
    changes = [
        _change(name, before.get(name), after.get(name))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]
    if not changes:
        state = (
            f"Nothing changed: the environment still has {held}."
            if held
            else f"Nothing changed: the environment has no {', '.join(names)}."
        )
    else:
        had = "still has" if targets_kept else "now has"
        state = (
            f"The environment {had} {held or 'no ' + ', '.join(names)}; before "
            f"failing, pip {', '.join(changes[:6])}"
            f"{' and more' if len(changes) > 6 else ''}. Run the command again "
            "once the cause is fixed: it removes what is left unused."
        )
    wrapped = type(error)(f"{error}\n{state}")
    wrapped.exit_code = error.exit_code
    return wrapped


def _change(name: str, old: str | None, new: str | None) -> str:
    if old is None:
        return f"added {name} {new}"
    if new is None:
        return f"removed {name} {old}"
    return f"changed {name} {old} -> {new}"
