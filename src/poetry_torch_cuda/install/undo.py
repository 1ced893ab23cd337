"""What ``apply_plan`` needs around pip: an index client, and the way back on failure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.installed import installed_environment
from poetry_torch_cuda.install.rollback import Stash
from poetry_torch_cuda.install.rollback import roll_back


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    from packaging.utils import NormalizedName
    from poetry.config.config import Config
    from poetry.utils.env import Env

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.install.pip import PipRunner
    from poetry_torch_cuda.project.config import TorchCudaConfig


def index_client_for(
    config: TorchCudaConfig, poetry_config: Config | None
) -> IndexClient:
    """An index client with the project's Poetry config and sources (for credentials)."""
    from poetry.config.config import Config

    from poetry_torch_cuda.index.client import IndexClient

    return IndexClient(poetry_config or Config.create(), config.project_sources)


def take_stash(env: Env, names: Iterable[NormalizedName]) -> Stash | None:
    """Hard links to the installed files of ``names``, inside ``env``."""
    paths = [str(path) for path in env.site_packages.candidates]
    return Stash.take(paths, names, env.path)


def undo(
    error: Exception,
    stash: Stash | None,
    before: Mapping[NormalizedName, str],
    env: Env,
    pip: PipRunner,
) -> TorchCudaError:
    """Put ``env`` back as it was before pip ran; the error to raise says so."""
    cause = str(error) if isinstance(error, TorchCudaError) else f"{error}"
    if stash is None:
        return TorchCudaError(
            f"{cause}\nThe environment could not be put back (no copy of the previous "
            "build could be kept next to it); run the command again once the cause "
            "is fixed."
        )
    after = {
        name: dist.version for name, dist in installed_environment(env).all().items()
    }
    try:
        restored = roll_back(stash, before, after, pip.uninstall)
    except (TorchCudaError, OSError) as failure:
        return TorchCudaError(
            f"{cause}\nPutting the environment back failed too ({failure}); run "
            "`poetry torch-cuda sync` once the cause is fixed."
        )
    held = ", ".join(restored) or "the previous builds"
    wrapped = TorchCudaError(
        f"{cause}\nThe environment was put back as it was ({held}); nothing else "
        "changed."
    )
    wrapped.exit_code = getattr(error, "exit_code", 1) or 1
    return wrapped
