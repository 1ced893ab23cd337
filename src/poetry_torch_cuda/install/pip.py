"""Run the environment's own pip with argument lists, never a shell.

pip installs verified local files as if from an index (``--no-index
--find-links <folder>``, ``name==version --hash=sha256:…`` lines), so it records
no direct URL and shows no cache path. It runs in a session of its own; a
signal sent to Poetry reaches it as ``SIGINT`` (pip stops; the stash undoes).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote
from urllib.parse import urlsplit

from packaging.utils import parse_wheel_filename

from poetry_torch_cuda import tempfiles
from poetry_torch_cuda.environment import envlock
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install import signals
from poetry_torch_cuda.install.undo import link
from poetry_torch_cuda.urls import scrub


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Mapping
    from collections.abc import Sequence

#: The start of the name of pip's folder of links (``<it><pid>.<random>.links``).
_LINKS = "poetry-torch-cuda-"


def pip_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The environment pip runs with: ``base``, no prompts, and none of the user's
    settings that would add files or pins of their own to the plugin's install (pip
    reads variables after its config files); every other one (proxy, cert...) is kept."""
    return {**base, "PIP_FIND_LINKS": "", "PIP_CONSTRAINT": "", "PIP_NO_INPUT": "1"}


class PipRunner:
    """Install and uninstall with one environment's pip; ``echo`` shows its output."""

    def __init__(
        self, pip_command: Sequence[str], echo: Callable[[str], None] | None = None
    ) -> None:
        self._pip = list(pip_command)
        self._echo = echo

    def install_files(
        self,
        files: Sequence[tuple[Path, str]],
        asked: str,
        *,
        force_reinstall: bool = False,
        compile_bytecode: bool = False,
    ) -> None:
        """Install exactly ``files`` (``(path, sha256)``, verified): no index, no deps;
        ``asked`` names them in messages. TorchCudaError: why pip failed, what stopped it."""
        # A folder of links to the files, after this pid (killed runs' go first).
        tempfiles.sweep(Path(tempfile.gettempdir()), _LINKS, ".links")
        folder = Path(tempfile.mkdtemp(".links", f"{_LINKS}{os.getpid()}."))
        requirements = folder / "requirements.txt"
        try:
            lines = []
            for path, sha256 in files:
                name, version, _, _ = parse_wheel_filename(path.name)
                try:  # a symbolic link, else the stash's hard link or copy
                    (folder / path.name).symlink_to(path)
                except OSError:
                    link(path, folder / path.name)
                lines.append(f"{name}=={version} --hash=sha256:{sha256}\n")
            requirements.write_text("".join(lines), encoding="utf-8")
        except OSError as error:  # a full TMPDIR, say: worded as pip's own
            returncode, lines = 1, [f"{error.strerror}: {folder}"]
        else:
            args = [*self._pip, "install", "--disable-pip-version-check", "--no-index"]
            args += ["--find-links", str(folder), "--no-deps", "--require-hashes"]
            args += ["--force-reinstall"] if force_reinstall else []
            args += [] if compile_bytecode else ["--no-compile"]
            args += ["--requirement", str(requirements)]
            doing = f"installing {asked} from the downloaded files"
            returncode, lines = self._run(doing, args)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if returncode:
            cause, advice = diagnose(lines)
            for path, _ in files:  # pip names its links to them, gone by now
                cause = cause.replace(str(folder / path.name), str(path))
            raise TorchCudaError(
                f"pip could not install {asked} from the downloaded files: {cause}\n{advice}"
            )

    def uninstall(self, names: Sequence[str]) -> None:
        """Uninstall ``names``."""
        args = [*self._pip, "uninstall", "--disable-pip-version-check", "--yes", *names]
        returncode, lines = self._run(f"removing {', '.join(names)}", args)
        if returncode:
            raise TorchCudaError(
                f"pip could not uninstall {', '.join(names)}: {pip_reason(lines)}"
            )

    def _run(self, doing: str, args: list[str]) -> tuple[int, list[str]]:
        """Run pip, echoing its scrubbed output if asked; its exit code and output."""
        kept: list[str] = []
        received: list[int] = []

        def forward(signum: int) -> None:  # to pip as SIGINT, then SIGTERM, SIGKILL
            received.append(signum)  # (POSIX only: Windows has no SIGKILL)
            escalation = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
            with suppress(ProcessLookupError):
                os.kill(process.pid, escalation[min(len(received), 3) - 1])

        with (
            subprocess.Popen(
                args,
                env=pip_environment(os.environ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                encoding="utf-8",
                errors="replace",
                start_new_session=os.name == "posix",
                pass_fds=envlock.held_fds(),
            ) as process,
            signals.handling(forward),
        ):
            assert process.stdout is not None
            for raw in process.stdout:
                line = scrub(raw.rstrip("\n"))
                kept.append(line)
                if self._echo is not None:
                    self._echo(line)
            returncode = process.wait()
        if received or returncode < 0:
            name = signals.signal_name(received[0] if received else -returncode)
            how = f"{name} interrupted pip" if received else f"pip was killed by {name}"
            error = TorchCudaError(
                f"{how} while {doing}. Run the command again to finish."
            )
            error.exit_code = 128 + received[0] if received else None
            raise error
        return returncode, kept


_DISK = ("No space left on device", "File too large", "Read-only file system")


def diagnose(lines: Sequence[str]) -> tuple[str, str]:
    """``(what failed, what to do)`` for a failed pip run over local, verified files:
    no index, no resolver, so a damaged file, the disk, or pip's own words."""
    if "DO NOT MATCH THE HASHES" in "\n".join(lines):
        found = (re.search(r" from file:(\S+?)(?::?$| \()", line) for line in lines)
        files = [unquote(urlsplit("file:" + f[1]).path) for f in found if f]
        return (
            f"a file on this machine does not match its sha256 ({'; '.join(files)})",
            "It was damaged after it was checked: remove it and run the command again.",
        )
    disk = next((line for line in lines if any(m in line for m in _DISK)), None)
    if disk is not None:
        return (
            f"pip could not write to disk ({disk.strip().removeprefix('ERROR: ')})",
            (
                "Free space (or lift the limit) where the environment and the "
                "temporary directory live, then run the command again."
            ),
        )
    return pip_reason(lines), "Run the command with -v to see all of pip's output."


def pip_reason(lines: Sequence[str]) -> str:
    """pip's ERROR lines, or its whole ``error: …`` block (PEP 668's with its note)."""
    stripped = [line.strip() for line in lines if line.strip()]
    errors = [line for line in stripped if line.startswith("ERROR:")]
    start = next(
        (n for n, line in enumerate(stripped) if line.startswith("error:")), None
    )
    block = stripped[start:] if start is not None else stripped[-3:]
    return " ".join(errors or block or ["pip gave no reason"])
