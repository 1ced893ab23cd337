"""Turn a failed pip run into one sentence on what failed and one on what to do.

pip reports a missing page, a server error, a refused password or an
unreachable host all alike ("No matching distribution found"), so after such
a failure the plugin asks the index itself for the project's page once,
through the index client (:meth:`~poetry_torch_cuda.index.client.IndexClient.ask_once`,
Poetry's HTTP stack) with pip's credentials, CA bundle and timeout, and
reports what it answered.
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

from poetry_torch_cuda.index.urls import scrub


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
            _file_name(lines[number - 1]) if number else "a file"
            for number, line in enumerate(lines)
            if "Expected sha256" in line
        ]
        return (
            (
                "a downloaded file does not match the sha256 hash the index lists for "
                f"it{_detail(files)}"
            ),
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
    """Ask the index for ``project``'s page once, as pip asked it.

    Through the index client (Poetry's HTTP stack and page parsers), with
    pip's view of the index: only the credentials pip was given (in
    ``index.pip_url``; never Poetry's others), pip's timeout for one attempt,
    pip's CA bundle variables, and no cache or memory of earlier answers.
    """
    from poetry.config.config import Config

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.index.client import IndexUnavailableError
    from poetry_torch_cuda.index.quick import TIMED_OUT

    host = urlsplit(index.url).netloc
    client = IndexClient(Config(), timeout=timeout, poetry_credentials=False)
    try:
        page = client.ask_once(index.pip_url, project, verify=_ca_bundle())
    except IndexUnavailableError as error:
        if error.status is not None:
            return _http_status(index, project, error.status)
        if error.cause == TIMED_OUT:
            return _timed_out(host, timeout)
        if error.cause is not None:
            return (
                f"could not connect to {host} ({error.cause})",
                (
                    "Check the network, any proxy settings, and the index URL "
                    "(index-url, or the url of the source named by source)."
                ),
            )
        return (
            f"could not read {index.shown}/{project}/ ({scrub(str(error))})",
            "Check the network and the index URL, then run the command again.",
        )
    if not page.found:
        return _http_status(index, project, page.status or 404)
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


def refused(index: IndexAccess, project: str, status: int) -> tuple[str, str]:
    """``(cause, advice)`` for an HTTP error status the index answered."""
    return _http_status(index, project, status)


def _http_status(index: IndexAccess, project: str, status: int) -> tuple[str, str]:
    if status in (401, 403):
        if index.has_credentials:
            name = index.source or "<source>"
            variable = "POETRY_HTTP_BASIC_" + (
                re.sub(r"\W", "_", name.upper()) if index.source else "<SOURCE>"
            )
            advice = (
                "Check the credentials Poetry has for it: `poetry config "
                f"http-basic.{name} <user> <password>` or {variable}_USERNAME "
                f"and {variable}_PASSWORD."
            )
        else:
            advice = (
                "It wants credentials: declare it as a [[tool.poetry.source]], set "
                'source = "<name>" in [tool.poetry-torch-cuda] and give them with '
                "`poetry config http-basic.<name> <user> <password>`."
            )
        return f"the index refused access (HTTP {status})", advice
    if status == 404:
        return (
            f"the index has no page for {project} (HTTP 404)",
            (
                "Check the index URL and the variant: "
                f"{index.shown.rstrip('/')}/{project}/ should list its wheels."
            ),
        )
    return http_failure(status, f" for {project}")


def http_failure(status: int, about: str = "") -> tuple[str, str]:
    """``(cause, advice)`` for an HTTP error that is neither refused access nor a
    missing page: a server error, or another status (``about``: `` for torch``)."""
    if status >= 500:
        cause = f"the index failed with HTTP {status} (a server error)"
        return cause, "Run the command again later, or tell whoever runs the index."
    cause = f"the index answered HTTP {status}{about}"
    return cause, "Check the index URL, then run the command again."


def _timed_out(host: str, timeout: float) -> tuple[str, str]:
    return (
        f"{host} did not answer within {timeout:g} s",
        (
            "The index is slow or unreachable. Run the command again later, or give "
            "pip more time with PIP_TIMEOUT=<seconds> (and PIP_RETRIES=<count>)."
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
    """``torch-2.14.1+cu130-py3-none-any.whl`` from pip's "<req> from <url>:" line."""
    url = line.strip().rstrip(":").rsplit(" ", 1)[-1]
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
