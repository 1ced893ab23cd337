"""Turn a failed pip run into one sentence on what failed and one on what to do.

pip words a missing page, a server error, a refused password and an unreachable
host alike ("No matching distribution found"): the index is then asked once,
as pip asked it (:meth:`~poetry_torch_cuda.index.client.IndexClient.ask_once`).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING
from urllib.parse import unquote
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from poetry_torch_cuda.urls import scrub


if TYPE_CHECKING:
    from collections.abc import Sequence

    from poetry_torch_cuda.index.credentials import IndexAccess

_NOT_FOUND = re.compile(r"No matching distribution found for (?P<requirement>\S+)")
_DISK = ("No space left on device", "File too large", "Read-only file system")
_HASHES = "DO NOT MATCH THE HASHES"
_CONFLICT = "The conflict is caused by:"


def diagnose(
    index: IndexAccess, lines: Sequence[str], returncode: int, timeout: float
) -> tuple[str, str]:
    """``(what failed, what to do)`` for a pip run that exited with ``returncode``."""
    text = "\n".join(lines)
    if _HASHES in text:
        files = [
            _file_name(lines[n - 1])
            for n, line in enumerate(lines)
            if n and "Expected sha256" in line
        ]
        local = [name for name in files if name.startswith("/")]
        if local:
            return (
                f"a file on this machine does not match its sha256 ({'; '.join(local)})",
                "It was damaged after it was checked: remove it and run the command again.",
            )
        return (
            f"a downloaded file does not match the sha256 hash the index lists for it{_detail(files)}",
            (
                "Nothing was installed from it. Run the command again; if it keeps "
                "failing, the mirror serves a corrupt or altered file: tell whoever "
                "runs it."
            ),
        )
    if any(marker in text for marker in _DISK):
        return (
            f"pip could not write to disk ({_os_error(lines)})",
            (
                "Free space (or lift the limit) where the environment and the "
                "temporary directory live, then run the command again."
            ),
        )
    if _CONFLICT in text:
        return (
            _conflict(lines),
            (
                "This build needs other versions of packages Poetry manages; align "
                "them in pyproject.toml and run `poetry lock`, or choose another "
                "variant with `poetry torch-cuda switch <variant>`."
            ),
        )
    missing = _NOT_FOUND.search(text)
    if missing is not None:
        return _probe(index, _project(missing["requirement"]), timeout)
    return pip_reason(lines), "Run the command with -v to see all of pip's output."


def _probe(index: IndexAccess, project: str, timeout: float) -> tuple[str, str]:
    """Ask the index for ``project``'s page once, as pip asked it: through the
    one index client, with pip's credentials (``index.pip_url``), pip's timeout
    for one attempt, pip's CA bundle variables, and no cache."""
    from poetry_torch_cuda.index import quick
    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.index.client import IndexUnavailableError

    client = IndexClient(None, timeout=timeout, refresh=True)
    try:
        page = client.ask_once(index.pip_url, project, verify=_ca_bundle())
    except IndexUnavailableError as error:
        if error.status is not None:
            return quick.http_failure(error.status, project, index)
        if error.cause == quick.TIMED_OUT:
            advice = (
                "The index is slow or unreachable. Run the command again later, or "
                "give pip more time with PIP_TIMEOUT=<seconds> (and PIP_RETRIES=<count>)."
            )
            return error.words or str(error), advice
        return error.words or scrub(str(error)), quick.advice(error)
    if not page.found:
        return quick.http_failure(page.status or 404, project, index)
    versions = [str(version) for version in reversed(page.versions())]
    shown = ", ".join(versions[-8:]) if versions else "none"
    return (
        f"the index has no build of {project} that matches (it offers {shown})",
        (
            "Choose a variant that has it (`poetry torch-cuda switch <variant>`), "
            "lock a version this variant offers, or check that the build exists for "
            "this Python and platform."
        ),
    )


def _ca_bundle() -> str | None:
    """The CA bundle pip's variables name (``PIP_CERT`` first), if any."""
    return next(
        (
            os.environ[name]
            for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
            if os.environ.get(name)
        ),
        None,
    )


def _project(requirement: str) -> str:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return canonicalize_name(re.split(r"[^A-Za-z0-9._-]", requirement)[0])


def _file_name(line: str) -> str:
    """The file of pip's "<req> from <url> (from -r …):" line: a local path, or a name."""
    found = re.search(r" from (\S+?)(?::?$| \()", line.strip())
    url = found[1] if found else ""
    if url.startswith("file:"):
        return unquote(urlsplit(url).path)
    return unquote(url.split("#", 1)[0].rsplit("/", 1)[-1]) or "a file"


def _detail(items: Sequence[str]) -> str:
    return f" ({'; '.join(items)})" if items else ""


def _os_error(lines: Sequence[str]) -> str:
    for line in lines:
        if any(marker in line for marker in _DISK):
            return line.strip().removeprefix("ERROR: ")
    return "an OS error"


def _conflict(lines: Sequence[str]) -> str:
    """pip's ERROR lines and the resolver's "conflict is caused by" lines."""
    causes: list[str] = []
    collecting = False
    for line in lines:
        if _CONFLICT in line:
            collecting = True
        elif collecting and not line.strip():
            break
        elif collecting:
            causes.append(line.strip())
    return f"{pip_reason(lines)} {_CONFLICT} {'; '.join(causes)}."


def pip_reason(lines: Sequence[str]) -> str:
    """pip's ERROR lines, or its whole ``error: …`` block (PEP 668's with its note)."""
    stripped = [line.strip() for line in lines if line.strip()]
    errors = [line for line in stripped if line.startswith("ERROR:")]
    start = next(
        (n for n, line in enumerate(stripped) if line.startswith("error:")), None
    )
    block = stripped[start:] if start is not None else stripped[-3:]
    return " ".join(errors or block or ["pip gave no reason"])
