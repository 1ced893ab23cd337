"""One run of a command or a hook: what every step of it reads, each view built
the first time a step asks and shared by every later step of the same run."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from functools import cached_property
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from poetry_torch_cuda.environment.envlock import environment_lock
from poetry_torch_cuda.environment.installed import installed_environment
from poetry_torch_cuda.index.client import project_client
from poetry_torch_cuda.install.planning import plan_for
from poetry_torch_cuda.install.reconcile import install_plan
from poetry_torch_cuda.install.reconcile import pip_for
from poetry_torch_cuda.install.undo import recover
from poetry_torch_cuda.machine.detection import assess
from poetry_torch_cuda.machine.resolution import probe
from poetry_torch_cuda.machine.resolution import resolve
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.locked import locked_state
from poetry_torch_cuda.project.locked import reread
from poetry_torch_cuda.project.selection import LockView
from poetry_torch_cuda.project.selection import Selection
from poetry_torch_cuda.tempfiles import beside


if TYPE_CHECKING:
    from collections.abc import Iterator

    from cleo.io.io import IO
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.environment.installed import InstalledEnvironment
    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.locked import LockedState
    from poetry_torch_cuda.project.variants import Variant


@dataclass
class RunContext:
    """Poetry, the environment, the output and the configuration of one run."""

    poetry: Poetry
    env: Env
    io: IO
    config: TorchCudaConfig
    #: The groups and extras the command's options select (none: what is held).
    selection: Selection = field(default_factory=Selection)
    #: Ask the index again instead of using its cached pages (``--refresh``).
    refresh_index: bool = False
    #: Write the entry an install locked once it holds (switch: with pyproject.toml).
    write_lock: bool = True
    #: The packages this run warned no install moves (auto's next try plans again).
    unmoved: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.config = self.config.here(self.env)  # the entries that apply here

    @cached_property
    def locked(self) -> LockedState:
        """The lock's view: the configured packages held or selected, the graph (a hook
        sets what its Poetry run resolved instead); a TorchCudaError without a lock."""
        return self.view.state(self.config.package_names, self.installed)

    @cached_property
    def view(self) -> LockView:
        """The lock as this run's options see it (``locked``, why nothing moved)."""
        return LockView(self.poetry, self.env, self.selection, self.installs)

    @cached_property
    def installs(self) -> LockedState:
        """What the lock installs into the env with its default groups (one
        ``Transaction`` per run, shared by the lock's views and the fleet)."""
        return locked_state(self.poetry, self.env, self.config.packages)

    @cached_property
    def installed(self) -> InstalledEnvironment:
        """The environment as this run found it (read again after changing it)."""
        return installed_environment(self.env)

    def changed(self, *views: str) -> None:
        """The environment changed (Poetry's executor, the plugin's install): the
        next step that asks reads :attr:`installed` (and ``views``) again."""
        for view in ("installed", *views):
            self.__dict__.pop(view, None)

    @cached_property
    def client(self) -> IndexClient:
        """The run's one index client: Poetry's configuration, the project's sources."""
        return project_client(self.poetry, refresh=self.refresh_index)

    def warn(self, message: str) -> None:
        """One warning line on stderr."""
        self.io.write_error_line(f"<warning>{PREFIX}: {esc(message)}</>")

    def warn_unmoved(self, plan: Plan) -> None:
        """Status's warning of what no install moves, once a run for each package."""
        for name, (warning, *_) in plan.unmoved(self.poetry).items():
            if name not in self.unmoved:
                self.unmoved.add(name)
                self.warn(warning)

    def plan(self, variant: Variant, *, force: bool = False) -> Plan:
        """What :meth:`reconcile` does from the run's views (a dry run's plan)."""
        return plan_for(self.config, variant, self.locked, self.installed, force=force)

    def after_wait(self) -> Variant | None:
        """The project read again after a wait, its variant (None: no table, or disabled)."""
        poetry = reread(self.poetry)
        if (config := load_config(poetry.pyproject.data)) is None:
            return None
        relocked = poetry.locker.lock_data != self.poetry.locker.lock_data
        self.poetry, self.config = poetry, config.here(self.env)
        self.changed(*(("locked", "view", "installs") if relocked else ()))
        return resolve(self.config, self.locked.versions, self).variant

    def reconcile(
        self,
        variant: Variant,
        *,
        dry: bool = False,
        force: bool = False,
        lock: bool | None = None,
        compile_bytecode: bool = False,
        refresh: bool = False,
        sweep: bool = False,
    ) -> Plan:
        """Make the env hold ``variant`` (``dry``: plan it) by the one locked install path:
        a build the driver does not run warned of, its missing entry locked first (by the
        install; ``lock``: also when nothing installs, or never), the plan made under the
        env's lock from the env as it is then (``refresh``: after a wait, reread);
        ``sweep``: pip's leftovers go too (``undo.recover``)."""
        if dry:
            plan = self.plan(variant, force=force)
            self._before_install(plan, lock, dry=True)
            self.warn_unmoved(plan)
            return plan
        env, io = self.env, self.io
        with self.holding(variant, force=force) as waited:
            beside(self.poetry.pyproject_path)  # a killed switch's pyproject.toml
            if undone := recover(env, lambda n: pip_for(env).uninstall(n), sweep=sweep):
                io.write_line(
                    f"{PREFIX}: undid a killed run's work: {', '.join(undone)}"
                )
            self.changed()  # the plan is made from the env as it is now
            if waited and refresh and (now := self.after_wait()) is not None:
                variant = now
            plan = self.plan(variant, force=force)
            self._before_install(plan, lock)
            if not plan.is_empty:
                install_plan(
                    plan,
                    self.config,
                    self.poetry,
                    env,
                    io,
                    compile_bytecode=compile_bytecode,
                    write_lock=self.write_lock,
                )
            self.warn_unmoved(plan)
        if not plan.is_empty:  # else: installed is what it planned from, read then
            self.changed()
        return plan

    @contextmanager
    def holding(self, variant: Variant, *, force: bool = False) -> Iterator[bool]:
        """The env's lock for a move to ``variant`` (yields whether it waited); the
        driver asked first if the plan warns: a hang holds no run (kept for the process)."""
        if self._warns(self.plan(variant, force=force)):
            probe(self.env)
        with environment_lock(self.env.path, self.io) as waited:
            yield waited

    def _warns(self, plan: Plan) -> bool:
        """Whether ``plan`` installs the configured CUDA build: the driver's warning."""
        variant = plan.variant
        return (
            bool(plan.install)
            and variant.kind == "cuda"
            and variant == self.config.variant
        )

    def _before_install(self, plan: Plan, lock: bool | None, dry: bool = False) -> None:
        """A build the driver does not run warned of; the entry locked first where no
        install locks it (a dry run's, or ``lock``: also when nothing installs)."""
        variant = plan.variant
        if self._warns(plan):
            machine = probe(self.env)
            torch = self.locked.versions.get(canonicalize_name("torch"))
            warning = assess(variant, machine, torch).warning
            if warning and machine.nvidia and not machine.jetson:  # else: report's
                self.warn(warning)
        if (plan.install if lock is None else lock) and (dry or not plan.install):
            from poetry_torch_cuda.lockfile.service import locked_entry

            locked_entry(self.poetry, self.io, variant, None, self.env.marker_env, dry)
