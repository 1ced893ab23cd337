"""Fetch a variant's locked files in parallel into Poetry's artifact cache, hash-checked.

Every file is fetched through Poetry's ``Authenticator`` (its credentials,
certificates, proxies and retries), streamed to a temporary name beside its
cache entry while its sha256 is computed, and renamed into place only when
size and hash match what the lock says. A partial, corrupt or interrupted
download therefore never becomes a cache entry. The cache entry is where
Poetry's own ``ArtifactCache`` keeps a link with that URL and sha256.

Up to ``concurrency`` connections run at once. Where the server honours HTTP
Range requests, the largest files are split over several connections, so one
big wheel (torch, cuDNN) is not held to the speed of a single flow.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import os
import signal
import sys
import threading
from contextlib import contextmanager
from contextlib import suppress
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol
from urllib.parse import urlsplit

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.urls import mask_url


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Iterator
    from collections.abc import Mapping
    from collections.abc import Sequence
    from pathlib import Path

    from poetry.utils.authenticator import Authenticator

#: Connections at once unless the ``download-concurrency`` key says otherwise.
DEFAULT_CONCURRENCY = 16
#: Files smaller than this are never split over several connections.
MIN_PART_BYTES = 4 * 1024 * 1024
#: Range parts per connection: the bytes are cut into about this many parts
#: per connection, so the last connections to finish are not left with one
#: long file while the others idle (the download ends with its longest unit).
PARTS_PER_CONNECTION = 2
_HASH_BLOCK = 1024 * 1024
#: glibc malloc arenas once downloads start (glibc gives each busy thread one).
_MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, <malloc.h>
_CHUNK = 64 * 1024  # x connections: the memory the transfers hold at once
_PART_SUFFIX = ".part"
#: How often a part is tried again after its stream broke off mid-way.
_STREAM_RETRIES = 2


class LockedFile(Protocol):
    """One file to fetch (``lockfile.model.LockedFile`` is one).

    ``url`` is absolute and carries no credentials; ``size`` may be unknown.
    """

    @property
    def filename(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def size(self) -> int | None: ...


class DownloadError(TorchCudaError):
    """A file could not be fetched or was not what the lock says."""


class HashMismatchError(DownloadError):
    """The bytes received are not the locked file's."""


class DownloadInterrupted(DownloadError):
    """A signal stopped the downloads; ``exit_code`` is 128 + the signal number."""


class Progress(Protocol):
    """Receives the state of the downloads a few times a second."""

    def update(self, done: int, total: int, files_done: int, files: int) -> None:
        """Bytes done of ``total`` (known sizes), files done of ``files``."""

    def finish(self) -> None:
        """The downloads ended (successfully or not)."""


def cache_entry(cache_dir: Path, item: LockedFile) -> Path:
    """Where Poetry's artifact cache keeps ``item`` (its URL and sha256 are the key)."""
    from poetry.core.packages.utils.link import Link
    from poetry.utils.cache import ArtifactCache

    link = Link(f"{item.url}#sha256={item.sha256}")
    directory = ArtifactCache(cache_dir=cache_dir).get_cache_directory_for_link(link)
    return directory / item.filename


def download_files(
    items: Sequence[LockedFile],
    cache_dir: Path,
    authenticator: Authenticator,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    authorization: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    min_part_bytes: int = MIN_PART_BYTES,
    purpose: str = "the variant's files",
) -> list[Path]:
    """Make every item a verified file in ``cache_dir``; return their paths in order.

    Files already cached are not fetched again. ``authorization`` maps a host
    (``netloc``) to an ``Authorization`` header for URLs on it (credentials
    given in the index URL itself); Poetry's own credentials for the URL win.
    Files of at least 1.5 x ``min_part_bytes`` (and of their fair share of all
    bytes) are split over several connections when the server honours Range;
    ``min_part_bytes=0`` never splits.

    Raises:
        DownloadError: a file could not be fetched, or its bytes differ from
            the lock (nothing of it is left in the cache).
        DownloadInterrupted: SIGINT, SIGTERM or SIGHUP arrived meanwhile.
    """
    paths = [cache_entry(cache_dir, item) for item in items]
    missing = [(item, path) for item, path in zip(items, paths) if not path.is_file()]
    unique = list({path: (item, path) for item, path in missing}.values())
    if unique:
        run = _Run(
            authenticator,
            dict(authorization or {}),
            max(1, concurrency),
            progress,
            min_part_bytes,
        )
        run.fetch(unique, purpose)
    return paths


