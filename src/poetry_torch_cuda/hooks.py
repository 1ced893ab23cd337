"""Listeners on Poetry's commands: keep Poetry off the torch family, then reconcile."""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING
from typing import Any

from cleo.io.outputs.output import Verbosity
from packaging.utils import canonicalize_name

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.installed import installed_environment
from poetry_torch_cuda.install.protection import merge_graphs
from poetry_torch_cuda.install.reconcile import protected_for
from poetry_torch_cuda.install.reconcile import reconcile_environment
from poetry_torch_cuda.install.request import InstallSettings
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.output import write_error
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.locked import LockedState
from poetry_torch_cuda.project.locked import dependency_graph


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable

    from cleo.events.console_command_event import ConsoleCommandEvent
    from cleo.events.console_terminate_event import ConsoleTerminateEvent
    from cleo.io.io import IO
    from packaging.utils import NormalizedName
    from poetry.console.commands.installer_command import InstallerCommand
    from poetry.installation.operations.operation import Operation
    from poetry.packages.locker import Locker
    from poetry.utils.env import Env

    from poetry_torch_cuda.install.installed import InstalledEnvironment
    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant


class OperationGuard:
    """Wraps ``Executor.execute``: marks the torch family's operations skipped.

    It also records what the lock resolves for the environment, which the
    after-step installs in the configured variant's build.
    """

    def __init__(
        self,
        config: TorchCudaConfig,
        variant: Variant,
        env: Env,
        locker: Locker,
        direct: frozenset[NormalizedName] = frozenset(),
    ) -> None:
        self.config = config
        self.direct = direct
        self.variant = variant
        self.env = env
        self.locker = locker
        self.locked: LockedState | None = None
        self.reason = f"managed by poetry-torch-cuda ({variant})"
        # Entries with a specifier are the plugin's to install even when the
        # lock lacks them: Poetry's removal of them is skipped like any other.
        self._specified = frozenset(
            canonicalize_name(r.name) for r in config.packages if r.specifier
        )

    def wrap(
        self, execute: Callable[[list[Operation]], int]
    ) -> Callable[[list[Operation]], int]:
        """Return ``execute`` preceded by the marking of protected operations."""

        def guarded_execute(operations: list[Operation]) -> int:
            resolved = self.capture(operations)
            installed = installed_environment(self.env)
            self.mark(operations, resolved, installed)
            # Keep the pre-run edges: once Poetry removed torch, its cu12 wheels
            # must still be recognised as the torch family's, to be swept.
            before = installed.graph(self.config.package_names)
            self.locked = LockedState(
                resolved.versions,
                merge_graphs(resolved.graph, before),
                direct=self.direct,
            )
            return execute(operations)

        return guarded_execute

    def capture(self, operations: list[Operation]) -> LockedState:
        """What this run resolves: the configured packages' versions, the graph."""
        configured = self.config.package_names
        versions: dict[NormalizedName, str] = {}
        # Packages installed from the lock carry no dependencies; the lock has them.
        graph = (
            dependency_graph(self.locker.locked_repository().packages)
            if (self.locker.is_locked())
            else {}
        )
        for operation in operations:
            if operation.job_type == "uninstall":
                continue
            package = operation.package
            if package.requires:
                graph[package.name] = [
                    dependency.name for dependency in package.requires
                ]
            wanted = (
                not operation.skipped or operation.skip_reason == "Already installed"
            )
            if package.name in configured and wanted:
                versions[package.name] = package.version.text
        return LockedState(versions, graph, direct=self.direct)

    def mark(
        self,
        operations: list[Operation],
        resolved: LockedState,
        installed: InstalledEnvironment,
    ) -> None:
        """Skip every not-yet-skipped operation on a protected package."""
        configured = self.config.package_names
        protected = protected_for(self.config, resolved, installed)
        for operation in operations:
            name = operation.package.name
            if operation.skipped or name not in protected:
                continue
            if (
                operation.job_type == "uninstall"
                and name in configured
                and name not in resolved.versions
                and name not in self._specified
            ):
                continue  # the project dropped it: Poetry may remove it
            operation.skip(self.reason)


