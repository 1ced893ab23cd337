"""What ``apply_plan`` needs around pip: an index client, and the way back on failure.

A failure in pip (or before it) leaves the environment as pip left it, and the
error says what that is (:func:`with_state`); a failure after pip succeeded
(:class:`UnfitInstall`, or a check, or the sweep) puts it back (:func:`undo`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.installed import installed_environment
from poetry_torch_cuda.install.rollback import Stash
from poetry_torch_cuda.install.rollback import roll_back


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    from packaging.utils import NormalizedName
    from poetry.config.config import Config
    from poetry.utils.env import Env

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.install.installed import InstalledEnvironment
    from poetry_torch_cuda.install.pip import PipRunner
    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.project.config import TorchCudaConfig


class UnfitInstall(TorchCudaError):
    """pip succeeded, but what it installed cannot stay: the installer puts it back."""


def index_client_for(
    config: TorchCudaConfig, poetry_config: Config | None
) -> IndexClient:
    """An index client with the project's Poetry config and sources (for credentials)."""
    from poetry.config.config import Config

    from poetry_torch_cuda.index.client import IndexClient

    return IndexClient(poetry_config or Config.create(), config.project_sources)


def take_stash(env: Env, names: Iterable[NormalizedName]) -> Stash | None:
    """Hard links to the installed files of ``names``, inside ``env``."""
    paths = [str(path) for path in env.site_packages.candidates]
    from poetry_torch_cuda.install.envlock import state_dir

    return Stash.take(paths, names, state_dir(env.path))


def undo(
    error: Exception,
    stash: Stash | None,
    before: Mapping[NormalizedName, str],
    env: Env,
    pip: PipRunner,
) -> TorchCudaError:
    """Put ``env`` back as it was before pip ran; the error to raise says so."""
    cause = str(error) if isinstance(error, TorchCudaError) else f"{error}"
    if stash is None:
        return TorchCudaError(
            f"{cause}\nThe environment could not be put back (no copy of the previous "
            "build could be kept next to it); run the command again once the cause "
            "is fixed."
        )
    after = {
        name: dist.version for name, dist in installed_environment(env).all().items()
    }
    try:
        restored = roll_back(stash, before, after, pip.uninstall)
    except (TorchCudaError, OSError) as failure:
        return TorchCudaError(
            f"{cause}\nPutting the environment back failed too ({failure}); run "
            "`poetry torch-cuda sync` once the cause is fixed."
        )
    held = ", ".join(restored) or "the previous builds"
    wrapped = TorchCudaError(
        f"{cause}\nThe environment was put back as it was ({held}); nothing else "
        "changed."
    )
    wrapped.exit_code = getattr(error, "exit_code", 1) or 1
    return wrapped


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
