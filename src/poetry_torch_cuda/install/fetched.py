"""Install locked files the fast way: fetch them all at once, verified, then pip them locally.

pip stays the installer, but it neither resolves nor downloads: it gets the
files the plugin already fetched and checked (``--no-index --no-deps
--require-hashes``), so a variant switch costs the time of the parallel
download plus pip's unpacking.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cleo.io.outputs.output import Verbosity

from poetry_torch_cuda.index.credentials import authenticator as new_authenticator
from poetry_torch_cuda.install.download import DownloadError
from poetry_torch_cuda.install.download import DownloadInterrupted
from poetry_torch_cuda.install.download import download_files
from poetry_torch_cuda.install.installed import installed_environment
from poetry_torch_cuda.install.planning import pins_for
from poetry_torch_cuda.install.undo import UnfitInstall
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.project.config import ENV_INDEX_URL


if TYPE_CHECKING:
    from collections.abc import Sequence

    from cleo.io.io import IO
    from poetry.config.config import Config
    from poetry.utils.env import Env

    from poetry_torch_cuda.install.installed import InstalledEnvironment
    from poetry_torch_cuda.install.pip import PipRunner
    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.install.request import InstallRequest
    from poetry_torch_cuda.lockfile.model import LockedFile
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant


class TerminalProgress:
    """One line, rewritten in place: files and megabytes done, like Poetry's installer."""

    def __init__(self, io: IO) -> None:
        self._io = io
        self._begun = time.monotonic()
        self._shown = ""
        self._last = (0, 0, 0, 0)

    def update(self, done: int, total: int, files_done: int, files: int) -> None:
        """Rewrite the line with the current state."""
        self._last = (done, total, files_done, files)
        line = (
            f"{PREFIX}: downloading {files} file{'s' if files != 1 else ''}: "
            f"{files_done} done, {_mb(done)} of {_mb(total)}"
        )
        if line != self._shown:
            self._io.overwrite(line)
            self._shown = line

    def finish(self) -> None:
        """End the line (it stays as the record of the download)."""
        done, _, files_done, files = self._last
        seconds = time.monotonic() - self._begun
        self._io.overwrite(
            f"{PREFIX}: downloaded {files_done} of {files} files ({_mb(done)}) "
            f"in {seconds:.1f} s"
        )
        self._io.write_line("")


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def install_locked_files(
    files: Sequence[LockedFile],
    config: TorchCudaConfig,
    variant: Variant,
    pip: PipRunner,
    io: IO,
    *,
    poetry_config: Config | None = None,
    force_reinstall: bool = False,
    compile_bytecode: bool = False,
    asked: str = "",
) -> list[Path]:
    """Fetch ``files`` into Poetry's artifact cache, then have pip install exactly them.

    ``asked`` says what they are for in messages (``torch==2.14.1+cu130, …``).
    Returns the cached paths handed to pip.

    Raises:
        DownloadError: a file could not be fetched or is not the locked file.
        PipError: pip failed (the message says why).
    """
    asked = asked or ", ".join(item.filename for item in files)
    # pip starts now, its imports overlapping the download; it gets the files
    # once every one is verified, or is stopped before it installs anything.
    pending = (
        pip.start_install_files(
            force_reinstall=force_reinstall,
            compile_bytecode=compile_bytecode,
            asked=asked,
        )
        if files
        else None
    )
    try:
        paths = _download(files, config, variant, io, poetry_config, asked)
    except BaseException:
        if pending is not None:
            pending.cancel()
        raise
    if pending is not None:
        pending.install([(path, item.sha256) for path, item in zip(paths, files)])
    else:
        pip.install_files(
            [(path, item.sha256) for path, item in zip(paths, files)],
            force_reinstall=force_reinstall,
            compile_bytecode=compile_bytecode,
            asked=asked,
        )
    return paths


