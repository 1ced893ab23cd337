"""Make an environment hold the configured variant: plan, install, sweep, report."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from cleo.io.outputs.output import Verbosity

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.urls import mask_url
from poetry_torch_cuda.install.family import with_family
from poetry_torch_cuda.install.installed import InstalledEnvironment
from poetry_torch_cuda.install.installed import graph_of
from poetry_torch_cuda.install.installed import installed_environment
from poetry_torch_cuda.install.planning import Plan
from poetry_torch_cuda.install.planning import build_targets
from poetry_torch_cuda.install.planning import find_orphans
from poetry_torch_cuda.install.planning import pins_for
from poetry_torch_cuda.install.planning import plan_changes
from poetry_torch_cuda.install.protection import protected_names
from poetry_torch_cuda.output import PREFIX


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Mapping
    from pathlib import Path

    from cleo.io.io import IO
    from packaging.utils import NormalizedName
    from poetry.config.config import Config
    from poetry.utils.env import Env

    from poetry_torch_cuda.install.pip import PipRunner
    from poetry_torch_cuda.lockfile.model import VariantLock
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.locked import LockedState
    from poetry_torch_cuda.project.variants import Variant

    #: Gives a variant's entry of torch-cuda.lock, locking it first if needed.
    LockLookup = Callable[[Variant], VariantLock]


def protected_for(
    config: TorchCudaConfig, locked: LockedState, installed: InstalledEnvironment
) -> frozenset[NormalizedName]:
    """The torch family as both the lock and the environment see it."""
    installed_graph = graph_of(installed.closure(config.package_names).values())
    protected = protected_names(config.package_names, [locked.graph, installed_graph])
    # What the installed build needs but the lock never heard of is pip's, not Poetry's.
    return protected | (frozenset(installed_graph) - frozenset(locked.graph))


def plan_for(
    config: TorchCudaConfig, variant: Variant, locked: LockedState, env: Env
) -> tuple[Plan, frozenset[NormalizedName], InstalledEnvironment]:
    """The plan that makes ``env`` hold ``variant``, the protected names and the env view."""
    installed = installed_environment(env)
    targets = with_family(
        build_targets(config.packages, locked.versions, variant, env.marker_env),
        installed,
    )
    protected = protected_for(config, locked, installed)
    plan = plan_changes(variant, targets, protected, config.package_names, installed)
    return plan, protected, installed


def apply_plan(
    plan: Plan,
    config: TorchCudaConfig,
    protected: frozenset[NormalizedName],
    installed: InstalledEnvironment,
    env: Env,
    io: IO,
    *,
    poetry_config: Config | None = None,
    force_reinstall: bool = False,
    compile_bytecode: bool = False,
    locked_versions: Mapping[NormalizedName, str] | None = None,
    lock_for: LockLookup | None = None,
) -> None:
    """Carry out ``plan`` with the env's pip and print one summary line.

    Every package pip may touch besides the plan's is pinned: an installed one
    to its installed version, one of ``locked_versions`` not installed yet to
    its locked version.

    ``poetry_config`` is the project's Poetry configuration, where credentials
    for the index are looked up (default: the user's global configuration).
    ``lock_for`` gives the variant's entry of torch-cuda.lock: then pip
    installs exactly its files, each checked against its sha256.

    Raises:
        TorchCudaError: pip failed, or installed something other than asked.
    """
    # Only a run with something to do pays for these imports.
    from cleo.formatters.formatter import Formatter

    from poetry_torch_cuda.index.credentials import index_access
    from poetry_torch_cuda.install.family import pin_specifiers
    from poetry_torch_cuda.install.pip import PipRunner
    from poetry_torch_cuda.install.undo import index_client_for
    from poetry_torch_cuda.install.undo import take_stash
    from poetry_torch_cuda.install.undo import undo

    pip = PipRunner(
        env.get_pip_command(),
        show_output=io.output.is_decorated() or io.is_verbose(),
        echo=lambda line: io.write_line(Formatter.escape(line)),
    )
    done: list[str] = []
    if plan.install:
        index = index_access(config, plan.variant, poetry_config)
        plan = pin_specifiers(
            plan,
            config,
            index_client_for(config, poetry_config),
            env.marker_env,
            installed,
        )
        requirements = [target.pip_requirement for target in plan.install]
        io.write_line(
            f"{PREFIX}: installing <c2>{', '.join(requirements)}</> "
            f"from <comment>{index.shown}</>",
            verbosity=Verbosity.VERBOSE,
        )
        lock = (
            _variant_lock(lock_for, plan, installed) if lock_for is not None else None
        )
        snapshot = _versions(installed)
        stash = take_stash(env, protected & set(snapshot))
        try:
            try:
                if lock is not None:
                    # The locked files, fetched in parallel and verified; pip
                    # installs exactly them.
                    from poetry_torch_cuda.install.fetched import install_locked

                    install_locked(
                        lock,
                        plan,
                        config,
                        env,
                        installed,
                        pip,
                        io,
                        poetry_config=poetry_config,
                        force_reinstall=force_reinstall,
                        compile_bytecode=compile_bytecode,
                    )
                    # The locked files are the torch family only (--no-deps):
                    # what it needs besides, and lacks here, comes at its
                    # locked version (sync into an empty environment).
                    missing = _missing_requirements(
                        config, env, protected, locked_versions
                    )
                    if missing:
                        pip.install(
                            missing,
                            index,
                            pins_for(installed, protected, (), locked_versions),
                            compile_bytecode=compile_bytecode,
                        )
                else:
                    pip.install(
                        requirements,
                        index,
                        pins_for(installed, protected, plan.install, locked_versions),
                        force_reinstall=force_reinstall,
                        compile_bytecode=compile_bytecode,
                    )
            except TorchCudaError as error:  # pip's, or a download's (fetched.py)
                forget_entry = getattr(lock_for, "undo", None)
                if callable(forget_entry):
                    forget_entry()  # an entry locked for this install stays only if it installed
                raise _with_state(error, plan, snapshot, env) from None
            try:
                installed = installed_environment(env)
                _check_requirements(installed, config, requirements)
                done.append(_check_installed(plan, installed))
                targets = (*plan.install, *plan.satisfied)
                orphans = find_orphans(
                    protected - config.package_names, targets, installed
                )
                _remove_orphans(pip, orphans, done)
            except (TorchCudaError, OSError) as error:
                raise undo(error, stash, snapshot, env, pip) from None
        finally:
            if stash is not None:
                stash.drop()
    else:
        _remove_orphans(pip, list(plan.remove), done)
    if done:
        io.write_line(f"{PREFIX}: {plan.variant}: {'; '.join(done)}")


def _remove_orphans(
    pip: PipRunner, orphans: list[NormalizedName], done: list[str]
) -> None:
    if orphans:
        pip.uninstall(orphans)
        done.append(
            f"removed {len(orphans)} unused CUDA wheel{'s' if len(orphans) != 1 else ''} ({', '.join(orphans)})"
        )


def _check_requirements(
    installed: InstalledEnvironment, config: TorchCudaConfig, asked: list[str]
) -> None:
    """Refuse a build that needs other versions of what Poetry manages.

    pip installs locked files with ``--no-deps``, so it no longer checks this.

    Raises:
        TorchCudaError: an installed version does not satisfy the build.
    """
    conflicts = installed.unmet(config.package_names)
    if conflicts:
        raise TorchCudaError(
            f"pip could not install {', '.join(asked)}: {'; '.join(conflicts)}.\n"
            "This build needs other versions of packages Poetry manages; align "
            "them in pyproject.toml and run `poetry lock`, or choose another "
            "variant with `poetry torch-cuda switch <variant>`."
        )


def _missing_requirements(
    config: TorchCudaConfig,
    env: Env,
    protected: frozenset[NormalizedName],
    locked_versions: Mapping[NormalizedName, str] | None,
) -> list[str]:
    """``name==locked`` for what the installed torch family requires and lacks.

    Only Poetry's kind of package (``filelock``): the family's CUDA wheels are
    the lock's, never fetched unlocked.
    """
    installed = installed_environment(env)
    family = [name for name in protected | config.package_names if installed.get(name)]
    wanted = installed.needs(family) - protected
    missing = sorted(name for name in wanted if installed.get(name) is None)
    versions = locked_versions or {}
    return [
        f"{name}=={versions[name]}" if name in versions else name for name in missing
    ]


def _variant_lock(
    lock_for: LockLookup, plan: Plan, installed: InstalledEnvironment
) -> VariantLock:
    """The variant's entry of torch-cuda.lock (locked first when missing)."""
    try:
        return lock_for(plan.variant)
    except TorchCudaError as error:
        versions = _versions(installed)
        names = [target.name for target in plan.install]
        held = ", ".join(f"{n} {versions[n]}" for n in names if n in versions)
        state = (
            f"Nothing changed: the environment still has {held}."
            if held
            else "Nothing was installed."
        )
        raise TorchCudaError(f"{error}\n{state}") from None


def describe_plan(plan: Plan, config: TorchCudaConfig) -> str:
    """A one-line description of ``plan`` for ``--dry-run`` and verbose output."""
    parts = []
    if plan.install:
        parts.append(
            f"install {', '.join(str(target) for target in plan.install)} "
            f"from {mask_url(config.index_url(plan.variant))}"
        )
    if plan.remove:
        parts.append(f"remove {', '.join(plan.remove)}")
    if not parts:
        kept = (
            ", ".join(str(target) for target in plan.satisfied) or "nothing to install"
        )
        return f"{plan.variant} already installed ({kept})"
    return "; ".join(parts)


def _versions(installed: InstalledEnvironment) -> dict[NormalizedName, str]:
    return {name: dist.version for name, dist in installed.all().items()}


def _with_state(
    error: TorchCudaError, plan: Plan, before: Mapping[NormalizedName, str], env: Env
) -> TorchCudaError:
    """``error`` with a line that says what the environment holds now."""
    after = _versions(installed_environment(env))
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


def _check_installed(plan: Plan, installed: InstalledEnvironment) -> str:
    versions = []
    for target in plan.install:
        distribution = installed.get(target.name)
        version = None if distribution is None else distribution.version
        if not target.is_satisfied_by(version, plan.variant):
            raise TorchCudaError(
                f"pip installed {target.name} {version or '(nothing)'} where "
                f"{target} was asked for: the index does not label its builds "
                f"'+{plan.variant.local_label}'. Check index-url."
            )
        versions.append(f"{target.name} {version}")
    return f"installed {', '.join(versions)}"


def reconcile_environment(
    config: TorchCudaConfig,
    variant: Variant,
    locked: LockedState,
    env: Env,
    io: IO,
    *,
    poetry_config: Config | None = None,
    force: bool = False,
    refresh: Callable[[], tuple[TorchCudaConfig, Variant] | None] | None = None,
    compile_bytecode: bool = False,
    project: Path | None = None,
    lock_for: LockLookup | None = None,
) -> Plan:
    """Under the environment's lock: plan and, unless nothing is to change, apply.

    The plan is made after the lock is taken, so a run that waited for another
    one finds what that one installed; ``refresh`` then gives the configuration
    and variant as they are now (another run may have switched meanwhile).
    ``force`` reinstalls matching builds too. Returns the plan that was carried
    out (empty when the env already matched).
    """
    from poetry_torch_cuda.install.envlock import environment_lock

    waited: list[bool] = []

    def on_wait() -> None:
        waited.append(True)
        write_waiting(io, env)

    with environment_lock(env.path, on_wait=on_wait):
        if waited and refresh is not None:
            config, variant = refresh() or (config, variant)
        plan, protected, installed = plan_for(config, variant, locked, env)
        if force:
            plan = forced(plan)
        if not plan.is_empty:
            if project is not None and plan.install:
                _warn_other_owner(env, io, project, variant)
            apply_plan(
                plan,
                config,
                protected,
                installed,
                env,
                io,
                poetry_config=poetry_config,
                force_reinstall=force,
                compile_bytecode=compile_bytecode,
                locked_versions=locked.pins or locked.versions,
                lock_for=lock_for,
            )
            if project is not None and plan.install:
                from poetry_torch_cuda.install.owner import record_owner

                record_owner(env.path, project, variant.name)
        return plan


def _warn_other_owner(env: Env, io: IO, project: Path, variant: Variant) -> None:
    """Warn when the variant another project installed here is being replaced."""
    from poetry_torch_cuda.install.owner import other_owner
    from poetry_torch_cuda.output import esc

    warning = other_owner(env.path, project, variant.name)
    if warning is not None:
        io.write_error_line(f"<warning>{PREFIX}: {esc(warning)}</>")


def forced(plan: Plan) -> Plan:
    """``plan`` with every already satisfied target moved to the install list."""
    return dataclasses.replace(
        plan, install=(*plan.install, *plan.satisfied), satisfied=()
    )


def write_waiting(io: IO, env: Env) -> None:
    """Say why the command pauses: another run holds the environment's lock."""
    io.write_error_line(
        f"{PREFIX}: <comment>waiting for another run to finish with {env.path}</>"
    )
