"""What exactly pip is called with: decided here, before pip runs, in one object.

A :class:`~poetry_torch_cuda.install.planning.Plan` says what must change and
is made offline. When it has something to install, :func:`prepare_install`
adds what only the index and torch-cuda.lock know: Poetry's credentials for
the index, one concrete build for a specifier-only entry, and the locked files
with their sha256 (locking the variant first when torch-cuda.lock lacks it),
or else the constraints that pin every package outside the torch family. The
installer (:func:`~poetry_torch_cuda.install.reconcile.apply_plan` and, for
locked files, :func:`~poetry_torch_cuda.install.fetched.install_locked`)
carries the :class:`InstallRequest` out as it is, and
:mod:`~poetry_torch_cuda.install.pip` writes pip's argument lists from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cleo.io.outputs.output import Verbosity

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.planning import pins_for
from poetry_torch_cuda.output import PREFIX


if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from cleo.io.io import IO
    from poetry.config.config import Config
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.index.credentials import IndexAccess
    from poetry_torch_cuda.install.download import LockedFile
    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.lockfile.model import VariantLock
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant

    #: Gives a variant's entry of torch-cuda.lock, locking it first if needed.
    LockLookup = Callable[[Variant], VariantLock]


def _keep() -> None:
    """Nothing to put back."""


@dataclass(frozen=True)
class InstallRequest:
    """Everything pip gets for one change.

    With ``files``, pip installs exactly those, each checked against its
    sha256 (``--no-index --no-deps --require-hashes``); what the torch family
    then needs and the environment lacks comes from ``index`` at its locked
    version, every other package pinned as it is then. Without ``files``, pip
    installs ``requirements`` from ``index`` with ``constraints``. Either way
    ``force`` adds ``--force-reinstall`` and ``compile_bytecode`` drops
    ``--no-compile``. Afterwards the CUDA wheels of ``plan.sweepable`` that
    nothing needs any more are uninstalled (``plan.remove`` when nothing is
    installed).
    """

    #: The plan, its specifier-only targets pinned to one build of the variant.
    plan: Plan
    config: TorchCudaConfig
    #: The variant's index with its credentials (``index.shown`` in messages);
    #: ``None`` when nothing is to be installed.
    index: IndexAccess | None = None
    #: ``name==version`` for every package pip must not choose a version of.
    constraints: tuple[str, ...] = ()
    #: The variant's locked files (URL, sha256), when torch-cuda.lock is used.
    files: tuple[LockedFile, ...] | None = None
    compile_bytecode: bool = False
    #: Where downloads find Poetry's artifact cache and credentials.
    poetry_config: Config | None = None
    #: Puts torch-cuda.lock back when this install locked the variant and failed.
    forget_lock: Callable[[], None] = _keep

    @property
    def requirements(self) -> list[str]:
        """What is asked for, as pip reads it (``torch==2.14.1+cu130``)."""
        return [target.pip_requirement for target in self.plan.install]

    @property
    def force(self) -> bool:
        """Whether builds that match already are reinstalled too."""
        return self.plan.force


@dataclass(frozen=True)
class InstallSettings:
    """How a command carries its changes out; what changes is the plan's."""

    #: The project's Poetry configuration: credentials, the artifact cache
    #: (default: the user's global configuration).
    poetry_config: Config | None = None
    #: Reinstall matching builds too (``sync --force``).
    force: bool = False
    #: Write ``.pyc`` files, as ``poetry install --compile`` does.
    compile_bytecode: bool = False
    #: The project installing: recorded as the environment's owner.
    project: Path | None = None
    #: The variant's entry of torch-cuda.lock: then pip installs exactly its files.
    lock_for: LockLookup | None = None

    @classmethod
    def of(
        cls,
        poetry: Poetry,
        io: IO,
        *,
        force: bool = False,
        compile_bytecode: bool = False,
    ) -> InstallSettings:
        """A project's settings: its Poetry config, its directory, its torch-cuda.lock."""
        from poetry_torch_cuda.lockfile.lookup import LockLookup as EntryLookup

        return cls(
            poetry.config,
            force,
            compile_bytecode,
            poetry.pyproject_path.parent,
            EntryLookup(poetry, io),
        )


