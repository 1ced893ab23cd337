"""What ``install --dry-run`` / ``update --dry-run`` print about the plugin's own step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc


if TYPE_CHECKING:
    from cleo.io.io import IO
    from poetry.utils.env import Env

    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.locked import LockedState
    from poetry_torch_cuda.project.variants import Variant


def write_plan(
    config: TorchCudaConfig, variant: Variant, locked: LockedState, env: Env, io: IO
) -> None:
    """One line: what the after-step would install and remove, as ``switch --dry-run`` says.

    Planned against the environment as it is now (Poetry changed nothing); CUDA
    wheels the new build leaves unused are only known after it is installed.
    """
    from poetry_torch_cuda.install.reconcile import describe_plan
    from poetry_torch_cuda.install.reconcile import plan_for

    plan = plan_for(config, variant, locked, env)
    text = esc(describe_plan(plan))
    io.write_line(f"{PREFIX}: {text}" if plan.is_empty else f"{PREFIX}: would {text}")
