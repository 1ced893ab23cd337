"""Run the environment's own pip with argument lists, never a shell.

The index URL, credentials included, travels in ``PIP_INDEX_URL`` rather than
on the command line, so it never shows in ``/proc/<pid>/cmdline`` (the
environment of a process is readable by its own user only). pip runs in a
session of its own: a Ctrl-C or a ``SIGTERM`` sent to Poetry is passed on to
pip as ``SIGINT``, which makes pip roll back a half-done install before it
exits, instead of dying in the middle of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import deque
from contextlib import contextmanager
from contextlib import suppress
from typing import TYPE_CHECKING

from poetry_torch_cuda import tempfiles
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.credentials import IndexAccess
from poetry_torch_cuda.index.urls import scrub
from poetry_torch_cuda.install import envlock
from poetry_torch_cuda.install.diagnosis import diagnose
from poetry_torch_cuda.install.diagnosis import pip_reason
from poetry_torch_cuda.install.pip_policy import NEUTRALISED


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable
    from collections.abc import Iterator
    from collections.abc import Mapping
    from collections.abc import Sequence
    from pathlib import Path

#: pip's network timeout (seconds) and retries unless PIP_TIMEOUT/PIP_RETRIES say otherwise.
DEFAULT_TIMEOUT = 10
DEFAULT_RETRIES = 2
_KEPT_LINES = 400
#: What pip started ahead reads its requirements from (its stdin, a pipe).
_STDIN = "/dev/stdin"
#: Seconds a cancelled pip gets to exit on SIGTERM before it is killed.
_CANCEL_WAIT = 5.0


class PipError(TorchCudaError):
    """pip exited non-zero; the message carries what failed and what to do."""


class PipInterrupted(PipError):
    """pip was stopped by a signal; ``exit_code`` is 128 + the signal number."""


def pip_environment(
    base: Mapping[str, str], index: IndexAccess | None = None
) -> dict[str, str]:
    """The environment pip runs with: ``base`` plus the index, no prompts, timeouts.

    pip's own ``PIP_TIMEOUT`` / ``PIP_DEFAULT_TIMEOUT`` and ``PIP_RETRIES`` in
    ``base`` win over the plugin's defaults.
    """
    env = dict(base)
    env.update(NEUTRALISED)  # see pip_policy: the plugin picks index and versions
    env["PIP_NO_INPUT"] = "1"
    if "PIP_TIMEOUT" not in env and "PIP_DEFAULT_TIMEOUT" not in env:
        env["PIP_TIMEOUT"] = str(DEFAULT_TIMEOUT)
    env.setdefault("PIP_RETRIES", str(DEFAULT_RETRIES))
    if index is not None:
        env["PIP_INDEX_URL"] = index.pip_url
        if index.insecure_host is not None:
            hosts = env.get("PIP_TRUSTED_HOST", "").split()
            env["PIP_TRUSTED_HOST"] = " ".join([*hosts, index.insecure_host])
    return env


def pip_timeout(environ: Mapping[str, str]) -> float:
    """The network timeout pip uses with :func:`pip_environment` (seconds)."""
    for name in ("PIP_TIMEOUT", "PIP_DEFAULT_TIMEOUT"):
        with suppress(KeyError, ValueError):
            return max(float(environ[name]), 0.1)
    return float(DEFAULT_TIMEOUT)


class PipRunner:
    """Install and uninstall with one environment's pip."""

    def __init__(
        self,
        pip_command: Sequence[str],
        *,
        show_output: bool,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self._pip = list(pip_command)
        self._show_output = show_output
        self._echo = echo

    def install(
        self,
        requirements: Sequence[str],
        index: IndexAccess | str,
        constraints: Iterable[str],
        *,
        force_reinstall: bool = False,
        compile_bytecode: bool = False,
    ) -> None:
        """Install ``requirements`` from ``index``; ``constraints`` pin everything else.

        ``force_reinstall`` reinstalls them even when the same version is there.
        ``compile_bytecode``: write ``.pyc`` files, as ``poetry install --compile``
        does; Poetry's default (and pip's ``--no-compile``) is not to.

        Raises:
            PipInterrupted: a signal stopped pip (it rolled back what it had begun).
            PipError: pip failed; the message says why and what to do.
        """
        if isinstance(index, str):
            index = IndexAccess.from_url(index)
        with _constraints_file(constraints) as constraints_path:
            args = [
                *self._pip,
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--constraint",
                str(constraints_path),
                *(["--force-reinstall"] if force_reinstall else []),
                *([] if compile_bytecode else ["--no-compile"]),
                *requirements,
            ]
            env = pip_environment(os.environ, index)
            outcome = self._run(args, env)
        _raise_for_install(
            outcome, ", ".join(requirements), index.shown, index, pip_timeout(env)
        )

    def install_files(
        self,
        files: Sequence[tuple[Path, str]],
        *,
        force_reinstall: bool = False,
        compile_bytecode: bool = False,
        asked: str = "",
    ) -> None:
        """Install local, already verified wheel files: no index, no resolving.

        ``files`` are ``(path, sha256)``; pip checks each hash again
        (``--require-hashes``) and installs exactly these files (``--no-deps``).
        ``asked`` names them in messages (default: the file names).

        Raises:
            PipInterrupted: a signal stopped pip (it rolled back what it had begun).
            PipError: pip failed; the message says why.
        """
        asked = asked or ", ".join(path.name for path, _ in files)
        with _constraints_file(_hashed_lines(files)) as requirements:
            args = self._files_args(
                str(requirements), force_reinstall, compile_bytecode
            )
            outcome = self._run(args, pip_environment(os.environ))
        _raise_for_files(outcome, asked)

    def start_install_files(
        self,
        *,
        force_reinstall: bool = False,
        compile_bytecode: bool = False,
        asked: str,
    ) -> PendingInstall | None:
        """Start pip now for files that are still downloading: :meth:`install_files`
        in two steps, so pip's start-up (its imports) overlaps the download.

        pip gets the same arguments, its requirements file being its own stdin,
        which it blocks reading until :meth:`PendingInstall.install` writes the
        files' lines and closes it. None where there is no such pipe (not
        POSIX): there :meth:`install_files` is the way.
        """
        if os.name != "posix" or not os.path.exists(_STDIN):  # noqa: PTH110
            return None
        args = self._files_args(_STDIN, force_reinstall, compile_bytecode)
        process = self._spawn(args, pip_environment(os.environ), subprocess.PIPE)
        return PendingInstall(self, process, asked)

    def _files_args(
        self, requirements: str, force_reinstall: bool, compile_bytecode: bool
    ) -> list[str]:
        return [
            *self._pip,
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--no-index",
            "--no-deps",
            "--require-hashes",
            *(["--force-reinstall"] if force_reinstall else []),
            *([] if compile_bytecode else ["--no-compile"]),
            "--requirement",
            requirements,
        ]

    def uninstall(self, names: Sequence[str]) -> None:
        """Uninstall ``names``."""
        args = [*self._pip, "uninstall", "--disable-pip-version-check", "--yes", *names]
        outcome = self._run(args, pip_environment(os.environ))
        removing = ", ".join(names)
        _raise_for(
            outcome,
            f"removing {removing}",
            "",
            lambda lines, _: f"pip could not uninstall {removing}: {pip_reason(lines)}",
        )

    def _run(
        self, args: list[str], env: dict[str, str]
    ) -> tuple[int, list[str], int | None]:
        """Run pip; return its exit code, its (scrubbed) output and any signal received."""
        with self._spawn(args, env) as process:
            return self._follow(process)

    def _spawn(
        self, args: list[str], env: dict[str, str], stdin: int = subprocess.DEVNULL
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            args,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            encoding="utf-8",
            errors="replace",
            start_new_session=os.name == "posix",
            pass_fds=envlock.held_fds(),
        )

    def _follow(
        self, process: subprocess.Popen[str], feed: Callable[[], None] | None = None
    ) -> tuple[int, list[str], int | None]:
        """Show and keep pip's output until it exits, passing signals on to it.

        ``feed`` runs first, once the signals are passed on (it gives pip its input).
        """
        kept: deque[str] = deque(maxlen=_KEPT_LINES)
        with _forward_signals(process) as received:
            if feed is not None:
                feed()
            assert process.stdout is not None
            for raw in process.stdout:
                line = scrub(raw.rstrip("\n"))
                kept.append(line)
                if self._show_output:
                    self._write(line)
            returncode = process.wait()
        return returncode, list(kept), received[0] if received else None

    def _write(self, line: str) -> None:
        if self._echo is not None:
            self._echo(line)
        else:
            sys.stdout.write(line + "\n")


class PendingInstall:
    """pip started ahead of its files (:meth:`PipRunner.start_install_files`).

    It imports while the files download, then blocks reading its requirements
    from stdin; exactly one of :meth:`install` and :meth:`cancel` ends it.
    """

    def __init__(
        self, runner: PipRunner, process: subprocess.Popen[str], asked: str
    ) -> None:
        self._runner = runner
        self._process = process
        self._asked = asked

    def install(self, files: Sequence[tuple[Path, str]]) -> None:
        """Hand pip the verified ``files`` and follow it as :meth:`PipRunner.install_files`.

        Raises:
            PipInterrupted: a signal stopped pip (it rolled back what it had begun).
            PipError: pip failed; the message says why.
        """
        process = self._process
        stdin = process.stdin
        assert stdin is not None

        def feed() -> None:
            # pip that ended early (broken, killed) tells why by its exit and output.
            with suppress(OSError):
                stdin.writelines(f"{line}\n" for line in _hashed_lines(files))
            with suppress(OSError):
                stdin.close()

        with process:
            outcome = self._runner._follow(process, feed)
        _raise_for_files(outcome, self._asked)

    def cancel(self) -> None:
        """Stop pip before it was given any file: it installs nothing, shows nothing."""
        process = self._process
        with suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        if process.poll() is None:
            with suppress(ProcessLookupError):
                process.terminate()
            try:
                process.wait(timeout=_CANCEL_WAIT)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextmanager
def _forward_signals(process: subprocess.Popen[str]) -> Iterator[list[int]]:
    """Pass SIGINT/SIGTERM/SIGHUP received meanwhile on to pip as SIGINT.

    pip answers SIGINT by rolling back and exiting; a second signal is passed
    on as SIGTERM, a third as SIGKILL. Yields the signals received.
    """
    received: list[int] = []
    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        yield received
        return
    escalation = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        with suppress(ProcessLookupError):
            os.kill(process.pid, escalation[min(len(received), 3) - 1])

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, forward) for signum in handled}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _hashed_lines(files: Iterable[tuple[Path, str]]) -> list[str]:
    """pip's requirement lines for local files, each with the hash pip must check."""
    return [f"{path} --hash=sha256:{sha256}" for path, sha256 in files]