class CommandHooks:
    """The COMMAND and TERMINATE listeners the plugin registers."""

    def __init__(self) -> None:
        self._guards: dict[int, OperationGuard] = {}
        self._configs: dict[int, TorchCudaConfig | None] = {}
        self._lock_checks: dict[int, TorchCudaConfig] = {}
        self._relocks: set[int] = set()

    def on_validate(
        self, event: ConsoleCommandEvent, event_name: str, dispatcher: Any
    ) -> None:
        """Before Poetry touches anything (even the virtualenv): read and check the config.

        Raises:
            ConfigError: the configuration is invalid; Poetry prints it and exits 1.
        """
        command = _installer_command(event.command)
        if command is not None:
            self._configs[id(command)] = load_config(command.poetry.pyproject.data)

    def on_command(
        self, event: ConsoleCommandEvent, event_name: str, dispatcher: Any
    ) -> None:
        """Before an installer command runs: guard its executor."""
        command = _installer_command(event.command)
        if command is None:
            return
        config = self._configs.pop(id(command), None)
        if config is None:
            return
        # `auto` is resolved in the after-step, once the lock says which torch.
        variant = config.variant
        no_builds = variant.not_built_for(sys.platform)
        if no_builds is not None:
            event.io.write_error_line(
                f"<warning>{PREFIX}: {no_builds}; leaving torch to Poetry "
                "(PyPI's default build).</>"
            )
            return
        if command.name in ("lock", "update"):
            self._lock_checks[id(command)] = config
        if command.name in ("lock", "add", "remove", "update"):
            self._relocks.add(id(command))
        if command.name == "lock":
            return
        direct = frozenset(d.name for d in command.poetry.package.all_requires)
        guard = OperationGuard(
            config, variant, command.env, command.poetry.locker, direct
        )
        executor = command.installer.executor
        executor.execute = guard.wrap(executor.execute)  # type: ignore[method-assign,assignment]
        self._guards[id(command)] = guard

    def on_terminate(
        self, event: ConsoleTerminateEvent, event_name: str, dispatcher: Any
    ) -> None:
        """After an installer command: make the env hold the configured variant."""
        if not self._write_torch_cuda_lock(event):
            return
        self._check_lock(event)
        guard = self._guards.pop(id(event.command), None)
        if guard is None or guard.locked is None or event.exit_code != 0:
            return
        command = _installer_command(event.command)
        if command is None:
            return
        try:
            variant = guard.variant
            if variant.kind == "auto":
                variant = _resolve_auto(guard, command, event.io)
            _warn_unserved_jetson(guard.config, variant, command.env, event.io)
            if command.installer.is_dry_run():
                from poetry_torch_cuda.install.reconcile import write_plan

                write_plan(guard.config, variant, guard.locked, command.env, event.io)
                return
            from poetry_torch_cuda.machine.resolution import refresher

            settings = InstallSettings.of(
                command.poetry, event.io, compile_bytecode=_compiles(command)
            )
            plan = _reconcile_after_run(
                guard.config,
                variant,
                guard.locked,
                command.env,
                event.io,
                settings,
                refresh=refresher(command.poetry, command.env, guard.locked.versions),
            )
            warn_packages(guard.config, guard.locked.graph, command.env, event.io)
            if not plan.is_empty:  # a no-op run never verifies (nor imports proof/)
                from poetry_torch_cuda.proof.after import prove_change

                prove_change(
                    command.poetry,
                    command.env,
                    event.io,
                    guard.config,
                    variant,
                    guard.locked,
                    plan,
                )
        except TorchCudaError as error:
            write_error(event.io, str(error))
            event.set_exit_code(error.exit_code or 1)
        except Exception as error:  # noqa: BLE001 - a bug of ours must not read like Poetry crashing
            _write_unexpected(event.io, error)
            event.set_exit_code(1)

    def _write_torch_cuda_lock(self, event: ConsoleTerminateEvent) -> bool:
        """After a command that rewrote poetry.lock: update torch-cuda.lock.

        Returns False when that failed (the exit code says so).
        """
        if id(event.command) not in self._relocks:
            return True
        self._relocks.discard(id(event.command))
        command = _installer_command(event.command)
        if command is None or event.exit_code != 0 or command.installer.is_dry_run():
            return True
        from poetry_torch_cuda.lockfile.service import after_lock_write

        try:
            after_lock_write(command.poetry, event.io)
        except TorchCudaError as error:
            write_error(event.io, str(error))
            event.set_exit_code(error.exit_code or 1)
            self._guards.pop(id(event.command), None)
            return False
        return True

    def _check_lock(self, event: ConsoleTerminateEvent) -> None:
        """After ``lock``/``update``: warn when the variant lacks the locked torch."""
        config = self._lock_checks.pop(id(event.command), None)
        command = _installer_command(event.command)
        if config is None or command is None or event.exit_code != 0:
            return
        if command.installer.is_dry_run():
            return
        from poetry_torch_cuda.project.lock_view import show_lock_view

        try:
            show_lock_view(config, command.poetry, command.env, event.io)
        except TorchCudaError as error:  # a check only: never fail the lock for it
            event.io.write_error_line(
                f"{PREFIX}: could not check the lock's torch: {esc(str(error))}",
                verbosity=Verbosity.VERBOSE,
            )


