"""The locked files a change needs, fetched into Poetry's artifact cache, sha256-checked as they stream.

As Poetry's executor: worker threads stream each file (the index client's one download)
into a ``.part`` file named after its process (the next run sweeps those of dead ones),
renamed to the cache entry only when its hash is the lock's.
"""

from __future__ import annotations

import os
import threading
from contextlib import suppress
from dataclasses import replace
from typing import TYPE_CHECKING

from poetry_torch_cuda import tempfiles
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index import client
from poetry_torch_cuda.install import signals
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.urls import mask_url


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Sequence
    from pathlib import Path

    from poetry_torch_cuda.index.client import IndexAuthenticator
    from poetry_torch_cuda.lockfile.model import LockedFile

    #: Bytes done, bytes in all (known sizes), files done, files.
    Progress = Callable[[int, int, int, int], None]


class DownloadError(TorchCudaError):
    """A file could not be fetched or was not what the lock says."""


def download_files(
    items: Sequence[LockedFile],
    authenticator: IndexAuthenticator,
    *,
    concurrency: int = 16,
    progress: Progress | None = None,
    asked: str = "the variant",
    mirror: str | None = None,
) -> list[Path]:
    """Make every item a verified file in Poetry's artifact cache (``authenticator``'s
    config; a cached one whose sha256 is the lock's, as Poetry checks its archives);
    return their paths in order. ``mirror``: an index to find the files on by name.

    Raises:
        DownloadError: a file could not be fetched or differs from the lock (nothing
            of it is left in the cache), or a signal stopped the downloads
            (``exit_code`` 128 + its number).
    """
    # A URL's own ``user:password@`` (a source written with them) goes to the
    # authenticator, which sends it by its rules: never in what is logged or shown.
    items = [replace(i, url=authenticator.take_off(i.url)) for i in items]
    config = authenticator.config
    paths = [client.artifact(config, i.url, i.sha256, i.filename) for i in items]
    # One client for every file and page (each asked once), never its cache.
    pages = client.IndexClient(config, refresh=True, auth=authenticator)
    run = _Run(pages, dict(zip(paths, items)), asked, mirror)
    with signals.handling(signals.stop):
        try:
            for _ in range(min(max(1, concurrency), run.files)):
                threading.Thread(target=run.work, daemon=True).start()
            while run.files and not run.over.wait(0.2):
                if progress is not None:
                    progress(*run.state())
        except KeyboardInterrupt as stop:
            run.cancel()
            signum = signals.signum_of(stop)
            error = DownloadError(
                f"{signals.signal_name(signum)} interrupted the download of the files "
                f"for {asked}; nothing was installed and no partial file was kept. "
                "Run the command again to finish (files already downloaded are not "
                "fetched again)."
            )
            error.exit_code = 128 + signum
            raise error from None
        finally:
            if progress is not None and run.files:
                progress(*run.state())
    if run.error is not None:
        raise run.error
    return paths


def mirrored(pages: client.IndexClient, mirror: str | None, item: LockedFile) -> str:
    """The URL to fetch ``item`` at: the lock's, or the one a per-run ``mirror``'s page
    lists by name (its layout is its own) with the lock's sha256; else a DownloadError."""
    if mirror is None:
        return item.url
    page = pages.project(mirror, item.name)
    entry = next((e for e in page.entries if e.filename == item.filename), None)
    if entry is None or (entry.sha256 or item.sha256) != item.sha256:
        found = "lists other bytes for" if entry else "does not list"
        if item.filename in page.yanked:
            found = "has yanked (PEP 592)"
        raise DownloadError(
            f"the mirror {mask_url(mirror)} {found} {item.filename} (sha256 "
            f"{item.sha256} in {item.lock}). Use a mirror that holds the locked "
            "files, or unset POETRY_TORCH_CUDA_INDEX_URL."
        )
    return entry.url


