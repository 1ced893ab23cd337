"""``poetry torch-cuda verify``: prove that the installed build runs here."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import option
from poetry.console.commands.group_command import GroupCommand

from poetry_torch_cuda.commands.base import NotCreatedEnv
from poetry_torch_cuda.commands.base import TorchCudaCommand
from poetry_torch_cuda.machine.resolution import next_choice
from poetry_torch_cuda.machine.resolution import probe
from poetry_torch_cuda.machine.resolution import resolve
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.selection import selection_options
from poetry_torch_cuda.proof.after import prove


if TYPE_CHECKING:
    from cleo.io.inputs.option import Option


class VerifyCommand(TorchCudaCommand, GroupCommand):
    """Import, describe and exercise the installed torch family in the project's env."""

    name = "torch-cuda verify"
    description = (
        "Prove the installed build runs: imports, CUDA/ROCm build, GPUs, a small "
        "computation on each device."
    )
    options: ClassVar[list[Option]] = [
        option("json", None, "Print the result as JSON (stable; see the README)."),
        *selection_options(),
    ]
    help = (
        "Runs a short check with the environment's Python in a child process "
        "(timeout: verify-timeout, 120 s by default): each configured package "
        "imports, its version and build label; torch's CUDA/HIP and cuDNN "
        "versions, compiled GPU architectures and visible devices; a tiny "
        "computation on the CPU and on every visible GPU; torchvision.ops.nms "
        "when torchvision is configured. The result is judged against the "
        "configured variant and this machine's driver and GPUs. Exit status 0 "
        "when everything holds, 1 otherwise (also when a package `poetry install` "
        "with the options given installs here is missing, or the check could not "
        "finish); no GPU on the machine is a note. Never creates the environment. "
        "<c1>-vvv</> shows the check's traceback."
    )

    def work(self) -> int:
        ctx = self.context()
        # auto picks for the lock's torch in any group or extra, as status does.
        locked = ctx.view.versions if self.poetry.locker.is_locked() else None
        exists = not isinstance(self.env, NotCreatedEnv)
        machine = probe(self.env)
        variant = resolve(ctx.config, locked, ctx, machine=machine).variant

        wanted = None if locked is None else ctx.view.selected  # `poetry install`'s
        required = None if wanted is None else {str(n): v for n, v in wanted.items()}
        proof = prove(
            ctx,
            variant,
            machine=machine,
            required=required,
            alternative=lambda: next_choice(ctx.config, locked, machine, variant, ctx),
            exists=exists,
            hashes=True,
        )
        debug = self.io.is_debug()
        if self.as_json(proof.to_json(configured=ctx.config.variant, debug=debug)):
            return 0 if proof.verified else 1
        self.line("\n".join(proof.lines()))
        for line in proof.trace_lines(debug=debug):  # -vvv: on stderr
            (self.line_error if debug else self.line)(esc(line))
        where = esc(self.env.path) if exists else "(no environment yet)"
        if proof.verified:
            self.line(f"{PREFIX}: <info>{variant}</> build verified in {where}")
            return 0
        n = len(proof.failures)
        verdict = f"<error>verification failed</> ({n} problem{'s' * (n > 1)}) for"
        verdict = "<warning>could not check</>" if proof.ok else verdict
        self.line_error(f"{PREFIX}: {verdict} {variant} in {where}")
        return 1