def prepare_install(
    plan: Plan, config: TorchCudaConfig, env: Env, io: IO, settings: InstallSettings
) -> InstallRequest:
    """The request that carries ``plan`` out for ``config`` with ``settings``.

    Only a plan that installs something asks anything: Poetry's credentials,
    the index (for a specifier-only entry), torch-cuda.lock (``settings.lock_for``
    locks the variant first when the file lacks it).

    Raises:
        TorchCudaError: no build satisfies a specifier, the variant cannot be
            locked, or the lock lacks a file; nothing was changed, and the
            message says what the environment holds.
    """
    request = InstallRequest(
        plan,
        config,
        compile_bytecode=settings.compile_bytecode,
        poetry_config=settings.poetry_config,
    )
    if not plan.install:
        return request
    from poetry_torch_cuda.index.credentials import index_access
    from poetry_torch_cuda.install.family import pin_specifiers
    from poetry_torch_cuda.install.undo import index_client_for

    index = index_access(config, plan.variant, settings.poetry_config)
    client = index_client_for(config, settings.poetry_config)
    plan = pin_specifiers(plan, config, client, env.marker_env, plan.installed)
    request = dataclasses.replace(request, plan=plan, index=index)
    io.write_line(
        f"{PREFIX}: installing <c2>{', '.join(request.requirements)}</> "
        f"from <comment>{index.shown}</>",
        verbosity=Verbosity.VERBOSE,
    )
    if settings.lock_for is not None:
        return _with_locked_files(request, settings.lock_for, env)
    pins = pins_for(plan.installed, plan.protected, plan.install, plan.locked_versions)
    return dataclasses.replace(request, constraints=tuple(pins))


def _with_locked_files(
    request: InstallRequest, lock_for: LockLookup, env: Env
) -> InstallRequest:
    """``request`` with the files of torch-cuda.lock this environment needs."""
    from poetry_torch_cuda.index.urls import without_credentials
    from poetry_torch_cuda.install.hashes import locked_files
    from poetry_torch_cuda.install.undo import versions_of
    from poetry_torch_cuda.install.undo import with_state

    plan = request.plan
    lock = _variant_lock(lock_for, plan)
    forget = getattr(lock_for, "undo", None)
    forget = forget if callable(forget) else _keep
    # Files the lock gives relative to the index come from the index configured
    # now (a mirror, POETRY_TORCH_CUDA_INDEX_URL); their hashes do not change.
    # Credentials travel in a header (install_locked_files), never in a URL.
    here = without_credentials(request.config.index_url(plan.variant))
    lock = dataclasses.replace(lock, index_url=here)
    try:
        files = locked_files(lock, plan, env, plan.installed, force=plan.force)
    except TorchCudaError as error:
        forget()  # an entry locked for this install stays only if it installed
        raise with_state(error, plan, versions_of(plan.installed), env) from None
    return dataclasses.replace(request, files=tuple(files), forget_lock=forget)


def _variant_lock(lock_for: LockLookup, plan: Plan) -> VariantLock:
    """The variant's entry of torch-cuda.lock (locked first when missing)."""
    from poetry_torch_cuda.install.undo import versions_of

    try:
        return lock_for(plan.variant)
    except TorchCudaError as error:
        versions = versions_of(plan.installed)
        names = [target.name for target in plan.install]
        held = ", ".join(f"{n} {versions[n]}" for n in names if n in versions)
        state = (
            f"Nothing changed: the environment still has {held}."
            if held
            else "No torch build was installed."
        )
        if getattr(error, "cause", None):  # the index did not answer at all
            from poetry_torch_cuda.project.config import UNREACHABLE_HINT

            state += f" {UNREACHABLE_HINT}"
        raise TorchCudaError(f"{error}\n{state}") from None
