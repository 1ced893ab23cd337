"""Verification after every change the plugin makes (install hook, switch, sync).

One entry point, :func:`prove_change`. Nothing happens when nothing changed
(the fast path stays free) or when verification is turned off. A failure
raises :class:`VerificationFailed` with the finding, its cause and fix;
``auto`` first moves on (at most twice) from a build that fails for a reason
of this machine, remembering the failure; ``switch`` passes a snapshot and
gets the previous build put back from the stash the change kept
(``install/undo.py``), else through the locked install.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cleo.io.outputs.output import Verbosity
from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.variants import parse_variant


if TYPE_CHECKING:
    from collections.abc import Iterator
    from collections.abc import Mapping

    from cleo.io.io import IO
    from packaging.utils import NormalizedName
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.locked import LockedState
    from poetry_torch_cuda.project.variants import Variant
    from poetry_torch_cuda.proof.verify import Proof

#: How many more of ``auto``'s candidates are tried after the first one failed.
MAX_MOVES = 2


class VerificationFailed(TorchCudaError):
    """The build in place does not run here; the message names cause and fix."""


@dataclass(frozen=True)
class Snapshot:
    """The configured packages an environment held before a switch, and their variant."""

    versions: Mapping[NormalizedName, str]
    variant: Variant | None

    def describe(self) -> str:
        """``torch 2.14.1+cu129, torchvision 0.29.1+cu129``."""
        return ", ".join(f"{name} {version}" for name, version in self.versions.items())


def take_snapshot(config: TorchCudaConfig, env: Env) -> Snapshot:
    """What ``env`` holds of the configured packages now (metadata only)."""
    from poetry_torch_cuda.environment.installed import installed_environment

    installed = installed_environment(env)
    versions = {}
    for name in sorted(config.package_names, key=lambda name: name != "torch"):
        distribution = installed.get(name)
        if distribution is not None:
            versions[name] = distribution.version
    variant = None
    for version in versions.values():
        try:
            variant = parse_variant(Version(version).local or "")
        except (InvalidVersion, ValueError):
            continue
        break
    return Snapshot(versions, variant)


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
    try:
        return _prove(poetry, env, io, config, variant, locked, plan, snapshot)
    finally:
        if not config.keep_previous_build:  # kept only for the rollback
            from poetry_torch_cuda.install.undo import drop_previous

            drop_previous(env.path)


def _prove(
    poetry: Poetry,
    env: Env,
    io: IO,
    config: TorchCudaConfig,
    variant: Variant,
    locked: LockedState,
    plan: Plan,
    snapshot: Snapshot | None,
) -> Variant:
    if plan.is_empty or not config.verify:
        return variant
    from poetry_torch_cuda.machine.resolution import probe
    from poetry_torch_cuda.proof.verify import prove

    machine = probe(env)
    current = variant
    moves = 0
    back = (snapshot, config, locked, env, io, poetry)
    while True:
        try:
            with _stoppable():
                proof = prove(env, config, current, machine=machine)
        except KeyboardInterrupt as stop:
            signum = getattr(stop, "signum", signal.SIGINT)
            raise _give_up(
                TorchCudaError(
                    f"{signal.Signals(signum).name} stopped the verification of {current}"
                ),
                *back,
                kept=": the new build stays installed, unverified; "
                "`poetry torch-cuda verify` checks it.",
                code=128 + signum,
            ) from None
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
            raise _give_up(
                VerificationFailed(proof.failure_message(debug=io.is_debug())),
                *back,
                kept="\nThe new build stays installed; verification is turned off with "
                "verify = false in [tool.poetry-torch-cuda] or POETRY_TORCH_CUDA_VERIFY=0.",
            )
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
    resolution = resolve(config, poetry, env, locked.versions, machine=machine)
    following = resolution.variant
    # Never to a build the rule rejects (a pick that leaves a GPU out).
    if following == failed or (resolution.decision and resolution.decision.left_out):
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
    # The one locked, hash-checked install path; it records the owner too.
    settings = InstallSettings.of(poetry, io)
    reconcile_environment(config, following, locked, env, io, settings)
    return following


def _remember(env: Env, machine: Machine, proof: Proof) -> None:
    """Keep ``auto`` from choosing the failed build again on this machine."""
    from poetry_torch_cuda.machine.memory import remember

    first = proof.first_failure()
    if first is not None:
        remember(env.path, machine, proof.variant, proof.torch_version, first.message)


def _give_up(
    error: TorchCudaError,
    snapshot: Snapshot | None,
    config: TorchCudaConfig,
    locked: LockedState,
    env: Env,
    io: IO,
    poetry: Poetry,
    *,
    kept: str,
    code: int = 1,
) -> TorchCudaError:
    """``error``, after switch's change is undone (with ``snapshot``), saying so."""
    if snapshot is not None:
        restored = _roll_back(snapshot, config, locked, env, io, poetry)
        kept = f"\n{restored} pyproject.toml is unchanged."
    wrapped = type(error)(f"{error}{kept}")
    wrapped.exit_code = code
    return wrapped


def _roll_back(
    snapshot: Snapshot,
    config: TorchCudaConfig,
    locked: LockedState,
    env: Env,
    io: IO,
    poetry: Poetry,
) -> str:
    """Put the snapshot's builds back: from the change's stash, else locked files."""
    from poetry_torch_cuda.install.pip import PipRunner
    from poetry_torch_cuda.install.reconcile import reconcile_environment
    from poetry_torch_cuda.install.request import InstallSettings
    from poetry_torch_cuda.install.undo import drop_previous
    from poetry_torch_cuda.install.undo import previous_build
    from poetry_torch_cuda.project.locked import LockedState as State

    previous = previous_build(env.path)
    if previous is not None and snapshot.versions == {
        name: previous.before[name]
        for name in config.package_names
        if name in previous.before
    }:
        pip = PipRunner(env.get_pip_command(), show_output=False)
        try:
            previous.put_back(env, pip.uninstall)
        except (TorchCudaError, OSError) as error:
            return (
                f"Putting back {snapshot.describe()} failed as well ({error}): torch "
                "may not import; `poetry torch-cuda sync --force` reinstalls it."
            )
        drop_previous(env.path)
        held = snapshot.describe() or "no torch build, as before"
        return f"Put back the previous build: {held} (no download)."
    if snapshot.variant is None:
        return (
            f"The earlier build ({snapshot.describe() or 'none'}) cannot be installed "
            "from a variant's lock; the failing one stays installed."
        )
    try:
        reconcile_environment(
            dataclasses.replace(config, variant=snapshot.variant),
            snapshot.variant,
            State(dict(snapshot.versions), locked.graph),
            env,
            io,
            InstallSettings.of(poetry, io),
        )
    except TorchCudaError as error:
        return f"Putting back {snapshot.describe()} failed as well: {error}"
    return f"Put back the previous build: {snapshot.describe()}."


class _Stop(KeyboardInterrupt):
    """A signal that stops the verification: SIGINT, SIGTERM or SIGHUP."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _stoppable() -> Iterator[None]:
    """For the verification only: SIGTERM and SIGHUP stop it as Ctrl-C does."""
    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise _Stop(signum)

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, stop) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
