"""Verification after every change the plugin makes (install hook, switch, sync).

One entry point, :func:`prove_change`. Nothing happens when nothing changed
(the fast path stays free) or when verification is turned off. A failure
raises :class:`VerificationFailed` with the finding, its cause and fix;
``auto`` first moves on (at most twice) from a build that fails for a reason
of this machine, remembering the failure; ``switch`` passes a snapshot and
gets the previous build put back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cleo.io.outputs.output import Verbosity

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc


if TYPE_CHECKING:
    from cleo.io.io import IO
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.locked import LockedState
    from poetry_torch_cuda.project.variants import Variant
    from poetry_torch_cuda.proof.rollback import Snapshot
    from poetry_torch_cuda.proof.verify import Proof

#: How many more of ``auto``'s candidates are tried after the first one failed.
MAX_MOVES = 2


class VerificationFailed(TorchCudaError):
    """The build in place does not run here; the message names cause and fix."""


def prove_change(
    poetry: Poetry,
    env: Env,
    io: IO,
    config: TorchCudaConfig,
    variant: Variant,
    locked: LockedState,
    plan: Plan,
    *,
    snapshot: Snapshot | None = None,
) -> Variant:
    """Verify ``env`` after ``plan`` made it hold ``variant``; returns the variant in place.

    Raises:
        VerificationFailed: the build (and, for ``auto``, its next candidates)
            failed; with ``snapshot`` the previous builds are back in place.
    """
    if plan.is_empty or not config.verify:
        return variant
    from poetry_torch_cuda.machine.resolution import probe
    from poetry_torch_cuda.proof.verify import prove

    machine = probe(env)
    current = variant
    moves = 0
    while True:
        proof = prove(env, config, current, machine=machine)
        for check in proof.verdict.checks:
            if check.status == "note":
                io.write_line(
                    f"{PREFIX}: note: {esc(check.message)}", verbosity=Verbosity.VERBOSE
                )
        if proof.ok:
            io.write_line(f"{PREFIX}: {esc(proof.summary())}")
            return current
        following = None
        if config.variant.kind == "auto" and proof.verdict.machine_reason:
            _remember(env, machine, proof)
            if moves < MAX_MOVES:
                following = _move_on(poetry, env, io, config, locked, proof, machine)
        if following is None:
            raise _failed(proof, io, config, locked, env, poetry, snapshot)
        current = following
        moves += 1


def _move_on(
    poetry: Poetry,
    env: Env,
    io: IO,
    config: TorchCudaConfig,
    locked: LockedState,
    proof: Proof,
    machine: Machine,
) -> Variant | None:
    """Install ``auto``'s next candidate now that its pick is remembered, if any."""
    from poetry_torch_cuda.install.reconcile import reconcile_environment
    from poetry_torch_cuda.install.request import InstallSettings
    from poetry_torch_cuda.machine.resolution import resolve

    first = proof.first_failure()
    if first is None:
        return None
    failed = proof.variant
    following = resolve(config, poetry, env, locked.versions, machine=machine).variant
    if following == failed:
        return None
    io.write_error_line(
        f"{PREFIX}: <warning>auto: {failed} failed verification here: "
        f"{esc(first.message)}</>"
    )
    io.write_error_line(
        f"{PREFIX}: auto: trying <c2>{following}</>, its next choice on this "
        f"machine ({failed} is remembered for this environment; "
        "`poetry torch-cuda detect` shows it)"
    )
    settings = InstallSettings.of(poetry, io)
    reconcile_environment(config, following, locked, env, io, settings)
    return following


def _remember(env: Env, machine: Machine, proof: Proof) -> None:
    """Keep ``auto`` from choosing the failed build again on this machine."""
    from poetry_torch_cuda.machine.memory import remember

    first = proof.first_failure()
    if first is not None:
        remember(env.path, machine, proof.variant, proof.torch_version, first.message)


def _failed(
    proof: Proof,
    io: IO,
    config: TorchCudaConfig,
    locked: LockedState,
    env: Env,
    poetry: Poetry,
    snapshot: Snapshot | None,
) -> VerificationFailed:
    message = proof.failure_message(debug=io.is_debug())
    if snapshot is not None:
        from poetry_torch_cuda.proof.rollback import restore

        restored = restore(snapshot, config, locked, env, io, poetry=poetry)
        message += f"\n{restored} pyproject.toml is unchanged."
    else:
        message += (
            "\nThe new build stays installed; verification is turned off with "
            "verify = false in [tool.poetry-torch-cuda] or POETRY_TORCH_CUDA_VERIFY=0."
        )
    return VerificationFailed(message)
