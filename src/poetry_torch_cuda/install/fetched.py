"""Install a request's locked files: fetch them all at once, verified, then pip them locally.

pip stays the installer, but it neither resolves nor downloads: it gets the
files the plugin already fetched and checked against their lock.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cleo.io.outputs.output import Verbosity

from poetry_torch_cuda.environment.installed import installed_environment
from poetry_torch_cuda.index.credentials import authenticator as new_authenticator
from poetry_torch_cuda.install.download import DownloadError
from poetry_torch_cuda.install.download import DownloadInterrupted
from poetry_torch_cuda.install.download import download_files
from poetry_torch_cuda.install.undo import UnfitInstall
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.project.config import ENV_INDEX_URL


if TYPE_CHECKING:
    from collections.abc import Sequence

    from cleo.io.io import IO
    from poetry.config.config import Config
    from poetry.utils.env import Env

    from poetry_torch_cuda.install.pip import PipRunner
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


def _download(
    files: Sequence[LockedFile],
    config: TorchCudaConfig,
    variant: Variant,
    io: IO,
    poetry_config: Config | None,
    asked: str,
) -> list[Path]:
    """Fetch ``files`` into Poetry's artifact cache, verified; their paths in order."""
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
    """Carry ``request`` out: its files fetched in parallel and verified, then pip, locally.

    Raises:
        UnfitInstall: the build needs other versions of what Poetry manages.
        DownloadError: a file could not be fetched or is not the locked file.
        PipError: pip failed.
    """
    plan = request.plan
    asked = ", ".join(request.requirements)
    files = request.files
    if files:
        paths = _download(
            files, request.config, plan.variant, io, request.poetry_config, asked
        )
        pip.install_files(
            [(path, item.sha256) for path, item in zip(paths, files)],
            force_reinstall=plan.force,
            compile_bytecode=request.compile_bytecode,
            asked=asked,
        )
    conflicts = installed_environment(env).unmet(plan.configured)
    if conflicts:
        raise UnfitInstall(
            f"pip could not install {asked}: {'; '.join(conflicts)}.\n"
            "This build needs other versions of packages Poetry manages; align "
            "them in pyproject.toml and run `poetry lock`, or choose another "
            "variant with `poetry torch-cuda switch <variant>`."
        )