def _raise_for_files(outcome: tuple[int, list[str], int | None], asked: str) -> None:
    """Raise the one error for a failed ``pip install`` of downloaded files."""
    # No index is involved: the diagnosis only reads pip's output.
    local = IndexAccess.from_url("file:///")
    _raise_for_install(outcome, asked, "the downloaded files", local, 1.0)


def _raise_for_install(
    outcome: tuple[int, list[str], int | None],
    asked: str,
    source: str,
    index: IndexAccess,
    timeout: float,
) -> None:
    """Raise the one error for a ``pip install`` of ``asked`` from ``source`` that failed.

    ``index`` and ``timeout`` are what the diagnosis of pip's output weighs.
    """

    def could_not(lines: list[str], returncode: int) -> str:
        cause, advice = diagnose(index, lines, returncode, timeout)
        return f"pip could not install {asked} from {source}: {cause}\n{advice}"

    _raise_for(outcome, f"installing {asked}", f" from {source}", could_not)


def _raise_for(
    outcome: tuple[int, list[str], int | None],
    doing: str,
    where: str,
    could_not: Callable[[list[str], int], str],
) -> None:
    """Raise the error for pip's ``outcome`` while ``doing`` something, if it failed.

    Raises:
        PipInterrupted: a signal stopped pip (it rolled back what it had begun).
        PipError: pip was killed, or exited non-zero (``could_not`` words it
            from pip's output and exit code).
    """
    returncode, lines, signum = outcome
    if signum is not None:
        raise _interrupted(doing, signum)
    if returncode < 0:
        raise PipError(
            f"pip was killed by {_signal_name(-returncode)} while {doing}{where}. "
            "Run the command again to finish."
        )
    if returncode != 0:
        raise PipError(could_not(lines, returncode))


def _interrupted(doing: str, signum: int) -> PipInterrupted:
    error = PipInterrupted(
        f"{_signal_name(signum)} interrupted pip while {doing}; pip undid what "
        "it had begun. Run the command again to finish."
    )
    error.exit_code = 128 + signum
    return error


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@contextmanager
def _constraints_file(constraints: Iterable[str]) -> Iterator[Path]:
    # Named after this process, so a later run removes it if this one is killed.
    tempfiles.sweep(None, "poetry-torch-cuda-", ".txt")
    handle, path = tempfiles.make(None, "poetry-torch-cuda-", ".txt")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.writelines(f"{line}\n" for line in constraints)
        yield path
    finally:
        path.unlink(missing_ok=True)