@dataclass(order=True)
class _Unit:
    """A byte range of one file, the unit one connection fetches."""

    priority: tuple[int, int]
    job: _Job = field(compare=False)
    start: int = field(compare=False)
    end: int | None = field(compare=False)  # inclusive; None: to the end, unsplit
    first: bool = field(compare=False, default=False)


class _Job:
    """One file being fetched: its temporary file, hash and remaining parts."""

    def __init__(self, item: LockedFile, path: Path) -> None:
        self.item = item
        self.path = path
        self.temporary = path.with_name(f".{path.name}.{os.getpid()}{_PART_SUFFIX}")
        self.received = 0
        self.parts_left = 1
        self.hasher: Any = hashlib.sha256()
        self.split = False
        self.done = False
        # A split file's parts land out of order: each is hashed from disk
        # once every byte before it is hashed (``hashed`` is that offset), so
        # the hash is ready when the last part lands instead of a re-read.
        self.hashed = 0
        self.landed: dict[int, int] = {}  # start -> end (exclusive) of parts landed
        self.hash_lock = threading.Lock()


class _Run:
    """One call of :func:`download_files`: a heap of units and the workers that take them."""

    def __init__(
        self,
        authenticator: Authenticator,
        authorization: dict[str, str],
        concurrency: int,
        progress: Progress | None,
        min_part_bytes: int,
    ) -> None:
        self._auth = authenticator
        self._authorization = authorization
        self._concurrency = concurrency
        self._progress = progress
        self._split = min_part_bytes > 0
        self._min_part = min_part_bytes
        self._lock = threading.Condition()
        self._heap: list[_Unit] = []
        self._order = itertools.count()
        self._jobs: list[_Job] = []
        self._error: BaseException | None = None
        self._cancelled = False
        self._part_bytes = min_part_bytes

    def fetch(self, missing: Sequence[tuple[LockedFile, Path]], purpose: str) -> None:
        sizes = [item.size or 0 for item, _ in missing]
        # A fraction of one connection's fair share; files well above it are split.
        share = -(-sum(sizes) // (self._concurrency * PARTS_PER_CONNECTION))
        self._part_bytes = max(self._min_part, share, 1)
        for item, path in sorted(missing, key=lambda pair: -(pair[0].size or 0)):
            job = _Job(item, path)
            self._jobs.append(job)
            first_end = None
            if self._split and self._splittable(item.size):
                first_end = self._part_bytes - 1
            self._push(_Unit((0, 0), job, 0, first_end, first=True))
        units = sum(
            -(-(item.size or 0) // self._part_bytes)
            if self._split and self._splittable(item.size)
            else 1
            for item, _ in missing
        )
        workers = [
            threading.Thread(
                target=self._work, name=f"torch-cuda-download-{n}", daemon=True
            )
            for n in range(min(self._concurrency, units))
        ]
        _limit_malloc_arenas()
        with _signals_raise() as received:
            try:
                for worker in workers:
                    worker.start()
                self._wait()
            except _Signalled as signalled:
                self._cancel()
                raise _interrupted(signalled.signum, purpose) from None
            except KeyboardInterrupt:
                self._cancel()
                signum = received[0] if received else signal.SIGINT
                raise _interrupted(signum, purpose) from None
            finally:
                if self._progress is not None:
                    self._progress.finish()
        if self._error is not None:
            raise self._error

    def _splittable(self, size: int | None) -> bool:
        return size is not None and size >= self._part_bytes * 3 // 2

    def _push(self, unit: _Unit) -> None:
        length = (
            (unit.end + 1 - unit.start)
            if unit.end is not None
            else ((unit.job.item.size or 0) - unit.start)
        )
        unit.priority = (-length, next(self._order))
        with self._lock:
            heapq.heappush(self._heap, unit)
            self._lock.notify()

    def _wait(self) -> None:
        total = sum(job.item.size or 0 for job in self._jobs)
        while True:
            with self._lock:
                finished = self._cancelled or all(job.done for job in self._jobs)
                if not finished:
                    self._lock.wait(0.2)
                    finished = self._cancelled or all(job.done for job in self._jobs)
                received = sum(job.received for job in self._jobs)
                files_done = sum(job.done for job in self._jobs)
            if self._progress is not None:
                self._progress.update(received, total, files_done, len(self._jobs))
            if finished:
                return

    def _cancel(self) -> None:
        """Stop everything; no temporary file is renamed after this returns."""
        with self._lock:
            self._cancelled = True
            self._heap.clear()
            for job in self._jobs:
                with suppress(OSError):
                    job.temporary.unlink()
            self._lock.notify_all()

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = error
        self._cancel()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._heap and not self._cancelled and not self._all_done():
                    self._lock.wait()
                if self._cancelled or not self._heap:
                    return
                unit = heapq.heappop(self._heap)
            try:
                self._fetch_unit(unit)
            except _Cancelled:
                return
            except DownloadError as error:
                self._fail(error)
            except Exception as error:  # noqa: BLE001 - any failure names the file
                item = unit.job.item
                self._fail(_failure(item, _describe(error, item.url)))

    def _all_done(self) -> bool:
        return all(job.done for job in self._jobs)

    def _fetch_unit(self, unit: _Unit) -> None:
        job = unit.job
        if unit.first:
            with self._lock:
                if self._cancelled:
                    return
                job.path.parent.mkdir(parents=True, exist_ok=True)
                job.temporary.open("wb").close()
        offset = unit.start
        attempts = 0
        while True:
            try:
                offset = self._stream(unit, offset)
                break
            except _StreamBroken as broken:
                attempts += 1
                if attempts > _STREAM_RETRIES:
                    raise _failure(job.item, broken.cause) from None
                if broken.resumable:
                    offset = broken.offset
                elif unit.start == 0 and not job.split:
                    offset = self._restart(job, broken.offset)
                else:
                    raise _failure(job.item, broken.cause) from None
        if job.split:
            self._hash_landed(job, unit.start, offset)
        with self._lock:
            job.parts_left -= 1
            last = job.parts_left == 0
        if last:
            self._finish(job)

    def _hash_landed(self, job: _Job, start: int, end: int) -> None:
        """Record the part ``[start, end)`` and hash what is contiguous from disk."""
        with self._lock:
            job.landed[start] = end
        with job.hash_lock, job.temporary.open("rb") as stream:
            while True:
                with self._lock:
                    landed = job.landed.pop(job.hashed, -1)
                    hasher = job.hasher
                if landed < 0:
                    return
                stream.seek(job.hashed)
                remaining = landed - job.hashed
                while remaining > 0:
                    if self._cancelled:
                        raise _Cancelled
                    block = stream.read(min(_HASH_BLOCK, remaining))
                    if not block:
                        return  # shorter than it said: _finish hashes the file
                    hasher.update(block)
                    remaining -= len(block)
                job.hashed = landed

    def _restart(self, job: _Job, reached: int) -> int:
        """Start a whole file over (the server ignored a Range to resume it)."""
        with self._lock:
            job.received -= reached
            job.hasher = hashlib.sha256()
        return 0

    def _stream(self, unit: _Unit, offset: int) -> int:
        """Fetch ``unit`` from ``offset`` into the temporary file; return the end offset."""
        import requests

        job = unit.job
        item = job.item
        headers = {"Accept-Encoding": "identity"}
        ranged = unit.end is not None or offset > 0
        if ranged:
            end = "" if unit.end is None else str(unit.end)
            headers["Range"] = f"bytes={offset}-{end}"
        host = urlsplit(item.url).netloc
        if host in self._authorization:
            headers["Authorization"] = self._authorization[host]
        try:
            response = self._auth.request(
                "get", item.url, raise_for_status=False, stream=True, headers=headers
            )
        except (requests.RequestException, OSError) as error:
            raise _failure(item, _describe(error, item.url)) from None
        except Exception as error:  # noqa: BLE001 - Poetry's "all attempts failed"
            raise _failure(item, _describe(error, item.url)) from None
        with response:
            status = response.status_code
            if status >= 400:
                raise _failure(item, _http_reason(status))
            if ranged and status != 206:
                if unit.first and offset == 0:
                    # The server sends the whole file: fetch it in this one unit.
                    unit.end = None
                else:
                    raise _StreamBroken(
                        offset, "the server ignored a Range request", resumable=False
                    )
            if unit.first and status == 206 and unit.end is not None:
                self._queue_rest(unit)
            return self._copy(unit, response, offset)

    def _queue_rest(self, unit: _Unit) -> None:
        """Range honoured: queue the other parts of the file (once)."""
        job = unit.job
        size = job.item.size or 0
        assert unit.end is not None
        unit.first = False
        starts = list(range(unit.end + 1, size, self._part_bytes))
        with self._lock:
            job.parts_left += len(starts)
            job.split = True
            # Parts arrive out of order: each is hashed from disk once the
            # bytes before it are (_hash_landed), this first one included.
            job.hasher = hashlib.sha256()
        for start in starts:
            end = min(start + self._part_bytes, size) - 1
            self._push(_Unit((0, 0), job, start, end))

    def _copy(self, unit: _Unit, response: Any, offset: int) -> int:
        import requests

        job = unit.job
        limit = job.item.size
        position = offset
        try:
            with job.temporary.open("r+b") as stream:
                stream.seek(offset)
                for chunk in response.iter_content(_CHUNK):
                    if self._cancelled:
                        raise _Cancelled
                    if not chunk:
                        continue
                    stream.write(chunk)
                    position += len(chunk)
                    if not job.split:
                        job.hasher.update(chunk)
                    with self._lock:
                        job.received += len(chunk)
                    if limit is not None and position > 2 * limit + _CHUNK:
                        # Far more than locked: stop filling the disk with it.
                        raise _mismatch(job.item, f"more than {position} bytes")
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.ConnectionError,
        ) as error:
            raise _StreamBroken(
                position, _describe(error, job.item.url), resumable=True
            ) from None
        except requests.exceptions.Timeout:
            raise _StreamBroken(
                position, _describe(TimeoutError(), job.item.url), resumable=True
            ) from None
        except OSError as error:
            raise _failure(
                job.item,
                (
                    f"could not write {job.temporary} ({error.strerror or error})",
                    "Free disk space in Poetry's cache directory (cache-dir).",
                ),
            ) from None
        expected_end = None if unit.end is None else unit.end + 1
        if expected_end is not None and position != expected_end:
            raise _StreamBroken(position, "the connection closed early", resumable=True)
        return position

    def _finish(self, job: _Job) -> None:
        item = job.item
        size = job.temporary.stat().st_size if job.temporary.exists() else 0
        complete = job.hashed == size if job.split else job.received == size
        digest = job.hasher.hexdigest() if complete else _file_sha256(job.temporary)
        if item.size is not None and size != item.size:
            raise _mismatch(
                item, f"sha256 {digest} ({size} bytes where the lock says {item.size})"
            )
        if digest != item.sha256.lower():
            raise _mismatch(item, f"sha256 {digest}")
        with self._lock:
            if self._cancelled:
                return
            job.temporary.replace(job.path)
            job.done = True
            self._lock.notify_all()


class _StreamBroken(Exception):
    def __init__(
        self, offset: int, cause: str | tuple[str, str], *, resumable: bool
    ) -> None:
        super().__init__(cause)
        self.offset = offset
        self.cause = (
            cause if isinstance(cause, tuple) else (cause, "Run the command again.")
        )
        self.resumable = resumable


class _Cancelled(Exception):
    pass


class _Signalled(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _signals_raise() -> Iterator[list[int]]:
    """SIGTERM and SIGHUP interrupt the main thread the way Ctrl-C does."""
    received: list[int] = []
    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        yield received
        return

    def interrupt(signum: int, frame: object) -> None:
        received.append(signum)
        raise _Signalled(signum)

    handled = (signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, interrupt) for signum in handled}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _limit_malloc_arenas() -> None:
    """Keep glibc from giving each download thread a malloc arena of its own.

    Every arena keeps what its thread freed: with 16 workers the Poetry
    process peaked about 20 MB higher for nothing (measured; with 2 arenas
    the download adds nothing to the peak, at the same speed). Applies once
    glibc is known to be the C library and ``MALLOC_ARENA_MAX`` is not set.
    """
    if sys.platform != "linux" or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return
    if not libc.startswith("glibc"):
        return
    import ctypes

    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, _MALLOC_ARENAS)


