"""The rule and the wording behind issue 21 items 4-7, 10-12, 15 and 18, in-process."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import pytest

from poetry_torch_cuda.index.offers import Offer
from poetry_torch_cuda.machine import probe
from poetry_torch_cuda.machine.detection import cpu_fallback_warning
from poetry_torch_cuda.machine.detection import decide
from poetry_torch_cuda.machine.probe import Machine
from poetry_torch_cuda.machine.probe import NvidiaDriver
from poetry_torch_cuda.machine.probe import probe_nvidia
from poetry_torch_cuda.project.variants import parse_variant
from poetry_torch_cuda.proof.run import ChildRun
from poetry_torch_cuda.proof.verdict import judge
from tests.support.machines import nvidia_machine as nvidia


if TYPE_CHECKING:
    from pathlib import Path

    from poetry_torch_cuda.project.variants import Variant
    from poetry_torch_cuda.proof.verdict import Proof

RTX = ("NVIDIA GeForce RTX 4090", (8, 9))
V100 = ("Tesla V100", (7, 0))
B200 = ("NVIDIA B200", (10, 0))
CU13 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]
PROC = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05  Release Build\n"


def report(
    version: str,
    *,
    cuda: str | None = None,
    hip: str | None = None,
    available: bool = False,
    devices: tuple[tuple[str, tuple[int, int]], ...] = (),
    compute: list[dict[str, Any]] | None = None,
    masks: dict[str, str] | None = None,
    installed: bool = True,
) -> dict[str, Any]:
    entry = {"installed": installed, "version": version, "imports": installed}
    torch = {
        "version": version,
        "cuda": cuda,
        "hip": hip,
        "arch_list": CU13 if cuda else [],
        "is_available": available,
        "devices": [
            {"index": i, "name": name, "capability": f"{cc[0]}.{cc[1]}"}
            for i, (name, cc) in enumerate(devices)
        ],
    }
    return {
        "packages": {"torch": entry},
        "torch": torch if installed else None,
        "compute": compute or [{"device": "cpu", "ok": True, "error": None}],
        "masks": masks or {},
    }


def verdict_of(
    data: dict[str, Any], variant: str, machine: Machine, **kw: Any
) -> Proof:
    return judge(ChildRun(data), parse_variant(variant), machine, ["torch"], **kw)


@pytest.mark.parametrize(
    "masks",
    [
        {"CUDA_VISIBLE_DEVICES": ""},
        {"CUDA_VISIBLE_DEVICES": "-1"},
        {"HIP_VISIBLE_DEVICES": "", "CUDA_VISIBLE_DEVICES": "7"},
    ],
)
def test_gpus_hidden_by_the_user_are_a_note(masks: dict[str, str]) -> None:
    machine = nvidia("580.95.05", RTX)
    verdict = verdict_of(
        report("2.14.1+cu132", cuda="13.2", masks=masks), "cu132", machine
    )
    assert verdict.ok and not verdict.machine_reason
    (note,) = [c for c in verdict.checks if c.name == "gpu"]
    assert note.status == "note" and "hidden by" in note.message


def test_not_visible_blames_the_driver_only_by_the_rule() -> None:
    # R580 runs cu132 by minor-version compatibility: not "driver too old"
    machine = nvidia("580.95.05", RTX)
    verdict = verdict_of(report("2.14.1+cu132", cuda="13.2"), "cu132", machine)
    (failure,) = verdict.failures
    assert "too old" not in (failure.cause or "")
    old = nvidia("535.104.05", RTX)
    (failure,) = verdict_of(report("2.14.1+cu132", cuda="13.2"), "cu132", old).failures
    assert failure.cause == "the NVIDIA driver is too old for this build"


def test_a_driver_known_only_from_proc_without_devices_is_not_reachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "proc" / "driver" / "nvidia").mkdir(parents=True)
    (tmp_path / "proc" / "driver" / "nvidia" / "version").write_text(PROC)
    (tmp_path / "dev").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    monkeypatch.setenv(probe.ROOT_VARIABLE, str(tmp_path))
    driver, _ = probe_nvidia()
    assert driver is not None and not driver.reachable
    (tmp_path / "dev" / "nvidia0").write_text("")
    driver, _ = probe_nvidia()
    assert driver is not None and driver.reachable
    container = Machine(
        "linux",
        "x86_64",
        NvidiaDriver("580.95.05", "/proc/driver/nvidia/version", reachable=False),
    )
    verdict = verdict_of(report("2.14.1+cu130", cuda="13.0"), "cu130", container)
    assert verdict.ok
    assert any("not reachable from here" in c.message for c in verdict.checks)


def test_a_failing_nvidia_smi_is_named_and_the_machine_probed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def failing(**_: Any) -> tuple[None, list[str]]:
        calls.append(1)
        return None, ["nvidia-smi failed: did not answer within 15 s"]

    monkeypatch.setattr(probe, "probe_nvidia", failing)
    monkeypatch.setattr(probe, "probe_rocm", lambda: (None, []))
    monkeypatch.setattr(probe, "_PROBED", {})
    first = probe.probe_machine(machine="x86_64")
    assert probe.probe_machine(machine="x86_64") is first
    assert calls == [1]
    assert first.smi_failure == "nvidia-smi failed: did not answer within 15 s"


def test_auto_accepts_the_gpu_its_decision_left_out() -> None:
    machine = nvidia("580.95.05", V100, B200)
    decision = decide(
        machine, lambda v: Offer(v.name in ("cu130", "cu126"), "x"), "2.14.1"
    )
    assert str(decision.variant) == "cu130"
    assert [gpu.name for gpu in decision.left_out] == ["Tesla V100"]
    compute = [
        {"device": "cpu", "ok": True, "error": None},
        {
            "device": "cuda:0",
            "ok": False,
            "error": "CUDA error: no kernel image is available",
        },
        {"device": "cuda:1", "ok": True, "error": None},
    ]
    data = report(
        "2.14.1+cu130",
        cuda="13.0",
        available=True,
        devices=(V100, B200),
        compute=compute,
    )
    assert verdict_of(data, "cu130", machine, auto=True).ok
    # configured by hand, the same build fails for the V100
    assert not verdict_of(data, "cu130", machine).ok


@pytest.mark.parametrize(
    ("variant", "cuda", "hip", "wrong"),
    [
        (
            "cu124",
            "13.0",
            None,
            "is a CUDA 13.0 build, not the CUDA 12.4 build cu124 names",
        ),
        ("cpu", "12.8", None, "is a CUDA 12.8 build, not the CPU-only build cpu names"),
        ("rocm6.4", None, None, "is a CPU-only build, not the ROCm 6.4 build rocm6.4"),
        ("cu130", None, None, "is a CPU-only build, not the CUDA 13.0 build cu130"),
        (
            "cu130",
            None,
            "6.4.43482-0f2d60242",
            "is a ROCm (HIP 6.4.43482-0f2d60242) build",
        ),
        ("rocm6.4", None, "6.4.43482-0f2d60242", None),
        (
            "rocm6.4",
            None,
            "6.3.42131-fa1d09cbd",
            "is a ROCm (HIP 6.3.42131-fa1d09cbd) build, not the ROCm 6.4 build rocm6.4",
        ),
        ("cu130", "13.0", None, None),
    ],
)
def test_the_build_is_compared_with_its_variant(
    variant: str, cuda: str | None, hip: str | None, wrong: str | None
) -> None:
    data = report(f"2.14.1+{variant}", cuda=cuda, hip=hip)
    failures = [
        c.message
        for c in verdict_of(data, variant, Machine("linux", "x86_64")).failures
    ]
    if wrong is None:
        assert failures == []
    else:
        assert any(wrong in message for message in failures), failures


def test_another_cuda_under_the_variants_own_label_is_not_blamed_on_it() -> None:
    """torch 2.14.1+cu129 that says CUDA 13.0 (a mislabelled wheel on a mirror, or
    another build installed over it): its label is the variant's, so the cause
    names the files, and the fix what to do when a reinstall brings it back."""
    data = report("2.14.1+cu129", cuda="13.0")
    (failure,) = verdict_of(data, "cu129", Machine("linux", "x86_64")).failures
    assert failure.message == (
        "torch 2.14.1+cu129 is a CUDA 13.0 build, not the CUDA 12.9 build cu129 names"
    )
    assert failure.cause == (
        "its files are not the build its +cu129 label names: another build was "
        "installed over them, or the index serves a mislabelled wheel"
    )
    assert failure.fix == (
        "`poetry torch-cuda sync --force` reinstalls the build; if the check still "
        "fails, index-url serves a mislabelled cu129 wheel: ask whoever runs the index"
    )
    # Under another label, the label's failure says it once, with its fix.
    for version, cuda in (("2.14.1+cu130", "13.0"), ("2.14.1", "13.0")):
        other = report(version, cuda=cuda)
        (label,) = verdict_of(other, "cpu", Machine("linux", "x86_64")).failures
        assert label.message.endswith(", not the cpu build")
        assert label.fix == "`poetry torch-cuda sync` installs it"
    # no install moves it: the cause and fix are Plan.unmoved's
    said = {"torch": ("torch … is installed, but why: fix", "why", "fix")}
    unlocked = verdict_of(other, "cpu", Machine("linux", "x86_64"), unmoved=said)
    assert unlocked.failures[0].cause == "why"
    assert unlocked.failures[0].fix == "fix"


def test_a_package_the_lock_installs_here_must_be_installed() -> None:
    data = report("2.14.1", installed=False)
    assert verdict_of(
        data, "cpu", Machine("linux", "x86_64")
    ).ok  # not locked here: a note
    verdict = verdict_of(
        data, "cpu", Machine("linux", "x86_64"), required={"torch": "2.14.1"}
    )
    (failure,) = verdict.failures
    assert failure.message.startswith("torch is not installed")


def test_a_timeout_could_not_check_and_is_no_failure() -> None:
    verdict = judge(
        ChildRun(None, "the check did not finish within 1 s", unchecked=("", "")),
        parse_variant("cu130"),
        Machine("linux", "x86_64"),
        ["torch"],
    )
    assert verdict.ok and not verdict.checked
    assert verdict.checks[0].message.startswith("could not check the build")
    crashed = judge(
        ChildRun(None, "killed"),
        parse_variant("cu130"),
        Machine("linux", "x86_64"),
        ["torch"],
    )
    assert not crashed.ok


def test_a_fix_names_only_what_autos_decision_offers() -> None:
    machine = nvidia("535.104.05", RTX)
    data = report("2.14.1+cu132", cuda="13.2")
    asked = []

    def alternative() -> Variant | None:
        asked.append(1)
        return parse_variant("cu126")

    (failure,) = verdict_of(data, "cu132", machine, alternative=alternative).failures
    assert (
        failure.fix
        == "update the driver, or `poetry torch-cuda switch cu126` installs a build it runs"
    )
    (plain,) = verdict_of(data, "cu132", machine).failures
    assert "switch" not in (plain.fix or "")
    assert asked == [1]
    # auto remembers the failure (prove), so sync installs its next choice and
    # pyproject.toml keeps auto: switch would pin cu126
    (auto,) = verdict_of(
        data, "cu132", machine, auto=True, alternative=alternative
    ).failures
    assert auto.fix == (
        "update the driver, or `poetry torch-cuda sync` installs a build it runs, "
        "cu126, auto's next choice here"
    )


def test_remembered_failures_that_force_cpu_are_said_briefly() -> None:
    machine = nvidia("580.95.05", RTX)

    def offers(variant: Any) -> Offer:
        return Offer(False, "failed verification here", remembered=True)

    decision = decide(machine, offers, "2.14.1")
    assert str(decision.variant) == "cpu" and decision.forced_by_memory
    warning = cpu_fallback_warning(decision, machine)
    assert warning is not None
    assert "remembered as failing here" in warning
    assert len(warning) < 600 and max(len(line) for line in warning.splitlines()) < 300


@pytest.mark.parametrize(
    "masks",
    [
        {"CUDA_VISIBLE_DEVICES": "0"},  # a SLURM job's GPU: it hides nothing
        {"CUDA_VISIBLE_DEVICES": "GPU-8c2f1a3e-0b7d-4e5f-9a6b-1c2d3e4f5a6b"},
        {"HIP_VISIBLE_DEVICES": ""},  # ROCm's: no CUDA build reads it
    ],
)
def test_a_mask_that_leaves_the_gpu_visible_hides_no_failure(
    masks: dict[str, str],
) -> None:
    old = nvidia("535.104.05", RTX)  # too old for cu130: torch sees no GPU
    verdict = verdict_of(report("2.14.1+cu130", cuda="13.0", masks=masks), "cu130", old)
    (failure,) = verdict.failures
    assert failure.cause == "the NVIDIA driver is too old for this build"
    assert verdict.machine_reason
    assert not any("hidden by" in c.message for c in verdict.checks)


@pytest.mark.parametrize(
    ("variant", "platform"),
    [("cpu", "darwin"), ("cu130", "darwin"), ("rocm6.4", "win32")],
)
def test_pypis_build_where_the_variant_has_none_passes(
    variant: str, platform: str
) -> None:
    """The plugin steps aside there (Poetry installs PyPI's build): `sync`, the
    fix a label failure names, refuses, and `status` finds nothing wrong."""
    data = report("2.14.1", cuda=None)  # PyPI's CPU build for macOS and Windows
    machine = Machine(platform, "arm64" if platform == "darwin" else "AMD64")
    verdict = verdict_of(data, variant, machine, required={"torch": "2.14.1"})
    assert verdict.ok, [c.message for c in verdict.failures]
    assert (
        f"PyTorch publishes no {variant} builds for {platform}; Poetry installs "
        in (" ".join(c.message for c in verdict.checks if c.status == "note"))
    )


@pytest.mark.parametrize(
    "error",
    [
        "RuntimeError: CUDA error: CUDA-capable device(s) is/are busy or unavailable",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB",
        "RuntimeError: CUDA error: out of memory",
    ],
)
def test_a_gpu_another_process_holds_is_no_failure_of_the_build(error: str) -> None:
    """A shared machine: the GPU in exclusive mode or full. The build may be fine:
    auto must not move on (nor remember it), verify cannot say."""
    compute = [
        {"device": "cpu", "ok": True, "error": None},
        {"device": "cuda:0", "ok": False, "error": error},
    ]
    data = report(
        "2.14.1+cu130", cuda="13.0", available=True, devices=(RTX,), compute=compute
    )
    verdict = verdict_of(data, "cu130", nvidia("580.95.05", RTX))
    assert verdict.failures == () and not verdict.verified
    (busy,) = [c for c in verdict.checks if c.status == "unchecked"]
    assert error in busy.message and "another process" in (busy.cause or "")
    assert verdict.summary().startswith("warning: torch 2.14.1+cu130 cannot compute on")
