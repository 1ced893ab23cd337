"""Carry out a plan that makes an environment hold the variant: install, sweep, report."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from poetry_torch_cuda.environment.envlock import state_dir
from poetry_torch_cuda.environment.installed import installed_environment
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install import signals
from poetry_torch_cuda.install import undo
from poetry_torch_cuda.install.planning import Plan
from poetry_torch_cuda.install.planning import find_orphans
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.tempfiles import read_json
from poetry_torch_cuda.tempfiles import write_json


if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from cleo.io.io import IO
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.environment.installed import InstalledEnvironment
    from poetry_torch_cuda.install.pip import PipRunner
    from poetry_torch_cuda.install.request import InstallRequest
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant


def apply_plan(request: InstallRequest, env: Env, io: IO, write_lock: bool) -> None:
    """Carry ``request`` out (any failure or interrupt puts the stash back), check the
    builds, sweep unused CUDA wheels, write the records; one summary line."""
    plan = request.plan
    shown = io.output.is_decorated() or io.is_verbose()
    echo = (lambda line: io.write_line(esc(line))) if shown else None
    pip = pip_for(env, echo)
    done: list[str] = []
    orphans = list(plan.remove)  # only when nothing is installed
    if orphans:
        undo.remove_distributions(env, orphans, pip.uninstall, pip_only=True)
    if plan.install:
        try:  # the one way back from any failure below, interrupts included
            names = {*plan.protected, *(item.name for item in request.files)}
            stash = undo.Stash.take(env, names, plan.installed)
        except OSError as error:
            raise TorchCudaError(
                f"could not keep the installed build's files to undo a failure: "
                f"{error}.\n{plan.unchanged} Free space where the environment is, "
                "then run the command again."
            ) from None
        try:  # SIGTERM and SIGHUP too, as Ctrl-C: put back, not killed half done
            with signals.handling(signals.stop):
                previous = undo.reusable_previous(env, request, io)
                if previous is not None:  # a switch back: links, no download, no pip
                    previous.put_back(env, pip.uninstall)
                    done.append("put back the previous build kept in the environment")
                    installed = installed_environment(env)
                else:
                    installed = _install_files(request, env, pip, io)
                done.append(_check_installed(plan, installed))
                targets = (*plan.install, *plan.satisfied)
                orphans = find_orphans(plan.sweepable, targets, installed, plan.poetrys)
                if orphans:  # the stash puts back what an in-process removal half did
                    undo.remove_distributions(env, orphans, pip.uninstall)
        except BaseException as error:  # interrupts and bugs too: put back, then say so
            failure = undo.undo(error, stash, plan, env, pip.uninstall)
            if isinstance(error, (TorchCudaError, OSError, KeyboardInterrupt)):
                raise failure from None
            raise
        # The change holds: a stop waits for its records, then says so.
        held = f"the run once {plan.variant} was installed: it {undo.UNVERIFIED}"
        with signals.stopping(lambda: held), signals.held():
            warning = undo.finish(stash, env, request)
            if write_lock:  # else the caller's (switch: with pyproject.toml)
                request.write_lock()
            project = str(request.poetry.pyproject_path.parent)
            owner = {"project": project, "variant": plan.variant.name}
            write_json(state_dir(env.path) / undo.OWNER, owner)
        if warning:
            io.write_error_line(f"<warning>{PREFIX}: {esc(warning)}</>")
    if orphans:
        wheels = "wheel" if len(orphans) == 1 else "wheels"
        done.append(
            f"removed {len(orphans)} unused CUDA {wheels} ({', '.join(orphans)})"
        )
    if done:
        io.write_line(f"{PREFIX}: {plan.variant}: {'; '.join(done)}")


def pip_for(env: Env, echo: Callable[[str], None] | None = None) -> PipRunner:
    """The env's pip (``echo``: its output line by line)."""
    from poetry_torch_cuda.install.pip import PipRunner

    return PipRunner(env.get_pip_command(), echo)