def _interrupted(signum: int, purpose: str) -> DownloadInterrupted:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    error = DownloadInterrupted(
        f"{name} interrupted the download of {purpose}; nothing was "
        "installed and no partial file was kept. Run the command again to finish "
        "(files already downloaded are not fetched again)."
    )
    error.exit_code = 128 + signum
    return error


def _failure(item: LockedFile, reason: tuple[str, str]) -> DownloadError:
    cause, advice = reason
    return DownloadError(
        f"could not download {item.filename} from {mask_url(item.url)}: {cause}.\n"
        f"{advice} Nothing was installed; files already downloaded are not "
        "fetched again."
    )


def _mismatch(item: LockedFile, received: str) -> HashMismatchError:
    from poetry_torch_cuda.install.hashes import refusal_message
    from poetry_torch_cuda.lockfile.model import LOCK_NAME

    what = (
        f"{item.filename}: expected sha256 {item.sha256} "
        f"({getattr(item, 'lock', LOCK_NAME)}), "
        f"received {received} from {mask_url(item.url)}"
    )
    return HashMismatchError(refusal_message([what]))


def _http_reason(status: int) -> tuple[str, str]:
    if status in (401, 403):
        return (
            f"the index refused access (HTTP {status})",
            (
                "Check the credentials Poetry has for the index's source: `poetry config "
                "http-basic.<source> <user> <password>`."
            ),
        )
    if status in (404, 410):
        return (
            f"the index has no such file (HTTP {status})",
            (
                "Check the index URL and the variant; if the index moved its files, "
                "run `poetry torch-cuda lock` again."
            ),
        )
    if status >= 500:
        return (
            f"the index failed with HTTP {status} (a server error)",
            "Run the command again later, or tell whoever runs the index.",
        )
    return (
        f"the index answered HTTP {status}",
        "Check the index URL, then run the command again.",
    )


