"""Listeners on Poetry's commands: keep Poetry off the torch family, then reconcile."""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING
from typing import Any

from cleo.io.outputs.output import Verbosity
from packaging.utils import canonicalize_name

from poetry_torch_cuda.context import RunContext
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.output import write_error
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.locked import LockedState
from poetry_torch_cuda.project.locked import dependency_graph


if TYPE_CHECKING:
    from collections.abc import Callable

    from cleo.events.console_command_event import ConsoleCommandEvent
    from cleo.events.console_terminate_event import ConsoleTerminateEvent
    from cleo.io.io import IO
    from packaging.utils import NormalizedName
    from poetry.console.commands.installer_command import InstallerCommand
    from poetry.installation.operations.operation import Operation

    from poetry_torch_cuda.environment.installed import InstalledEnvironment
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant


class OperationGuard:
    """Wraps ``Executor.execute``: marks the torch family's operations skipped.

    It also records what the lock resolves for the environment, which the
    after-step installs in the configured variant's build.
    """

    def __init__(self, ctx: RunContext, variant: Variant) -> None:
        self.ctx = ctx
        self.direct = frozenset(d.name for d in ctx.poetry.package.all_requires)
        self.variant = variant
        self.locked: LockedState | None = None
        self.reason = f"managed by poetry-torch-cuda ({variant})"
        # Entries with a specifier are the plugin's to install even when the
        # lock lacks them: Poetry's removal of them is skipped like any other.
        self._specified = frozenset(
            canonicalize_name(r.name) for r in ctx.config.packages if r.specifier
        )

    def wrap(
        self, execute: Callable[[list[Operation]], int]
    ) -> Callable[[list[Operation]], int]:
        """Return ``execute`` preceded by the marking of protected operations."""
        from poetry_torch_cuda.project.protection import merge_graphs

        def guarded_execute(operations: list[Operation]) -> int:
            resolved = self.capture(operations)
            installed = self.ctx.installed  # as Poetry found it
            self.mark(operations, resolved, installed)
            # Keep the pre-run edges: once Poetry removed torch, its cu12 wheels
            # must still be recognised as the torch family's, to be swept.
            names = self.ctx.config.package_names
            before = installed.graph(names)
            graph = merge_graphs(resolved.graph, before)
            self.locked = LockedState(resolved.versions, graph, direct=self.direct)
            return execute(operations)

        return guarded_execute

    def capture(self, operations: list[Operation]) -> LockedState:
        """What this run resolves: the configured packages' versions, the graph."""
        configured = self.ctx.config.package_names
        locker = self.ctx.poetry.locker
        versions: dict[NormalizedName, str] = {}
        # Packages installed from the lock carry no dependencies; the lock has them.
        graph = (
            dependency_graph(locker.locked_repository().packages)
            if locker.is_locked()
            else {}
        )
        for operation in operations:
            if operation.job_type == "uninstall":
                continue
            package = operation.package
            if package.requires:
                graph[package.name] = [dep.name for dep in package.requires]
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
        from poetry_torch_cuda.install.reconcile import protected_for

        configured = self.ctx.config.package_names
        protected = protected_for(self.ctx.config, resolved, installed)
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
        self._configs: dict[int, TorchCudaConfig | None] = {}
        self._guards: dict[int, OperationGuard] = {}
        self._lock_checks: dict[int, RunContext] = {}
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
        config = None if command is None else self._configs.pop(id(command), None)
        if command is None or config is None:
            return
        # `auto` is resolved in the after-step, once the lock says which torch.
        no_builds = config.variant.not_built_for(sys.platform)
        if no_builds is not None:
            event.io.write_error_line(
                f"<warning>{PREFIX}: {no_builds}; leaving torch to Poetry "
                "(PyPI's default build).</>"
            )
            return
        ctx = RunContext(command.poetry, command.env, event.io, config)
        if command.name in ("lock", "update"):
            self._lock_checks[id(command)] = ctx
        if command.name in ("lock", "add", "remove", "update"):
            self._relocks.add(id(command))
        if command.name == "lock":
            return
        guard = OperationGuard(ctx, config.variant)
        executor = command.installer.executor
        executor.execute = guard.wrap(executor.execute)  # type: ignore[method-assign,assignment]
        self._guards[id(command)] = guard

    def on_terminate(
        self, event: ConsoleTerminateEvent, event_name: str, dispatcher: Any
    ) -> None:
        """After an installer command: make the env hold the configured variant."""
        command = _installer_command(event.command)
        if command is None or not self._write_torch_cuda_lock(event, command):
            return
        self._check_lock(event, command)
        guard = self._guards.pop(id(command), None)
        if guard is None or guard.locked is None or event.exit_code != 0:
            return
        try:
            _after_run(guard, command, guard.locked)
        except TorchCudaError as error:
            write_error(event.io, str(error))
            event.set_exit_code(error.exit_code or 1)
        except Exception as error:  # noqa: BLE001 - a bug of ours must not read like Poetry crashing
            _write_unexpected(event.io, error)
            event.set_exit_code(1)

    def _write_torch_cuda_lock(
        self, event: ConsoleTerminateEvent, command: InstallerCommand
    ) -> bool:
        """After a command that rewrote poetry.lock: update torch-cuda.lock.

        Returns False when that failed (the exit code says so).
        """
        if id(command) not in self._relocks:
            return True
        self._relocks.discard(id(command))
        if event.exit_code != 0 or command.installer.is_dry_run():
            return True
        from poetry_torch_cuda.lockfile.service import settle

        try:
            settle(command.poetry, event.io)
        except TorchCudaError as error:
            write_error(event.io, str(error))
            event.set_exit_code(error.exit_code or 1)
            self._guards.pop(id(command), None)
            return False
        return True

    def _check_lock(
        self, event: ConsoleTerminateEvent, command: InstallerCommand
    ) -> None:
        """After ``lock``/``update``: warn when the variant lacks the locked torch."""
        ctx = self._lock_checks.pop(id(command), None)
        if ctx is None or event.exit_code != 0 or command.installer.is_dry_run():
            return
        from poetry_torch_cuda.reports.lock_view import show_lock_view

        try:
            show_lock_view(ctx.config, ctx.poetry, ctx.env, ctx.io)
        except TorchCudaError as error:  # a check only: never fail the lock for it
            ctx.io.write_error_line(
                f"{PREFIX}: could not check the lock's torch: {esc(str(error))}",
                verbosity=Verbosity.VERBOSE,
            )


