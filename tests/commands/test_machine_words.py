"""What ``detect`` and ``variants`` say of the machine: a broken driver, GPUs a
build leaves out, a declared target. In-process: the point is the words."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.support.gpus import DRIVER_580
from tests.support.gpus import GTX_1080
from tests.support.gpus import NVIDIA_SMI_FAILED
from tests.support.gpus import RTX_4090
from tests.support.gpus import gpu
from tests.support.gpus import machine_env
from tests.support.gpus import no_gpu
from tests.support.gpus import no_real_driver
from tests.support.inprocess import run_inprocess


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fixtures import ProjectFactory

DEPS = {"needs-torch": "*", "torchvision": "*"}


@no_real_driver
def test_a_failing_nvidia_smi_is_not_said_to_be_no_gpu(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """nvidia-smi on PATH fails (the kernel module not loaded after a kernel
    update): variants said every CUDA build "does not run here: no NVIDIA driver
    found" and detect ended "cpu: no GPU to build for", where status and verify say
    the GPU cannot be checked."""
    project = project_factory(DEPS, 'variant = "auto"')
    assert run_inprocess(project, "lock", env_extra=no_gpu(tmp_path)).returncode == 0
    broken = machine_env(
        tmp_path / "broken",
        nvidia_smi="",
        nvidia_smi_exit=9,
        nvidia_smi_stderr=NVIDIA_SMI_FAILED,
    )
    listed = run_inprocess(project, "torch-cuda", "variants", "cu130", env_extra=broken)
    assert listed.returncode == 0, listed
    assert listed.stdout.splitlines()[1:3] == [
        "  cu130  offered  cannot tell",
        "           the GPU cannot be checked: nvidia-smi failed",
    ], listed.stdout
    shown = run_inprocess(project, "torch-cuda", "detect", env_extra=broken)
    assert shown.returncode == 0, shown
    assert shown.stdout.splitlines()[1].startswith(
        "  1. nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate"
    ), shown.stdout
    assert shown.stdout.splitlines()[-1] == "  6. cpu: the GPU cannot be checked"


def test_a_gtx_1080_beside_an_rtx_4090(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """auto takes cu130, which leaves the GTX 1080 out; variants said "does not run
    here (auto's pick)" of the build that runs on the RTX 4090 (verify passes it,
    noting the GPU left out). cu126 builds for both, but its index lacks the locked
    torch 2.14.1: detect said "no variant builds for every GPU" and "GPU 0 ...
    cannot be served together with the other GPUs" under its own step that cu126
    would run here."""
    project = project_factory(DEPS, 'variant = "auto"')
    assert run_inprocess(project, "lock", env_extra=no_gpu(tmp_path)).returncode == 0
    env = gpu(tmp_path / "two", GTX_1080, RTX_4090, driver=DRIVER_580)
    listed = run_inprocess(project, "torch-cuda", "variants", "cu130", env_extra=env)
    assert listed.returncode == 0, listed
    assert listed.stdout.splitlines()[1:3] == [
        "  cu130  offered  runs on some GPUs  (auto's pick)",
        "           not built for sm_61 (NVIDIA GeForce GTX 1080): builds sm_75..sm_120+PTX",
    ], listed.stdout
    shown = run_inprocess(project, "torch-cuda", "detect", env_extra=env)
    assert shown.returncode == 0, shown
    lines = shown.stdout.splitlines()
    assert "  8. cu126: skipped, " in shown.stdout, shown.stdout
    gtx = "GPU 0 (NVIDIA GeForce GTX 1080, sm_61)"
    assert lines[-2:] == [
        (
            "  12. every variant built for every GPU is skipped; cu130 serves the "
            f"most, leaving out {gtx}"
        ),
        f"Note: {gtx} is left out: every variant built for every GPU is skipped",
    ], shown.stdout


def test_variants_names_a_build_that_failed_verification_here(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """cu130 failed verification in this environment, so auto takes cu129: variants
    listed cu130 "offered  runs here" with no word of it, auto's pick unexplained."""
    project = project_factory(DEPS, 'variant = "auto"')
    assert run_inprocess(project, "lock", env_extra=no_gpu(tmp_path)).returncode == 0
    env = gpu(tmp_path / "4090", RTX_4090, driver=DRIVER_580)
    gpus = f"NVIDIA driver {DRIVER_580}; GPU 0 (NVIDIA GeForce RTX 4090, sm_89)"
    failure = {"variant": "cu130", "torch": "2.14.1", "reason": "no kernel image"}
    failure |= {"when": "2026-12-01 10:00 UTC", "machine": gpus}
    memory = {"schema": 1, "failures": [failure]}
    (project.venv / ".poetry-torch-cuda-memory.json").write_text(json.dumps(memory))
    args = ("torch-cuda", "variants", "cu130", "cu129")
    listed = run_inprocess(project, *args, env_extra=env)
    assert listed.returncode == 0, listed
    rows = [line for line in listed.stdout.splitlines() if line.startswith("  cu")]
    assert rows == [
        "  cu130  offered  failed verification here",
        "  cu129  offered  runs here  (auto's pick)",
    ], listed.stdout
    data = json.loads(run_inprocess(project, *args, "--json", env_extra=env).stdout)
    failed = [v["failed_verification_here"] for v in data["variants"]]
    assert failed == [True, False], data
    # detect said the failure in cu130's step and again in a list below the steps
    shown = run_inprocess(project, "torch-cuda", "detect", env_extra=env)
    assert shown.stdout.count("no kernel image") == 1, shown.stdout
    assert "  4. cu130: skipped, failed verification in this environment " in (
        shown.stdout
    ), shown.stdout
    assert "Remembered for this environment" not in shown.stdout, shown.stdout


def test_detect_for_a_target_says_nothing_runs_here(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """detect --target decides for a declared machine, not this one: a skipped
    variant "would run here" on a GPU-less machine that runs none."""
    target = '[[tool.poetry-torch-cuda.targets]]\nname = "lab"\ndriver = "580.65.06"'
    project = project_factory(DEPS, f'variant = "auto"\n{target}\ngpus = ["9.0"]')
    assert run_inprocess(project, "lock", env_extra=no_gpu(tmp_path)).returncode == 0
    args = ("torch-cuda", "detect", "--target", "lab")
    shown = run_inprocess(project, *args, env_extra=no_gpu(tmp_path))
    assert shown.returncode == 0, shown
    assert "  3. cu132: skipped, " in shown.stdout, shown.stdout
    assert "it would run by minor-version compatibility" in shown.stdout, shown.stdout
    assert "here" not in shown.stdout, shown.stdout


def test_detect_says_which_driver_would_end_the_cpu_fallback(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """An RTX 4090 on driver 470: auto falls back to cpu. The install and status
    say "update the NVIDIA driver (>= 525.60.13 runs cu129)", a target's check "a
    driver >= … there runs …"; detect listed each variant's need and left the
    answer out."""
    project = project_factory(DEPS, 'variant = "auto"')
    assert run_inprocess(project, "lock", env_extra=no_gpu(tmp_path)).returncode == 0
    env = gpu(tmp_path / "old", RTX_4090, driver="470.42.01")
    shown = run_inprocess(project, "torch-cuda", "detect", env_extra=env)
    assert shown.returncode == 0, shown
    assert shown.stdout.splitlines()[-1] == (
        "  11. cpu: no CUDA variant fits; a driver >= 525.60.13 runs cu129"
    ), shown.stdout
