"""Prove that an environment's build runs: for ``verify`` (:func:`prove`) and after each
install the plugin makes (:func:`prove_change`). A failure raises a
:class:`TorchCudaError` with cause and fix; ``auto`` first moves on (at most twice) from
a build that fails for this machine's reason; ``switch`` puts the previous build back
from the change's stash (``install/undo.py``), also before ``auto`` moves on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cleo.io.outputs.output import Verbosity

from poetry_torch_cuda.errors import ConfigError
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install import signals
from poetry_torch_cuda.install.reconcile import pip_for
from poetry_torch_cuda.install.undo import NOT_BACK
from poetry_torch_cuda.install.undo import UNVERIFIED
from poetry_torch_cuda.install.undo import drop_previous
from poetry_torch_cuda.install.undo import family_problems
from poetry_torch_cuda.install.undo import previous_build
from poetry_torch_cuda.lockfile.service import lock_problem
from poetry_torch_cuda.machine.resolution import next_choice
from poetry_torch_cuda.machine.resolution import probe
from poetry_torch_cuda.machine.resolution import remember
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.proof.run import ChildRun
from poetry_torch_cuda.proof.run import run_child
from poetry_torch_cuda.proof.verdict import Proof
from poetry_torch_cuda.proof.verdict import judge


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Mapping

    from poetry_torch_cuda.context import RunContext
    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.project.variants import Variant


def prove(
    ctx: RunContext,
    variant: Variant,
    *,
    machine: Machine,
    required: Mapping[str, str] | None = None,
    alternative: Callable[[], Variant | None] | None = None,
    exists: bool = True,
    hashes: bool = False,
) -> Proof:
    """Run the child in the run's env (if it ``exists``) and judge its report
    against ``variant`` and ``machine`` (:func:`.verdict.judge`); every file the
    family's ``RECORD`` lists must exist (with ``hashes``: of its size and sha256, from
    a file torch-cuda.lock names, which holds what an install of ``variant`` takes)."""
    config, env = ctx.config, ctx.env
    names = tuple(requirement.name for requirement in config.packages)  # canonical
    run, damaged, locked = ChildRun({"packages": {}}), [], ctx.poetry.locker.is_locked()
    unmoved = ctx.plan(variant).unmoved(ctx.poetry) if locked else {}
    # verify, as status: torch-cuda.lock holds the next install, the files are its
    asked = hashes and (locked or exists)  # no lock, no env: nothing to check yet
    lock, stale, _ = lock_problem(ctx.poetry, variant) if asked else (None,) * 3
    if exists:
        run = run_child(str(env.python), list(names), config.verify_timeout)
        locks, add = ctx.view.names if locked else None, f"run {ctx.selection.install}"
        held = ctx.installed
        damaged = family_problems(env, held, names, hashes, locks, add, lock, unmoved)
    damaged += [(stale, None, "")] if stale else []
    proof = judge(
        run,
        variant,
        machine,
        names,
        required=required,
        unmoved=unmoved,
        install=ctx.selection.install,
        auto=(auto := config.variant.kind == "auto"),
        alternative=alternative,
        damaged=damaged,
        absent=None if required is None else ctx.view.why_absent,
    )
    if auto and proof.machine_reason:  # auto's next choice skips it (verify's fix too)
        remember(
            env.path, machine, variant, proof.torch_version, proof.failures[0].message
        )
    return proof


#: How many more of ``auto``'s candidates are tried after the first one failed.
MAX_MOVES = 2


def prove_change(
    ctx: RunContext, plan: Plan, *, record: Callable[[Variant], object] | None = None
) -> Variant:
    """Verify the env after ``plan`` made it hold its variant; returns the variant in place,
    else a :class:`TorchCudaError` (the build and, for ``auto``, its next candidates failed).
    ``record`` (switch: all or nothing) takes the variant once it holds, while the previous
    build is kept: a failure, or ``record``'s ConfigError (no table), puts that back."""
    config, env, io, variant = ctx.config, ctx.env, ctx.io, plan.variant
    stops: list[int] = []  # signals during a rollback: auto moves on no further

    def give_up(
        text: str, kept: str, code: int | None = 1, put: str = ""
    ) -> TorchCudaError:
        if record is not None:  # switch: all or nothing
            put = put or _roll_back(ctx, plan, stops)[1]
            kept = f"\n{put} pyproject.toml is unchanged."
        error = TorchCudaError(text + kept)
        error.exit_code = code
        return error

    def verify() -> None:
        nonlocal variant  # auto's next choice
        if not plan.install or not config.verify:  # a removal leaves no new build
            return
        with signals.handling(signals.stop):  # the probe and auto's moves too
            machine, moves = probe(env), 0
            while True:
                proof = prove(ctx, variant, machine=machine)
                for note in [c.message for c in proof.checks if c.status == "note"]:
                    note = f"{PREFIX}: note: {esc(note)}"
                    io.write_line(note, verbosity=Verbosity.VERBOSE)
                if proof.ok:
                    io.write_line(f"{PREFIX}: {esc(proof.summary())}")
                    return
                following, put, stopped = None, "", ""
                auto = config.variant.kind == "auto"  # prove() remembered the failure
                if auto and proof.machine_reason and moves < MAX_MOVES:
                    versions = ctx.locked.versions
                    following = next_choice(config, versions, machine, variant, ctx)
                if record is not None and following is not None:
                    # switch: the next build starts from the earlier one, so the
                    # stash keeps that one for a rollback
                    back, put = _roll_back(ctx, plan, stops)
                    if stops:
                        name = signals.signal_name(stops[0])
                        stopped = f"{name} stopped auto before it tried {following}: "
                    following = following if back and not stopped else None
                if following is None:
                    raise give_up(
                        stopped + proof.failure_message(debug=io.is_debug()),
                        "\nThe new build stays installed; verification is turned off "
                        "with verify = false in [tool.poetry-torch-cuda] or "
                        "POETRY_TORCH_CUDA_VERIFY=0.",
                        128 + stops[0] if stopped else 1,
                        put,
                    )
                io.write_error_line(
                    f"{PREFIX}: <warning>auto: {variant} failed verification here: "
                    f"{esc(proof.failures[0].message)}</>\n"
                    f"{PREFIX}: auto: trying <c2>{following}</>, its next choice on "
                    f"this machine ({variant} is remembered for this environment; "
                    "`poetry torch-cuda detect` shows it)"
                )
                variant, moves = following, moves + 1
                # The one locked, hash-checked install path; it records the owner too.
                ctx.reconcile(variant)

    try:
        verify()
    except KeyboardInterrupt as stop:
        said = signals.stopped(stop, f"the verification of {variant}")
        kept = f": the new build {UNVERIFIED}"
        raise give_up(str(said), kept, said.exit_code) from None
    else:  # it holds: recorded outside the verification's signal handling
        try:
            if record is not None:
                record(variant)
        except ConfigError as error:  # nowhere to record it: the change is undone
            if plan.is_empty:  # nothing moved
                raise
            raise give_up(str(error), "") from None
        return variant
    finally:
        if not config.keep_previous_build:  # kept only for the rollback
            drop_previous(env.path)


def _roll_back(ctx: RunContext, plan: Plan, stops: list[int]) -> tuple[bool, str]:
    """Put back the previous build ``plan`` replaced; whether it did, in words. A
    stopping signal meanwhile waits, as during ``undo``'s, and is added to ``stops``."""
    with signals.handling(stops.append, finish=True):
        if (previous := previous_build(ctx.env.path)) is None:
            kept = "The earlier build was not kept; the failing one stays installed."
            return False, kept
        held = previous.held(ctx.config.package_names)
        try:
            previous.put_back(ctx.env, pip_for(ctx.env).uninstall)
        except (TorchCudaError, OSError) as error:
            return False, NOT_BACK.format(held or "the previous build", error)
    held = held or "no torch build, as before"
    return True, f"Put back the previous build: {held} (no download)."
