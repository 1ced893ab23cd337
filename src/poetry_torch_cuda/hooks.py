"""Listeners on Poetry's installer commands: keep Poetry off the torch family, then
reconcile; the locker and verification are imported only when a change needs them."""

from __future__ import annotations

import sys
import traceback
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from cleo.io.outputs.output import Verbosity

from poetry_torch_cuda.context import RunContext
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.planning import build_targets
from poetry_torch_cuda.install.planning import protected_for
from poetry_torch_cuda.install.reconcile import describe_plan
from poetry_torch_cuda.machine.resolution import left_to_pypi
from poetry_torch_cuda.machine.resolution import report
from poetry_torch_cuda.machine.resolution import resolve
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.output import write_error
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.config import require_config
from poetry_torch_cuda.project.locked import LockedState
from poetry_torch_cuda.project.locked import locked_graph
from poetry_torch_cuda.project.locked import refuse_unindexed
from poetry_torch_cuda.project.protection import merge_graphs
from poetry_torch_cuda.reports.status import left_to_poetry
from poetry_torch_cuda.reports.status import unknown_entries


if TYPE_CHECKING:
    from collections.abc import Callable

    from cleo.events.console_command_event import ConsoleCommandEvent
    from cleo.events.console_terminate_event import ConsoleTerminateEvent
    from packaging.utils import NormalizedName
    from poetry.console.commands.installer_command import InstallerCommand
    from poetry.installation.operations.operation import Operation

#: The commands that rewrite poetry.lock, after which torch-cuda.lock follows (as
#: after an install that wrote a missing poetry.lock).
RELOCKS = ("lock", "add", "remove", "update")


class OperationGuard:
    """Wraps ``Executor.execute``: skips the torch family's operations and records what
    this run resolves (``locked``), which the after-step installs in the variant's build."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.locked: LockedState | None = None

    def execute(
        self, execute: Callable[[list[Operation]], int], operations: list[Operation]
    ) -> int:
        """Poetry's ``execute``, the protected operations skipped, after refusing, before
        any change, a torch-cuda.lock that cannot be read."""
        resolved = self.capture(operations)
        self.mark(operations, resolved)
        uninstalls = [o for o in operations if o.job_type == "uninstall"]
        self.removed = [o.package.name for o in uninstalls if not o.skipped]  # Poetry's
        if not all(operation.skipped for operation in operations):
            from poetry_torch_cuda.lockfile.model import lock_path

            lock_path(self.ctx.poetry)  # a no-op run imports no lock code
        # Keep the pre-run edges: once Poetry removed torch, its cu12 wheels
        # must still be recognised as the torch family's, to be swept.
        before = self.ctx.installed.graph(self.ctx.config.package_names)
        self.locked = replace(resolved, graph=merge_graphs(resolved.graph, before))
        try:
            return execute(operations)
        finally:
            self.ctx.changed()  # Poetry installed and removed: read the env again

    def capture(self, operations: list[Operation]) -> LockedState:
        """What this run resolves: the configured packages' versions, the graph."""
        configured, poetry = self.ctx.config.package_names, self.ctx.poetry
        versions: dict[NormalizedName, str] = {}
        # Packages installed from the lock carry no dependencies; the lock has them.
        graph = locked_graph(poetry)
        for operation in operations:
            package = operation.package
            if operation.job_type == "uninstall":
                continue
            if package.requires:
                graph[package.name] = [dep.name for dep in package.requires]
            kept = not operation.skipped or operation.skip_reason == "Already installed"
            if package.name in configured and kept:
                refuse_unindexed([package], self.ctx.config.packages)  # as resolved
                versions[package.name] = package.version.text
        # Installed ones this run leaves alone (a group left out) move too, as in sync.
        named = {operation.package.name for operation in operations}
        alone = [name for name in configured - named if self.ctx.installed.get(name)]
        if alone and poetry.locker.is_locked():  # a dry run writes no lock
            held = self.ctx.locked.versions
            versions.update({name: held[name] for name in alone if name in held})
        # The project's own dependencies are Poetry's, but for those this run
        # removes (a group left out): the family keeps what it needs of them.
        removed = {o.package.name for o in operations if o.job_type == "uninstall"}
        direct = frozenset(d.name for d in poetry.package.all_requires) - removed
        return LockedState(versions, graph, direct=direct)

    def mark(self, operations: list[Operation], resolved: LockedState) -> None:
        """Skip the operations on the protected packages but the removal of a configured
        one the plugin installs nothing of (the project dropped it)."""
        config, installed = self.ctx.config, self.ctx.installed
        protected = protected_for(config, resolved, installed)
        versions = resolved.versions
        targets = build_targets(config.packages, versions, config.variant, installed)
        dropped = config.package_names - {target.name for target in targets}
        for operation in operations:
            name = operation.package.name
            if operation.skipped or name not in protected:
                continue
            if operation.job_type == "uninstall" and name in dropped:
                continue  # the project dropped it: Poetry may remove it
            operation.skip(f"managed by poetry-torch-cuda ({config.variant})")


