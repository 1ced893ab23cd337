"""What exactly pip is called with, decided before pip runs: every install comes through here.

The offline :class:`~poetry_torch_cuda.install.planning.Plan` says what must
change; :func:`prepare_install` adds what only the index and the locks know.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cleo.io.outputs.output import Verbosity
from packaging.version import Version

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.project.config import UNREACHABLE_HINT


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Mapping
    from typing import Any

    from cleo.io.io import IO
    from poetry.config.config import Config
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.lockfile.model import LockedFile
    from poetry_torch_cuda.project.config import TorchCudaConfig

#: pip's own opt-in to installing into an externally managed Python (PEP 668).
BREAK_SYSTEM = "PIP_BREAK_SYSTEM_PACKAGES"


@dataclass(frozen=True)
class InstallSettings:
    """How a command carries its changes out; what changes is the plan's."""

    #: The project: its poetry.lock, sources, configuration and torch-cuda.lock.
    poetry: Poetry | None = None
    #: Reinstall matching builds too (``sync --force``).
    force: bool = False
    #: Write ``.pyc`` files, as ``poetry install --compile`` does.
    compile_bytecode: bool = False

    @property
    def poetry_config(self) -> Config | None:
        """The project's Poetry configuration (credentials, the artifact cache)."""
        return None if self.poetry is None else self.poetry.config


@dataclass(frozen=True)
class InstallRequest:
    """Everything pip gets for one change: exactly ``files``, each with its lock's sha256.

    ``plan.force`` adds ``--force-reinstall``, ``settings.compile_bytecode``
    drops ``--no-compile``; afterwards the unused CUDA wheels of
    ``plan.sweepable`` are removed (``plan.remove`` when nothing is installed).
    """

    plan: Plan
    config: TorchCudaConfig
    settings: InstallSettings = InstallSettings()
    #: torch-cuda.lock's files for the family, poetry.lock's for Poetry's packages.
    files: tuple[LockedFile, ...] = ()
    #: Puts torch-cuda.lock back when this install locked the variant and failed.
    forget_lock: Callable[[], None] = lambda: None

    @property
    def requirements(self) -> list[str]:
        """What is asked for, as pip reads it (``torch==2.14.1+cu130``)."""
        return [target.pip_requirement for target in self.plan.install]


def prepare_install(
    plan: Plan, config: TorchCudaConfig, env: Env, io: IO, settings: InstallSettings
) -> InstallRequest:
    """The request that carries ``plan`` out: one build per specifier-only entry,
    torch-cuda.lock's files for the family (the variant locked first if missing),
    poetry.lock's for the Poetry packages it needs and the environment lacks.

    Raises:
        TorchCudaError: no build, no lock entry or no file; nothing was changed.
    """
    request = InstallRequest(plan, config, settings)
    if not plan.install:
        return request
    from poetry_torch_cuda.install.download import locked_files
    from poetry_torch_cuda.install.download import poetry_files
    from poetry_torch_cuda.lockfile.service import LockLookup

    poetry = settings.poetry
    assert poetry is not None, "an install needs the project (InstallSettings)"
    if any(target.version is None for target in plan.install):
        from poetry_torch_cuda.index.client import IndexClient

        client = IndexClient(settings.poetry_config, config.project_sources)
        plan = pin_specifiers(plan, config, client, env.marker_env)
    io.write_line(
        f"{PREFIX}: installing <c2>{', '.join(t.pip_requirement for t in plan.install)}</>",
        verbosity=Verbosity.VERBOSE,
    )
    lookup = LockLookup(poetry, io)
    try:  # the variant's entry of torch-cuda.lock, locked first when missing
        files = locked_files(lookup(plan.variant), plan, env)
        files += poetry_files(poetry, env, plan.lacking)
    except TorchCudaError as error:
        lookup.undo()  # an entry locked for this install stays only if it installed
        state = plan.unchanged
        if getattr(error, "cause", None):  # the index did not answer at all
            state += f" {UNREACHABLE_HINT}"
        raise TorchCudaError(f"{error}\n{state}") from None
    return dataclasses.replace(
        request, plan=plan, files=tuple(files), forget_lock=lookup.undo
    )


def pin_specifiers(
    plan: Plan,
    config: TorchCudaConfig,
    client: IndexClient,
    marker_env: Mapping[str, Any],
) -> Plan:
    """``plan`` with each specifier-only target pinned to one build of the variant:
    the installed public version where offered, else the newest that satisfies it.

    Raises:
        TorchCudaError: the variant's index has no build that satisfies it.
    """
    label = plan.variant.local_label
    pinned = []
    for target in plan.install:
        if target.version is not None:
            pinned.append(target)
            continue
        files = client.project(config.index_url(plan.variant), target.name)
        offered = files.versions(label, marker_env)
        builds = [
            version
            for version in offered
            if target.specifier is None
            or target.specifier.contains(version, prereleases=True)
        ]
        if not builds:
            shown = ", ".join(str(v) for v in offered[:6])
            raise TorchCudaError(
                f"the {plan.variant} index has no build of {target.name} that "
                f"satisfies {target.specifier or 'any version'} "
                f"({'it has ' + shown if shown else 'it has none'}); nothing was "
                f"changed. Loosen the specifier in [tool.poetry-torch-cuda] packages "
                f"or choose another variant."
            )
        held = plan.installed.version(target.name)
        public = None if held is None else Version(held).public
        chosen = next((v for v in builds if v.public == public), builds[0])
        pinned.append(dataclasses.replace(target, version=chosen))
    return dataclasses.replace(plan, install=tuple(pinned))


def refuse_system_python(env: Env, io: IO) -> None:
    """Refuse an externally managed Python (PEP 668) as pip does, unless opted in as for pip.

    Raises:
        TorchCudaError: the environment is externally managed and not opted in.
    """
    if env.is_venv():
        return
    marker = Path(env.paths.get("stdlib", "")) / "EXTERNALLY-MANAGED"
    opted_in = os.environ.get(BREAK_SYSTEM, "").lower() in ("1", "true", "yes", "on")
    if marker.is_file() and not opted_in:
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