def _reconcile_after_run(
    config: TorchCudaConfig,
    variant: Variant,
    locked: LockedState,
    env: Env,
    io: IO,
    settings: InstallSettings,
    *,
    refresh: Callable[[], tuple[TorchCudaConfig, Variant] | None] | None = None,
) -> Plan:
    """Make ``env`` hold ``variant``; say so at ``-v`` when it already did."""
    plan = reconcile_environment(
        config, variant, locked, env, io, settings, refresh=refresh
    )
    if plan.is_empty:
        io.write_line(
            f"{PREFIX}: {variant} already in place", verbosity=Verbosity.VERBOSE
        )
    return plan


def warn_packages(
    config: TorchCudaConfig, lock_names: Iterable[str], env: Env, io: IO
) -> None:
    """Warn about ``packages`` entries that name nothing and per-variant packages left out."""
    from poetry_torch_cuda.project.package_checks import left_to_poetry
    from poetry_torch_cuda.project.package_checks import unknown_entries

    warnings = unknown_entries(config, lock_names)
    warnings += left_to_poetry(config, installed_environment(env))
    for warning in warnings:
        io.write_error_line(f"<warning>{PREFIX}: {esc(warning)}</>")


def _compiles(command: InstallerCommand) -> bool:
    """Whether Poetry compiles bytecode in this run (``install --compile``)."""
    return bool(command.io.input.has_option("compile") and command.option("compile"))


def _resolve_auto(guard: OperationGuard, command: InstallerCommand, io: IO) -> Variant:
    """What ``auto`` means here, for the versions this run locked and installed."""
    from poetry_torch_cuda.machine.resolution import report
    from poetry_torch_cuda.machine.resolution import resolve

    assert guard.locked is not None
    resolution = resolve(
        guard.config, command.poetry, command.env, guard.locked.versions
    )
    report(resolution, io)
    return resolution.variant


def _installer_command(command: object) -> InstallerCommand | None:
    from poetry.console.commands.installer_command import InstallerCommand

    # ``plugins`` forwards no ``poetry self`` command: it decides that once.
    return command if isinstance(command, InstallerCommand) else None


def _write_unexpected(io: IO, error: Exception) -> None:
    """One line on an error of ours; the (scrubbed) traceback only with ``-vvv``."""
    if io.is_debug():
        trace = "".join(
            traceback.format_exception(type(error), error, error.__traceback__)
        )
        write_error(io, trace)
    write_error(
        io,
        f"poetry-torch-cuda failed unexpectedly: {type(error).__name__}: {error}. "
        "Run the command again with -vvv for the traceback; "
        "POETRY_TORCH_CUDA_DISABLE=1 leaves torch to Poetry meanwhile.",
    )


def _warn_unserved_jetson(
    config: TorchCudaConfig, variant: Variant, env: Env, io: IO
) -> None:
    """Say so when PyTorch's index is about to give a Jetson a build it cannot run."""
    from poetry_torch_cuda.machine.resolution import jetson_warning

    machine = str(env.marker_env.get("platform_machine") or "")
    warning = jetson_warning(config, variant, machine)
    if warning is not None:
        io.write_error_line(f"<warning>{PREFIX}: {esc(warning)}</>")