def _install_files(
    request: InstallRequest, env: Env, pip: PipRunner, io: IO
) -> InstalledEnvironment:
    """The request's files, fetched at once into Poetry's artifact cache and verified,
    then pip, locally; returns the environment pip left."""
    from poetry_torch_cuda.install.download import download_files

    config, variant, auth = request.config, request.plan.variant, request.auth
    last = [0, 0, 0, 0]

    def show(*state: int) -> None:
        done, total, files_done, files = last[:] = state
        io.overwrite(
            f"{PREFIX}: downloading {files} file{'s' if files != 1 else ''}: "
            f"{files_done} done, {undo.mb(done)} of {undo.mb(total)}"
        )

    terminal = io.output.is_decorated() and not io.output.is_quiet()
    begun = time.monotonic()
    try:
        paths = download_files(
            request.files,
            auth,
            concurrency=config.download_concurrency,
            progress=show if terminal else None,
            asked=request.asked,
            mirror=config.mirror(variant),  # checked by the lock's hashes
        )
    finally:
        auth.close()
        if terminal:
            io.overwrite(
                f"{PREFIX}: downloaded {last[2]} of {last[3]} files ({undo.mb(last[0])}) "
                f"in {time.monotonic() - begun:.1f} s"
            )
            io.write_line("")
    pip.install_files(
        [(path, item.sha256) for path, item in zip(paths, request.files)],
        request.asked,
        force_reinstall=request.plan.force,
        compile_bytecode=request.compile_bytecode,
    )
    installed = installed_environment(env)
    if conflicts := installed.unmet(request.plan.configured):
        raise TorchCudaError(
            f"pip could not install {request.asked}: {'; '.join(conflicts)}.\n"
            "This build needs other versions of packages Poetry manages; align "
            "them in pyproject.toml and run `poetry lock`, or choose another "
            "variant with `poetry torch-cuda switch <variant>`."
        )
    return installed


def describe_plan(plan: Plan, *, would: bool = False) -> str:
    """A one-line description of ``plan``; ``would`` words it for a dry run
    (``install``'s, ``sync``'s: the one wording of both)."""
    parts = []
    if plan.install:
        parts.append(
            f"install {', '.join(map(str, plan.install))} from {plan.index_shown}"
        )
    if plan.remove:
        parts.append(f"remove {', '.join(plan.remove)}")
    if plan.then_remove:
        parts.append(f"then remove {', '.join(plan.then_remove)}, which nothing needs")
    if parts:
        return ("would " if would else "") + "; ".join(parts)
    text = "no configured package to install"
    if kept := ", ".join(str(target) for target in plan.satisfied):
        text = f"{plan.variant} already installed ({kept})"
    return f"nothing would change: {text}" if would else text


def _check_installed(plan: Plan, installed: InstalledEnvironment) -> str:
    versions = []
    for target in plan.install:
        version = installed.version(target.name)
        if not target.is_satisfied_by(version, plan.variant):
            raise TorchCudaError(  # pip installs the locked file, or takes one for it
                f"pip was asked for {target}, but {target.name} reads as "
                f"{version or 'not installed'} after it: pip took what is installed "
                "for that build, and it is not (two .dist-info folders of it, or one "
                "written over); `poetry torch-cuda status` names what is wrong."
            )
        versions.append(f"{target.name} {version}")
    return f"installed {', '.join(versions)}"


def install_plan(
    plan: Plan,
    config: TorchCudaConfig,
    poetry: Poetry,
    env: Env,
    io: IO,
    *,
    compile_bytecode: bool = False,
    write_lock: bool = True,
) -> None:
    """Carry out ``plan`` (not empty) under the environment's lock; the entry of
    torch-cuda.lock it locked is written once it installed (``write_lock``)."""
    from poetry_torch_cuda.index.client import variant_authenticator
    from poetry_torch_cuda.install.request import InstallRequest
    from poetry_torch_cuda.install.request import prepare_install
    from poetry_torch_cuda.install.request import refuse_system_python

    refuse_system_python(env, io)
    if plan.install:
        _warn_other_owner(env, io, poetry.pyproject_path.parent, plan.variant)
    auth = variant_authenticator(config, plan.variant, poetry.config)
    request = InstallRequest(plan, config, poetry, auth, compile_bytecode)
    request = prepare_install(request, env, io)
    apply_plan(request, env, io, write_lock)


def _warn_other_owner(env: Env, io: IO, project: Path, variant: Variant) -> None:
    """Warn when the variant another project installed here is being replaced."""
    try:
        data = read_json(state_dir(env.path) / undo.OWNER, None)
        path, installed = str(data["project"]), str(data["variant"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if path != str(project) and installed != variant.name:
        io.write_error_line(
            f"<warning>{PREFIX}: this environment's torch build ({esc(installed)}) "
            f"was installed for the project in {esc(path)}; replacing it with "
            f"{variant} for this one. Projects sharing one environment with different "
            "variants undo each other on every install: give each its own environment, "
            "or the same variant.</>"
        )