def _download(
    files: Sequence[LockedFile],
    config: TorchCudaConfig,
    variant: Variant,
    io: IO,
    poetry_config: Config | None,
    asked: str,
) -> list[Path]:
    """Fetch ``files`` into Poetry's artifact cache, verified; their paths in order.

    Raises:
        DownloadError: a file could not be fetched or is not the locked file.
    """
    from poetry.config.config import Config

    poetry_config = poetry_config if poetry_config is not None else Config.create()
    concurrency = config.download_concurrency
    sources = [(n, u) for n, u in config.project_sources if n != config.source]
    if config.source is not None:
        sources.append((config.source, config.index_url(variant)))
    authenticator = new_authenticator(poetry_config, sources, concurrency)
    authenticator.take_off(config.index_url(variant))  # credentials written in it
    # The per-run mirror: files found there by name, checked by the lock's hashes.
    mirror = config.index_url(variant) if os.environ.get(ENV_INDEX_URL) else None
    show = io.output.is_decorated() and not io.output.is_quiet()
    begun = time.monotonic()
    try:
        paths = download_files(
            files,
            Path(poetry_config.artifacts_cache_directory),
            authenticator,
            concurrency=concurrency,
            progress=TerminalProgress(io) if show else None,
            purpose=f"the files for {asked}",
            mirror=mirror,
        )
    except DownloadInterrupted:
        raise
    except DownloadError as error:
        wrapped = type(error)(f"could not install {asked}: {error}")
        wrapped.exit_code = error.exit_code
        raise wrapped from None
    finally:
        authenticator.close()
    io.write_line(
        f"{PREFIX}: {len(files)} verified files ready in "
        f"{time.monotonic() - begun:.1f} s ({concurrency} connections at most)",
        verbosity=Verbosity.VERBOSE,
    )
    return paths


def install_locked(request: InstallRequest, env: Env, pip: PipRunner, io: IO) -> None:
    """Carry ``request`` out from its locked files: fetched in parallel, then pip, locally.

    The locked files are the torch family only (``--no-deps``): what it needs
    besides and lacks here (sync into an empty environment) comes from the
    index at its locked version, every other package pinned as it is then.

    Raises:
        UnfitInstall: the installed build needs other versions of packages
            Poetry manages (pip no longer checks that with ``--no-deps``).
        DownloadError: a file could not be fetched or is not the locked file.
        PipError: pip failed.
    """
    assert request.files is not None and request.index is not None
    plan = request.plan
    install_locked_files(
        request.files,
        request.config,
        plan.variant,
        pip,
        io,
        poetry_config=request.poetry_config,
        force_reinstall=request.force,
        compile_bytecode=request.compile_bytecode,
        asked=", ".join(request.requirements),
    )
    installed = installed_environment(env)
    missing = _missing_requirements(installed, plan)
    if missing:
        pip.install(
            missing,
            request.index,
            pins_for(installed, plan.protected, (), plan.locked_versions),
            compile_bytecode=request.compile_bytecode,
        )
    _check_requirements(installed_environment(env), plan, request.requirements)


def _missing_requirements(installed: InstalledEnvironment, plan: Plan) -> list[str]:
    """``name==locked`` for what the installed torch family requires and lacks.

    Only Poetry's kind of package (``filelock``): the family's CUDA wheels are
    the lock's, never fetched unlocked.
    """
    protected = plan.protected
    family = [name for name in protected | plan.configured if installed.get(name)]
    wanted = installed.needs(family) - protected
    missing = sorted(name for name in wanted if installed.get(name) is None)
    versions = plan.locked_versions
    return [
        f"{name}=={versions[name]}" if name in versions else name for name in missing
    ]


def _check_requirements(
    installed: InstalledEnvironment, plan: Plan, asked: list[str]
) -> None:
    """Refuse a build that needs other versions of what Poetry manages.

    Raises:
        UnfitInstall: an installed version does not satisfy the build.
    """
    conflicts = installed.unmet(plan.configured)
    if conflicts:
        raise UnfitInstall(
            f"pip could not install {', '.join(asked)}: {'; '.join(conflicts)}.\n"
            "This build needs other versions of packages Poetry manages; align "
            "them in pyproject.toml and run `poetry lock`, or choose another "
            "variant with `poetry torch-cuda switch <variant>`."
        )