def _describe(error: BaseException, url: str) -> tuple[str, str]:
    import requests
    from poetry.utils.constants import REQUESTS_TIMEOUT

    host = urlsplit(url).netloc.rsplit("@", 1)[-1]
    chain: list[BaseException] = [error]
    while chain[-1].__context__ is not None and len(chain) < 8:
        chain.append(chain[-1].__context__)  # Poetry's retries wrap the last error
    if any(
        isinstance(link, (requests.exceptions.ReadTimeout, TimeoutError))
        for link in chain
    ):
        return (
            f"{host} did not answer within {REQUESTS_TIMEOUT:g} s",
            (
                "The index is slow or unreachable. Run the command again later, or give "
                "it more time with POETRY_REQUESTS_TIMEOUT=<seconds>."
            ),
        )
    if isinstance(error, requests.exceptions.SSLError):
        return (
            f"the TLS connection to {host} failed",
            (
                "Check the certificates Poetry has for the index "
                "(`poetry config certificates.<source>.cert`)."
            ),
        )
    if isinstance(error, (requests.ConnectionError, OSError)) or (
        "attempts to connect" in str(error)  # Poetry's retries ran out
    ):
        return (
            f"could not connect to {host}",
            (
                "Check the network, any proxy settings, and the index URL "
                "(index-url, or the url of the source named by source)."
            ),
        )
    return (type(error).__name__, "Run the command again.")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def new_authenticator(
    config: object, sources: Iterable[tuple[str, str]], pool_size: int
) -> Authenticator:
    """Poetry's ``Authenticator`` for downloads, with the project's sources registered."""
    from poetry.utils.authenticator import Authenticator

    authenticator = Authenticator(
        config,  # type: ignore[arg-type]
        cache_id="poetry-torch-cuda",
        disable_cache=True,
        pool_size=pool_size,
    )
    for name, source_url in sources:
        if source_url and "{" not in source_url:
            authenticator.add_repository(name, source_url)
    return authenticator