def _after_run(
    guard: OperationGuard, command: InstallerCommand, locked: LockedState
) -> None:
    """The after-step: resolve ``auto``, install the variant's builds, prove them."""
    from poetry_torch_cuda.environment.installed import installed_environment
    from poetry_torch_cuda.install.reconcile import reconcile_environment
    from poetry_torch_cuda.install.request import InstallSettings
    from poetry_torch_cuda.machine.resolution import jetson_warning
    from poetry_torch_cuda.machine.resolution import refresher

    ctx, variant = guard.ctx, guard.variant
    if variant.kind == "auto":
        from poetry_torch_cuda.machine.resolution import report
        from poetry_torch_cuda.machine.resolution import resolve

        resolution = resolve(ctx.config, ctx.poetry, ctx.env, locked.versions)
        report(resolution, ctx.io)
        variant = resolution.variant
    machine = str(ctx.env.marker_env.get("platform_machine") or "")
    jetson = jetson_warning(ctx.config, variant, machine)
    if jetson is not None:
        ctx.warn(jetson)
    if command.installer.is_dry_run():
        from poetry_torch_cuda.install.reconcile import write_plan

        write_plan(ctx.config, variant, locked, ctx.env, ctx.io)
        return
    compiles = command.io.input.has_option("compile") and command.option("compile")
    settings = InstallSettings.of(ctx.poetry, ctx.io, compile_bytecode=bool(compiles))
    refresh = refresher(ctx.poetry, ctx.env, locked.versions)
    plan = reconcile_environment(
        ctx.config, variant, locked, ctx.env, ctx.io, settings, refresh=refresh
    )
    if plan.is_empty:
        ctx.io.write_line(
            f"{PREFIX}: {variant} already in place", verbosity=Verbosity.VERBOSE
        )
    from poetry_torch_cuda.reports.status import left_to_poetry
    from poetry_torch_cuda.reports.status import unknown_entries

    warnings = unknown_entries(ctx.config, locked.graph)
    warnings += left_to_poetry(ctx.config, installed_environment(ctx.env))
    for warning in warnings:
        ctx.warn(warning)
    if not plan.is_empty:  # a no-op run never verifies (nor imports proof/)
        from poetry_torch_cuda.proof.after import prove_change

        prove_change(ctx.poetry, ctx.env, ctx.io, ctx.config, variant, locked, plan)


def _installer_command(command: object) -> InstallerCommand | None:
    from poetry.console.commands.installer_command import InstallerCommand

    # ``plugins`` forwards no ``poetry self`` command: it decides that once.
    return command if isinstance(command, InstallerCommand) else None


def _write_unexpected(io: IO, error: Exception) -> None:
    """One line on an error of ours; the (scrubbed) traceback only with ``-vvv``."""
    if io.is_debug():
        trace = traceback.format_exception(type(error), error, error.__traceback__)
        write_error(io, "".join(trace))
    write_error(
        io,
        f"poetry-torch-cuda failed unexpectedly: {type(error).__name__}: {error}. "
        "Run the command again with -vvv for the traceback; "
        "POETRY_TORCH_CUDA_DISABLE=1 leaves torch to Poetry meanwhile.",
    )