class CommandHooks:
    """The COMMAND and TERMINATE listeners; each command (``lock`` may be called by
    another) keeps its own run."""

    def __init__(self) -> None:
        self._runs: dict[int, tuple[RunContext, OperationGuard | None, bool]] = {}

    def on_validate(self, event: ConsoleCommandEvent) -> None:
        """Before Poetry touches anything (even the virtualenv): a bad config fails here."""
        load_config(event.command.poetry.pyproject.data)  # type: ignore[attr-defined]

    def on_command(self, event: ConsoleCommandEvent) -> None:
        """Before an installer command runs: guard its executor."""
        command: InstallerCommand = event.command  # type: ignore[assignment]
        config = require_config(command.poetry.pyproject.data)  # _forward: it has one
        ctx = RunContext(command.poetry, command.env, event.io, config)
        # `auto` is resolved in the after-step, once the lock says which torch.
        guard = None
        if relocks := command.name in RELOCKS or not command.poetry.locker.is_locked():
            from poetry_torch_cuda.lockfile.model import lock_path

            lock_path(command.poetry)  # refused before Poetry writes poetry.lock
        if (no_builds := left_to_pypi(config.variant, sys.platform)) is not None:
            ctx.warn(f"{no_builds}.")  # torch-cuda.lock follows poetry.lock still
        elif command.name != "lock":
            guard = OperationGuard(ctx)
            executor = command.installer.executor
            executor.execute = partial(guard.execute, executor.execute)  # type: ignore[method-assign]
        self._runs[id(command)] = (ctx, guard, relocks)

    def on_terminate(self, event: ConsoleTerminateEvent) -> None:
        """After a successful installer command: torch-cuda.lock follows a new
        poetry.lock, then the env is made to hold the configured variant."""
        command: InstallerCommand = event.command  # type: ignore[assignment]
        run = self._runs.pop(id(command), None)
        if run is None or event.exit_code != 0:
            return
        (ctx, guard, relocks), dry = run, command.installer.is_dry_run()
        try:
            if relocks and dry:  # where the run says "wrote torch-cuda.lock (…)"
                from poetry_torch_cuda.lockfile.model import LOCK_NAME

                would = f"would update {LOCK_NAME} to follow poetry.lock"
                ctx.io.write_line(f"{PREFIX}: {would}")
            elif relocks:
                from poetry_torch_cuda.install import signals
                from poetry_torch_cuda.lockfile.service import left
                from poetry_torch_cuda.lockfile.service import settle

                keep = None if command.name == "lock" else ctx.env.marker_env
                what = "the update of torch-cuda.lock to follow poetry.lock."
                with signals.stopping(lambda: f"{what} {left(ctx.poetry)}"):
                    settle(ctx.poetry, ctx.io, keep=keep)  # an install's wheels stay
            if command.name in ("lock", "update") and not dry:
                _check_lock(ctx)
            if guard is not None and guard.locked is not None:
                ctx.locked = guard.locked  # what this Poetry run resolved
                if dry:  # as if Poetry had removed
                    ctx.installed = ctx.installed.without(guard.removed)
                _after_run(ctx, command, relocks)
        except TorchCudaError as error:
            write_error(event.io, str(error))
            event.set_exit_code(error.exit_code or 1)
        except Exception as error:  # noqa: BLE001 - a bug of ours must not read like Poetry crashing
            if debug := event.io.is_debug():
                write_error(event.io, traceback.format_exc())
            see = "" if debug else " Run the command again with -vvv for the traceback;"
            write_error(
                event.io,
                f"poetry-torch-cuda failed unexpectedly: {type(error).__name__}: "
                f"{error}.{see} POETRY_TORCH_CUDA_DISABLE=1 leaves torch to Poetry "
                "meanwhile.",
            )
            event.set_exit_code(1)


def _check_lock(ctx: RunContext) -> None:
    """After ``lock``/``update``: what the lock means for the variant (a check only)."""
    from poetry_torch_cuda.reports.lock_view import show_lock_view

    try:
        show_lock_view(ctx)
    except TorchCudaError as error:
        ctx.io.write_error_line(
            f"{PREFIX}: could not check the lock's torch: {esc(str(error))}",
            verbosity=Verbosity.VERBOSE,
        )


def _after_run(ctx: RunContext, command: InstallerCommand, relocks: bool) -> None:
    """The after-step: resolve ``auto``, install the variant's builds, prove them."""
    config, versions = ctx.config, ctx.locked.versions
    variant = config.variant  # auto decides for a torch in this run or installed
    if versions or any(ctx.installed.get(name) for name in config.package_names):
        resolution = resolve(config, versions, ctx)
        report(resolution, config, ctx.env, ctx.io)
        variant = resolution.variant
    compiles = command.io.input.has_option("compile") and command.option("compile")
    dry, lock = command.installer.is_dry_run(), False if relocks else None  # settle's
    plan = ctx.reconcile(
        variant, dry=dry, lock=lock, compile_bytecode=bool(compiles), refresh=True
    )
    if dry:
        ctx.io.write_line(f"{PREFIX}: {esc(describe_plan(plan, would=True))}")
        return
    if plan.is_empty:
        ctx.io.write_line(
            f"{PREFIX}: {plan.variant} already in place", verbosity=Verbosity.VERBOSE
        )
    warnings = unknown_entries(ctx.config, ctx.locked.graph)  # as a wait left it
    for warning in warnings + left_to_poetry(ctx.config, ctx.installed):
        ctx.warn(warning)
    if plan.install:  # a run that installs nothing never verifies (nor imports proof/)
        from poetry_torch_cuda.proof.after import prove_change

        prove_change(ctx, plan)