class _Run:
    """What the worker threads of one :func:`download_files` call share."""

    def __init__(
        self,
        pages: client.IndexClient,
        unique: dict[Path, LockedFile],
        asked: str,
        mirror: str | None,
    ) -> None:
        self._pages, self._asked, self._mirror = pages, asked, mirror
        # pop() takes the largest first: the last to finish is not a big one.
        self._todo = sorted(unique.items(), key=lambda pair: pair[1].size or 0)
        self.files = len(self._todo)
        self._total = sum(item.size or 0 for item in unique.values())
        self._lock = threading.Lock()
        self._received = self._done = 0
        self._parts: set[Path] = set()
        self.over = threading.Event()  # all done, or cancelled
        self.error: BaseException | None = None

    def state(self) -> tuple[int, int, int, int]:
        return self._received, self._total, self._done, self.files

    def cancel(self) -> None:
        """Stop every download; no ``.part`` file is left or renamed after this."""
        with self._lock:  # over only after: the caller may look at the cache at once
            for part in self._parts:
                with suppress(OSError):
                    part.unlink()
            self.over.set()

    def work(self) -> None:
        """One worker: files off the list until none is left or one failed."""
        while not self.over.is_set():
            with self._lock:
                if not self._todo:
                    return
                path, item = self._todo.pop()
            try:
                self._fetch(item, path)
            except _Stopped:
                return
            except Exception as error:  # noqa: BLE001 - each is a DownloadError but bugs
                self.error = self.error or error
                self.cancel()
                return
            with self._lock:
                self._done += 1
                if self._done == self.files:
                    self.over.set()

    def _url(self, item: LockedFile) -> str:
        try:
            return mirrored(self._pages, self._mirror, item)
        except client.IndexUnavailableError as error:
            listing = f"{str(self._mirror).rstrip('/')}/{item.name}/"
            raise self._failure(item, listing, error) from None
        except DownloadError as error:
            raise self._error(str(error)) from None

    def _fetch(self, item: LockedFile, path: Path) -> None:
        from poetry.utils.helpers import get_file_hash

        if path.is_file() and get_file_hash(path) == item.sha256:
            self._received += path.stat().st_size
            return
        url = self._url(item)  # a damaged entry: fetched again, replaced at once
        with self._lock:  # after cancel() no part is made: it removed them all
            if self.over.is_set():
                raise _Stopped
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                handle, part = tempfiles.make(path.parent, f".{path.name}.", ".part")
            except OSError as error:
                raise self._local(item, path.parent, error) from None
            self._parts.add(part)
        try:
            with os.fdopen(handle, "wb") as stream:
                digest = self._pages.download(
                    url, stream, item.size, listed=False, tick=self._tick
                )
            if digest != item.sha256:
                said = f", the lock says {item.size}" if item.size else ""
                raise self._error(
                    f"refused {item.filename}: expected sha256 {item.sha256} "
                    f"({item.lock}), received sha256 {digest} "
                    f"({part.stat().st_size} bytes{said}) from {mask_url(url)}: "
                    f"{client.new_bytes(item.lock == LOCK_NAME)} pyproject.toml, "
                    f"poetry.lock and {LOCK_NAME} are left as they were.\nThe lock "
                    f"and the file disagree: if {item.lock} was edited (`git diff "
                    f"{item.lock}`), restore it."
                )
            with self._lock:
                if self.over.is_set():
                    raise _Stopped
                part.replace(path)
        except OSError as error:
            raise self._local(item, part, error) from None
        except client.IndexUnavailableError as error:
            raise self._failure(item, url, error) from None
        finally:
            with self._lock:
                self._parts.discard(part)
            with suppress(OSError):
                part.unlink()

    def _tick(self, size: int) -> None:
        if self.over.is_set():
            raise _Stopped
        self._received += size

    def _error(self, text: str) -> DownloadError:
        return DownloadError(f"could not install {self._asked}: {text}")

    def _failure(
        self, item: LockedFile, url: str, error: client.IndexUnavailableError
    ) -> DownloadError:
        return self._error(
            f"could not download {item.filename} from {mask_url(url)}: "
            f"{error.words or error}.\n{error.advice} Nothing was installed; files "
            "already downloaded are not fetched again."
        )

    def _local(self, item: LockedFile, path: Path, error: OSError) -> DownloadError:
        return self._error(
            f"could not write {item.filename} to Poetry's artifact cache: {path}: "
            f"{error.strerror or error}.\nMake the cache directory (cache-dir) "
            "writable, or free space in it, then run the command again."
        )


class _Stopped(Exception):
    pass
