"""What exactly pip is called with, decided before pip runs: nothing no lock hashes."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cleo.io.outputs.output import Verbosity
from packaging.utils import InvalidWheelFilename
from packaging.utils import parse_wheel_filename
from packaging.version import InvalidVersion
from packaging.version import Version
from poetry.repositories.exceptions import RepositoryError
from requests import RequestException

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.client import unavailable
from poetry_torch_cuda.index.client import wheel_fits
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.lockfile.model import LockedFile
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.project.variants import public_version
from poetry_torch_cuda.project.variants import version_key


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Mapping
    from collections.abc import Sequence
    from typing import Any

    from cleo.io.io import IO
    from packaging.utils import NormalizedName
    from poetry.core.packages.package import Package
    from poetry.core.packages.utils.link import Link
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.index.client import IndexAuthenticator
    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.lockfile.model import VariantLock
    from poetry_torch_cuda.project.config import TorchCudaConfig

#: pip's own opt-in to installing into an externally managed Python (PEP 668).
BREAK_SYSTEM = "PIP_BREAK_SYSTEM_PACKAGES"


@dataclasses.dataclass(frozen=True)
class InstallRequest:
    """Everything pip gets for one change: exactly ``files``, each with its lock's sha256
    (``plan.force``: ``--force-reinstall``; then ``plan.sweepable``'s unused wheels go)."""

    plan: Plan
    config: TorchCudaConfig
    #: The project: its poetry.lock, sources, Poetry's configuration, torch-cuda.lock.
    poetry: Poetry
    #: The one authenticator of this install: its lock, its download.
    auth: IndexAuthenticator
    #: Write ``.pyc`` files, as ``poetry install --compile`` does.
    compile_bytecode: bool = False
    #: torch-cuda.lock's files for the family, poetry.lock's for Poetry's packages.
    files: tuple[LockedFile, ...] = ()
    #: Writes the entry this install locked to torch-cuda.lock (none: nothing to write).
    write_lock: Callable[[], None] = lambda: None

    @property
    def asked(self) -> str:
        """What is asked for, as pip reads it (``torch==2.14.1+cu130``)."""
        return ", ".join(str(target) for target in self.plan.install)


def prepare_install(request: InstallRequest, env: Env, io: IO) -> InstallRequest:
    """``request`` with its plan pinned and the locks' files (the variant locked first if
    missing); a TorchCudaError (no build, entry or file) when nothing was changed."""
    plan, poetry = request.plan, request.poetry
    if not plan.install:
        return request
    from poetry_torch_cuda.lockfile.service import locked_entry

    try:  # the variant's entry of torch-cuda.lock, locked first when missing
        entry, write = locked_entry(
            poetry, io, plan.variant, request.auth, env.marker_env
        )
        plan = pin_specifiers(plan, entry)
        io.write_line(
            f"{PREFIX}: installing <c2>{', '.join(map(str, plan.install))}</>",
            verbosity=Verbosity.VERBOSE,
        )
        files = locked_files(entry, plan, env) + poetry_files(poetry, env, plan.lacking)
    except TorchCudaError as error:
        raise TorchCudaError(f"{error}\n{plan.unchanged}") from None
    return dataclasses.replace(request, plan=plan, files=tuple(files), write_lock=write)


def locked_files(lock: VariantLock, plan: Plan, env: Env) -> list[LockedFile]:
    """Of the closure of ``plan``'s targets in ``lock``, the wheel pip prefers here of each
    package not installed at its locked version (unless forced) nor the project's own."""
    roots = [(t.name, str(t.version)) for t in plan.install]  # pinned: a version each
    asked = {name for name, _ in roots}
    return [
        _best_file(lock.files(package), package.name, package.version, env)
        for package in lock.closure(roots, env.marker_env)
        if package.name not in plan.own
        and (
            plan.force
            or package.name in asked
            or version_key(plan.installed.version(package.name) or "")
            != version_key(package.version)
        )
    ]


def poetry_files(
    poetry: Poetry, env: Env, wanted: Mapping[NormalizedName, str]
) -> list[LockedFile]:
    """Of each ``wanted`` package (name: version), poetry.lock's wheel for this env: the URL
    its source lists (as Poetry's ``Chooser`` picks it), poetry.lock's sha256."""
    found = []  # poetry.lock's packages are read only when one is wanted
    for package in poetry.locker.locked_repository().packages if wanted else ():
        version = package.version.text
        if wanted.get(package.name) != version:
            continue
        hashes = {f["file"]: str(f["hash"]) for f in package.files}
        candidates = [
            LockedFile(
                package.name,
                version,
                link.filename,
                link.url_without_fragment,
                hashes[link.filename].partition(":")[2].lower(),
                lock="poetry.lock",
            )
            for link in poetry_links(poetry, package)
            if link.is_wheel and hashes.get(link.filename, "").startswith("sha256:")
        ]
        found.append(_best_file(candidates, package.name, version, env, "poetry.lock"))
    return found


def poetry_links(poetry: Poetry, package: Package) -> list[Link]:
    """The files poetry.lock's source lists for ``package``, read as ``poetry install`` does
    (a TorchCudaError when the source did not answer, or refused)."""
    pool = poetry.pool
    name = package.source_reference if package.source_type else None
    if not name:  # as Poetry's Chooser: PyPI when the pool has it, else the first
        name = "pypi" if pool.has_repository("pypi") else pool.repositories[0].name
    repository = pool.repository(name)
    try:
        return repository.find_links_for_package(package)
    except (RepositoryError, RequestException, ValueError) as error:
        response = getattr(error.__context__ or error, "response", None)
        failure = error if response is None else response
        url = getattr(repository, "url", repository.name)
        found = unavailable(url, failure, project=package.name)
        raise TorchCudaError(
            f"could not read the files of {package.name} on {repository.name}, "
            f"poetry.lock's source: {found.words}.\n{found.advice}"
        ) from None


def _best_file(
    files: Sequence[LockedFile],
    name: str,
    version: str,
    env: Env,
    lock: str = LOCK_NAME,
) -> LockedFile:
    """Of ``files``, the wheel that fits ``env`` best: markers, then pip's tag order."""
    markers = env.marker_env

    def tags(file: LockedFile) -> frozenset[Any]:
        try:
            return parse_wheel_filename(file.filename)[3]
        except (InvalidWheelFilename, InvalidVersion):
            return frozenset()

    fitting = [file for file in files if wheel_fits(file.filename, markers)]
    if len(fitting) > 1:
        ranks = {tag: rank for rank, tag in enumerate(env.supported_tags)}
        fitting.sort(key=lambda f: min(ranks.get(t, len(ranks)) for t in tags(f)))
    if not fitting:
        have = sorted({f"{t.interpreter}-{t.platform}" for f in files for t in tags(f)})
        raise TorchCudaError(
            f"{lock} has no wheel of {name} {version} for this environment (Python "
            f"{markers.get('python_full_version')}, {markers.get('sys_platform')} "
            f"{markers.get('platform_machine')}): the index offered none when it was "
            f"locked, only {', '.join(have) or 'none'}. Use a Python those wheels are "
            f"for (`poetry env use`), or {'a variant or ' if lock == LOCK_NAME else ''}"
            f"a version of {name} with a wheel for this platform."
        )
    return fitting[0]


def pin_specifiers(plan: Plan, lock: VariantLock) -> Plan:
    """``plan`` with each specifier-only target pinned to a build of ``lock``: the installed
    public version if held there, else the newest."""
    pinned = []
    for target in plan.install:
        spec = target.specifier
        builds = [
            Version(package.version)
            for package in lock.packages
            if package.name == target.name
            and (spec is None or spec.contains(package.version, prereleases=True))
        ]
        if target.version is None and not builds:
            raise TorchCudaError(
                f"{LOCK_NAME} has no {target} for {plan.variant}; run "
                "`poetry torch-cuda lock` and then the command again."
            )
        held = plan.installed.version(target.name)
        public = held and public_version(held)  # not a version: none held
        same = [version for version in builds if version.public == public]
        chosen = target.version or max(same or builds)
        pinned.append(dataclasses.replace(target, version=chosen))
    return dataclasses.replace(plan, install=tuple(pinned))


def refuse_system_python(env: Env, io: IO) -> None:
    """Refuse an externally managed Python (PEP 668) as pip does, unless opted in as for pip."""
    if env.is_venv():
        return
    marker = Path(env.paths.get("stdlib", "")) / "EXTERNALLY-MANAGED"
    true = ("y", "yes", "t", "true", "on", "1")  # as pip's strtobool reads it
    if marker.is_file() and os.environ.get(BREAK_SYSTEM, "").lower() not in true:
        raise TorchCudaError(
            f"{env.path} is not a virtual environment but a Python its distribution "
            f"manages (PEP 668: {marker} exists), so pip refuses to install into it, "
            "and so does the plugin. Nothing was installed. Let Poetry create a "
            "virtual environment (`poetry config virtualenvs.create true`), or, to "
            f"install into this Python anyway, as pip allows, set {BREAK_SYSTEM}=1."
        )
    io.write_error_line(
        f"{PREFIX}: <warning>installing into {env.path}, which is not a virtual "
        "environment (virtualenvs.create = false)</>"
    )
