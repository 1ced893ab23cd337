"""The torch-cuda commands and ``auto``, end to end: real Poetry, pip and indexes,
fake GPUs (stub nvidia-smi / rocminfo / nvcc first on PATH)."""

from __future__ import annotations

import json
import shutil
import socket
from typing import TYPE_CHECKING
from typing import Any

import pytest

from tests.support.gpus import GTX_1080
from tests.support.gpus import NVIDIA_SMI_FAILED
from tests.support.gpus import RTX_4090
from tests.support.gpus import RTX_5090
from tests.support.gpus import T4
from tests.support.gpus import gpu
from tests.support.gpus import machine_env
from tests.support.gpus import no_gpu
from tests.support.gpus import no_real_driver
from tests.support.gpus import rocminfo_output
from tests.support.gpus import smi_line
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import Project
from tests.support.poetry_project import stub_calls


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer

pytestmark = pytest.mark.e2e

DEPS = {"needs-torch": "*", "torchvision": "*"}
CU129 = 'variant = "cu129"'


def run_json(
    project: Project, *args: str, env: dict[str, str], code: int = 0
) -> dict[str, Any]:
    """Run a command with ``--json`` in-process (the point is its report); check
    its exit code and parse its output."""
    result = run_inprocess(project, *args, "--json", env_extra=env)
    assert result.returncode == code, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# -- detect: one locked project per torch version, shared by the module -----------


def locked_project(
    index_server: IndexServer,
    tmp_path_factory: pytest.TempPathFactory,
    dependencies: dict[str, str],
) -> Project:
    """A cu129 project of ``dependencies``, locked, in a directory of its own."""
    project = Project.create(
        tmp_path_factory.mktemp("locked"), index_server, dependencies, CU129
    )
    project.run("lock")
    return project


@pytest.fixture(scope="module")
def locked_2130(
    index_server: IndexServer, tmp_path_factory: pytest.TempPathFactory
) -> Project:
    """torch 2.13.0 alone: cu126 has it, cu128 does not."""
    return locked_project(index_server, tmp_path_factory, {"torch": "2.13.0"})


@pytest.fixture(scope="module")
def locked_2141(
    index_server: IndexServer, tmp_path_factory: pytest.TempPathFactory
) -> Project:
    """torch 2.14.1 and torchvision: cu126 has neither."""
    return locked_project(index_server, tmp_path_factory, DEPS)


@pytest.mark.parametrize(
    ("driver", "gpus", "torch", "picked"),
    [
        ("580.95.05", [RTX_5090], "2.14.1", "cu130"),
        ("575.51.03", [RTX_4090], "2.14.1", "cu129"),
        # Below cu129's own 575.51.03: its SASS runs on the 12.x floor 525.60.13
        ("570.86.10", [RTX_5090], "2.14.1", "cu129"),
        ("570.86.10", [RTX_4090], "2.13.0", "cu129"),
        ("575.51.03", [GTX_1080], "2.13.0", "cu126"),  # Pascal: not cu128/cu129
        ("575.51.03", [GTX_1080], "2.14.1", "cpu"),  # ...and cu126 lacks 2.14.1
        # 560 fully runs only CUDA 12.6, but cu129's sm_75 SASS runs on the 12.x
        # floor (minor-version compatibility): no longer cpu
        ("560.35.03", [T4], "2.14.1", "cu129"),
        ("525.60.12", [T4], "2.14.1", "cpu"),  # below the 12.x floor
        ("580.65.06", [T4], "2.14.1", "cu130"),
    ],
)
def test_detect_picks(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    driver: str,
    gpus: list[tuple[str, str]],
    torch: str,
    picked: str,
) -> None:
    project: Project = request.getfixturevalue(
        "locked_2130" if torch == "2.13.0" else "locked_2141"
    )
    data = run_json(
        project, "torch-cuda", "detect", env=gpu(tmp_path, *gpus, driver=driver)
    )
    assert data["torch"] == torch
    assert data["variant"] == picked
    assert data["machine"]["nvidia_driver"]["version"] == driver


def test_detect_states_no_nvcc_it_never_asked(
    locked_2141: Project, tmp_path: Path
) -> None:
    """detect never runs nvcc (status does): its JSON must not say nvcc is absent."""
    env = gpu(tmp_path, RTX_4090, nvcc="12.4")
    data = run_json(locked_2141, "torch-cuda", "detect", env=env)
    assert data["variant"] == "cu129"
    assert "nvcc" not in data["machine"]
    assert stub_calls(tmp_path / "machine" / "nvcc") == []


def test_detect_explains_a_pascal_gpu_step_by_step(
    locked_2141: Project, tmp_path: Path
) -> None:
    result = run_inprocess(
        locked_2141, "torch-cuda", "detect", env_extra=gpu(tmp_path, GTX_1080)
    )
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0] == "auto picks cpu on this machine for torch 2.14.1"
    text = result.stdout
    assert "cu130: skipped, needs driver >= 580 (CUDA 13.x minor-version" in text
    assert "cu129: skipped, not built for sm_61 (NVIDIA GeForce GTX 1080)" in text
    assert "cu128: skipped, not built for sm_61" in text
    assert "cu126: skipped," in text and "no torch 2.14.1+cu126 (it has 2.13.0)" in text
    assert lines[-2].endswith("cpu: no CUDA variant fits")
    assert lines[-1].startswith("Note: this project configures cu129")


def test_detect_several_gpus_names_the_one_that_forced_the_choice(
    locked_2130: Project, tmp_path: Path
) -> None:
    env = gpu(tmp_path, RTX_4090, GTX_1080)
    data = run_json(locked_2130, "torch-cuda", "detect", env=env)
    assert data["variant"] == "cu126"
    assert data["forced_by"].startswith(
        "GPU 1 (NVIDIA GeForce GTX 1080, sm_61) forced cu126"
    )
    assert len(data["machine"]["gpus"]) == 2


@no_real_driver
def test_detect_without_gpu_says_cpu_and_why(
    locked_2141: Project, tmp_path: Path
) -> None:
    result = run_inprocess(
        locked_2141, "torch-cuda", "detect", env_extra=no_gpu(tmp_path)
    )
    assert result.returncode == 0, result
    assert "auto picks cpu" in result.stdout
    assert "nvidia-smi not found on PATH" in result.stdout
    assert "rocminfo not found on PATH" in result.stdout
    assert "no NVIDIA or AMD GPU found" in result.stdout


@no_real_driver
def test_detect_with_a_failing_nvidia_smi(locked_2141: Project, tmp_path: Path) -> None:
    env = machine_env(
        tmp_path / "machine", nvidia_smi=NVIDIA_SMI_FAILED, nvidia_smi_exit=9
    )
    data = run_json(locked_2141, "torch-cuda", "detect", env=env)
    assert data["variant"] == "cpu"
    assert data["steps"][0].startswith(
        "nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate"
    )


@no_real_driver
def test_detect_rocm(locked_2141: Project, tmp_path: Path) -> None:
    env = machine_env(
        tmp_path / "machine",
        rocminfo=rocminfo_output(("gfx1100", "Radeon RX 7900 XTX")),
        rocm_version="6.4.1-120",
    )
    data = run_json(locked_2141, "torch-cuda", "detect", env=env)
    assert data["variant"] == "rocm6.4"
    assert data["machine"]["rocm"] == {
        "version": "6.4.1",
        "gpus": [{"name": "Radeon RX 7900 XTX", "gfx": "gfx1100"}],
    }


# -- status and variants on one installed cu129 project ---------------------------


@pytest.fixture(scope="module")
def installed(
    index_server: IndexServer, tmp_path_factory: pytest.TempPathFactory
) -> Project:
    """A cu129 project installed by Poetry with a GPU stub on PATH it asks once."""
    tmp_path = tmp_path_factory.mktemp("installed")
    project = Project.create(tmp_path, index_server, DEPS, CU129)
    env = gpu(tmp_path, RTX_4090)
    project.run("install", env_extra=env)
    # A configured CUDA build is checked against the driver before it is installed
    # (verification off: nothing else asks).
    assert len(stub_calls(tmp_path / "machine" / "nvidia-smi")) == 1
    project.run("install", env_extra=env)  # nothing to install: nothing asked
    assert len(stub_calls(tmp_path / "machine" / "nvidia-smi")) == 1
    return project


@no_real_driver
def test_a_failing_nvidia_smi_beside_rocm_lets_rocm_decide(
    installed: Project, tmp_path: Path
) -> None:
    """An AMD machine with an nvidia-smi that fails (no NVIDIA kernel driver: a
    package left behind): ROCm answers, so auto decides by it, as detection's rule
    does with no NVIDIA driver. It kept the installed cu129 build "on a failed
    probe" and said to fix the driver."""
    env = machine_env(
        tmp_path / "machine",
        nvidia_smi="",
        nvidia_smi_exit=9,
        nvidia_smi_stderr=NVIDIA_SMI_FAILED,
        rocminfo=rocminfo_output(("gfx1100", "Radeon RX 7900 XTX")),
        rocm_version="6.4.1-120",
    )
    data = run_json(installed, "torch-cuda", "detect", env=env)
    assert data["variant"] == "rocm6.4", data["steps"]
    assert not [step for step in data["steps"] if "keeps" in step]


def test_status_of_a_matching_install(installed: Project, tmp_path: Path) -> None:
    env = gpu(tmp_path, RTX_4090, nvcc="12.4")
    data = run_json(installed, "torch-cuda", "status", "--check", env=env)
    assert data["ok"] is True
    assert data["variant"]["configured"] == "cu129"
    assert data["variant"]["origin"] == "[tool.poetry-torch-cuda] variant"
    torch = data["packages"][0]
    assert torch["name"] == "torch"
    assert torch["installed"] == {
        "version": "2.14.1+cu129",
        "label": "cu129",
        "build": "CUDA 12.9 build",
        "cuda": "12.9",
    }
    assert data["packages"][2] == {
        "name": "torchaudio",
        "locked": None,
        "wanted": None,
        "installed": None,
        "matches": True,
        "absent": "not in the lock",
    }
    assert data["cuda_wheels"] == {
        "nvidia-cublas-cu12": "12.9.1.4",
        "nvidia-cudnn-cu12": "9.10.2.21",
        "triton": "3.6.0",
    }
    assert data["orphans"] == []
    assert data["machine"]["nvidia_driver"]["max_cuda"] == "12.9"
    assert data["machine"]["gpus"] == [
        {"index": 0, "name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"}
    ]
    assert data["machine"]["nvcc"] == "12.4"
    assert stub_calls(tmp_path / "machine" / "nvidia-smi") == [
        "--query-gpu=driver_version,compute_cap,name --format=csv,noheader"
    ]
    shown = run_inprocess(installed, "torch-cuda", "status", env_extra=env)
    assert shown.returncode == 0, shown
    text = shown.stdout
    assert "Installed    torch        2.14.1+cu129  CUDA 12.9 build" in text
    assert "Everything is in line." in text


def test_status_notes_an_nvcc_of_another_cuda_major(
    installed: Project, tmp_path: Path
) -> None:
    """The runbook's first check (system nvcc against torch's CUDA), answered:
    a note, not a failure (running torch does not need nvcc)."""
    env = gpu(tmp_path, RTX_4090, nvcc="13.0")
    result = run_inprocess(installed, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 0, result
    assert (
        "nvcc 13.0 and torch's CUDA 12.9 differ in major version: building CUDA "
        "extensions for this torch needs a CUDA 12.x toolkit (running torch does "
        "not need nvcc)"
    ) in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    ("env_kind", "warning"),
    [
        (
            "pascal",
            (
                "cu129 not built for sm_61 (NVIDIA GeForce GTX 1080): builds "
                "sm_70..sm_120+PTX; `poetry torch-cuda detect` shows which variant "
                "runs here"
            ),
        ),
        (
            "old-driver",
            (
                "cu129 needs driver >= 525.60.13 (CUDA 12.x minor-version "
                "compatibility) or >= 575.51.03 (full CUDA 12.9 support); driver "
                "520.61.05 supports CUDA 11.8; update the driver, or `poetry "
                "torch-cuda detect` shows which variant runs here"
            ),
        ),
        (
            "cu130-configured",
            (
                "torch 2.14.1+cu129 (CUDA 12.9 build) is installed, but cu130 wants "
                "2.14.1+cu130; run `poetry torch-cuda sync`"
            ),
        ),
    ],
)
def test_status_check_fails_on_every_mismatch(
    installed: Project, tmp_path: Path, env_kind: str, warning: str
) -> None:
    env = {
        "pascal": lambda: gpu(tmp_path, GTX_1080),
        "old-driver": lambda: gpu(tmp_path, RTX_4090, driver="520.61.05"),
        "cu130-configured": lambda: {
            **gpu(tmp_path, RTX_5090, driver="580.65.06"),
            "POETRY_TORCH_CUDA_VARIANT": "cu130",
        },
    }[env_kind]()
    result = run_inprocess(installed, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 1
    assert f"Warning: {warning}" in result.stdout
    assert "Everything is in line." not in result.stdout


def _without_triton(text: str) -> str:
    start = text.index('[[variant.package]]\nname = "triton"')
    end = text.find("[[variant", start + 1)
    return text[:start] + (text[end:] if end != -1 else "")


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ("deleted", "torch-cuda.lock does not exist"),
        ("garbage", "torch-cuda.lock is not valid TOML"),
        ("entry lost", "torch-cuda.lock's cu129 entry lacks triton 3.6.0"),
        ("renamed", "cu129 is not locked"),
        ("stale", "poetry.lock changed since it was written (content-hash)"),
    ],
)
def test_status_check_fails_where_lock_check_does_for_the_variant_installed(
    installed: Project, tmp_path: Path, broken: str, reason: str
) -> None:
    """An env in line passed status --check (and verify: test_proof.py) whatever
    torch-cuda.lock said (gone, garbage, an entry lost or renamed, poetry.lock
    changed since): the next install failed or locked against the network. It
    fails now with the words lock --check prints, offline, for what an install of
    cu129 takes."""
    env = gpu(tmp_path, RTX_4090)
    lock = installed.path / "torch-cuda.lock"
    saved = {p: p.read_bytes() for p in (lock, installed.pyproject, installed.lockfile)}
    text = lock.read_text()
    try:
        if broken == "deleted":
            lock.unlink()
        elif broken == "garbage":
            lock.write_text(text + "a merge left this\n")
        elif broken == "entry lost":
            lock.write_text(_without_triton(text))
        elif broken == "renamed":
            lock.write_text(text.replace('name = "cu129"', 'name = "cu130"'))
        else:  # a bot's `poetry add --lock` with the plugin off
            off = {"POETRY_TORCH_CUDA_DISABLE": "1"}
            added = run_inprocess(installed, "add", "tinyutil", "--lock", env_extra=off)
            assert added.returncode == 0, added
        check = run_inprocess(installed, "torch-cuda", "lock", "--check")
        assert check.returncode == 1, check
        assert reason in check.stderr, check
        words = check.stderr.split("\n", 1)[0]
        if broken == "renamed":  # lock --check also judges the entry now named cu130
            words = f"torch-cuda.lock does not match this project: {reason}."
        status = run_inprocess(
            installed, "torch-cuda", "status", "--check", env_extra=env
        )
        assert status.returncode == 1, status
        assert f"Warning: {words}" in status.stdout, status
        assert "Everything is in line." not in status.stdout, status
    finally:
        for path, data in saved.items():
            path.write_bytes(data)
    assert (
        run_inprocess(
            installed, "torch-cuda", "status", "--check", env_extra=env
        ).returncode
        == 0
    )


def test_a_stale_entry_of_a_variant_this_env_does_not_use_is_a_note(
    installed: Project, tmp_path: Path
) -> None:
    """lock-variants names cu130, which torch-cuda.lock lacks: lock --check fails
    (a commit's guard), status --check of this cu129 env says so and passes."""
    env = gpu(tmp_path, RTX_4090)
    text = installed.pyproject_text()
    installed.write_pyproject(
        text.replace(CU129, f'{CU129}\nlock-variants = ["cu130"]')
    )
    try:
        check = run_inprocess(installed, "torch-cuda", "lock", "--check")
        assert check.returncode == 1, check
        status = run_inprocess(
            installed, "torch-cuda", "status", "--check", env_extra=env
        )
    finally:
        installed.write_pyproject(text)
    assert status.returncode == 0, status
    words = check.stderr.split("\n", 1)[0]
    assert "cu130 is not locked" in words, check
    assert f"Note: {words}" in status.stdout, status


def test_status_check_fails_on_another_build_of_a_package_the_lock_lacks(
    tmp_path: Path, index: IndexServer
) -> None:
    """torch is configured and installed in cu129's build, but poetry.lock does not
    lock it: no install moves it, so --check fails, naming the way to manage it,
    which works; its missing requirements said `poetry install`, which adds none
    (then, beside it, `poetry add torch` once a requirement).
    sync said "no configured package is installed"; it and an install say it too."""
    project = Project.create(
        tmp_path, index, {"filelock": "*"}, 'variant = "cu130"\npackages = ["torch"]'
    )
    project.run("install")
    cu129 = f"{index.url}/whl/cu129"
    project.pip("install", "--no-deps", "--index-url", cu129, "torch==2.14.1+cu129")
    env = no_gpu(tmp_path)

    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)

    said = (
        "torch 2.14.1+cu129 (CUDA 12.9 build) is installed, but poetry.lock "
        "does not lock torch, so no install puts cu130's build in: add it to the "
        "project's dependencies (`poetry add torch`)"
    )
    assert result.returncode == 1, result
    assert f"Warning: {said}" in result.stdout, result
    # `poetry install` installs nothing the lock lacks: not the build's requirements,
    # which the warning's fix puts in (said once, not once a requirement)
    assert "torch 2.14.1+cu129 requires" not in result.stdout, result
    assert "run `poetry install`" not in result.stdout, result
    data = run_json(project, "torch-cuda", "status", env=env)
    assert data["ok"] is False
    assert [p["matches"] for p in data["packages"]] == [False]
    # sync and an install say the same, not that no configured package is
    # installed; so do their dry runs (they said nothing of it)
    for command in (
        ("torch-cuda", "sync", "--dry-run"),
        ("torch-cuda", "switch", "cu130", "--dry-run"),
        ("install", "--dry-run"),
        ("torch-cuda", "sync"),
        ("install",),
    ):
        result = run_inprocess(project, *command, env_extra=env)
        assert result.returncode == 0, result
        assert f"torch-cuda: {said}" in result.stderr, (command, result)
        assert "no configured package is installed" not in result.stdout, result
    project.run("add", "torch", env_extra=env)  # the advice, followed
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 0, result


def test_status_check_fails_on_configured_packages_that_do_not_go_together(
    tmp_path: Path, index: IndexServer
) -> None:
    """torchaudio 2.13.0 (made for torch 2.13.0) beside the locked torch 2.14.1: its
    range accepts it, so only the install's own check of the installed
    requirements can tell, and status --check now runs it too."""
    project = Project.create(
        tmp_path,
        index,
        {"torch": "*"},
        'variant = "cu130"\npackages = ["torch", "torchaudio>=2.13"]',
    )
    project.run("install")
    cu130 = f"{index.url}/whl/cu130"
    project.pip(
        "install", "--no-deps", "--index-url", cu130, "torchaudio==2.13.0+cu130"
    )
    env = no_gpu(tmp_path)

    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)

    assert result.returncode == 1, result
    assert (
        "Warning: torchaudio 2.13.0+cu130 depends on torch==2.13.0, but torch "
        "2.14.1+cu130 is installed; `poetry torch-cuda sync --force` reinstalls "
        "the build"
    ) in result.stdout, result
    project.run("torch-cuda", "sync", "--force", env_extra=env)
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 0, result


@no_real_driver
def test_status_without_gpu_is_a_note_not_a_failure(
    installed: Project, tmp_path: Path
) -> None:
    data = run_json(installed, "torch-cuda", "status", "--check", env=no_gpu(tmp_path))
    assert data["ok"] is True
    assert data["machine"]["nvidia_driver"] is None
    assert data["notes"] == [
        "no NVIDIA driver found on this machine: cu129's torch runs on the CPU only here"
    ]


def _torch_uninstalled_by_hand(
    tmp_path: Path, index: IndexServer
) -> tuple[Project, dict[str, str]]:
    """cu129 installed on a machine without a GPU, then ``pip uninstall -y torch``."""
    project = Project.create(tmp_path, index, DEPS, CU129)
    env = no_gpu(tmp_path)
    project.run("install", env_extra=env)
    project.pip("uninstall", "-y", "torch")
    return project, env


def test_status_does_not_call_the_wheels_of_a_removed_torch_unneeded(
    tmp_path: Path, index: IndexServer
) -> None:
    """torch was uninstalled by hand: status said its CUDA wheels were "nothing
    needs" and to run `sync`, which removed them and installed nothing; it says
    to run `poetry install`, which (as `sync` now does too) puts torch back and
    needs them."""
    project, env = _torch_uninstalled_by_hand(tmp_path, index)
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 1, result
    assert (
        "Warning: torch 2.14.1+cu129 is not installed; run `poetry install`"
        in result.stdout
    ), result
    assert "nothing needs" not in result.stdout, result
    assert "Orphans      none" in result.stdout, result
    project.run("install", env_extra=env)
    assert project.installed()["triton"] == "3.6.0"
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 0, result


def test_sync_puts_back_a_removed_torch_that_the_environment_needs(
    tmp_path: Path, index: IndexServer
) -> None:
    """torch was uninstalled by hand: sync removed its CUDA wheels, installed
    nothing and said "cu129 already installed"; torchvision and needs-torch
    require it, so sync (and its dry run) installs the locked build again."""
    project, env = _torch_uninstalled_by_hand(tmp_path, index)
    result = run_inprocess(project, "torch-cuda", "sync", "--dry-run", env_extra=env)
    assert result.returncode == 0, result
    assert "would install torch==2.14.1+cu129 from" in result.stdout, result
    assert "already installed" not in result.stdout, result
    _sync_puts_the_locked_torch_back(project, env)


def test_sync_puts_back_a_removed_torch_that_only_another_package_needs(
    tmp_path: Path, index: IndexServer
) -> None:
    """The project needs torch through needs-torch alone, in an optional group
    installed with --with gpu; torch was uninstalled by hand: status called its
    triton "nothing needs" and sync removed it, installing nothing."""
    project = Project.create(tmp_path, index, {"filelock": "*"}, CU129)
    project.write_pyproject(
        project.pyproject_text() + "\n[tool.poetry.group.gpu]\noptional = true\n"
        '[tool.poetry.group.gpu.dependencies]\nneeds-torch = "*"\n'
    )
    env = no_gpu(tmp_path)
    project.run("install", "--with", "gpu", env_extra=env)
    project.pip("uninstall", "-y", "torch")
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 1, result
    assert (
        "Warning: torch 2.14.1+cu129 is not installed; run `poetry torch-cuda sync`"
        in result.stdout
    ), result
    assert "nothing needs" not in result.stdout, result
    _sync_puts_the_locked_torch_back(project, env)


def _sync_puts_the_locked_torch_back(project: Project, env: dict[str, str]) -> None:
    """`sync` installs the locked torch and its triton again, and `status --check`
    passes after it."""
    result = run_inprocess(project, "torch-cuda", "sync", env_extra=env)
    assert result.returncode == 0, result
    assert "already installed" not in result.stdout, result
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cu129", result
    assert installed["triton"] == "3.6.0", result
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 0, result


def test_a_damaged_metadata_fails_the_guards_naming_it(
    tmp_path: Path, index: IndexServer
) -> None:
    """torch's METADATA lost its Version (an install killed while writing it):
    status and verify crashed ("'NoneType' object has no attribute 'lower'") or
    reported a torch "None"; they name the damaged file and the way out."""
    project = Project.create(tmp_path, index, DEPS, CU129)
    env = no_gpu(tmp_path)
    project.run("install", env_extra=env)
    (dist_info,) = project.site_packages().glob("torch-*.dist-info")
    for damaged in ("garbage\n", "Metadata-Version: 2.1\nName: torch\n"):
        (dist_info / "METADATA").write_text(damaged)
        for command in ("status --check", "verify"):
            result = run_inprocess(
                project, "torch-cuda", *command.split(), env_extra=env
            )
            assert result.returncode == 1, result
            assert " ".join(result.stderr.split()) == (
                f"torch's METADATA in {project.site_packages()} names no version: a "
                "damaged install. Delete torch's .dist-info folder there, then run "
                "`poetry install`."
            ), result


def test_the_way_out_of_a_damaged_metadata_puts_the_package_back(
    tmp_path: Path, index: IndexServer
) -> None:
    """The damaged-METADATA message said "then run `poetry torch-cuda sync
    --force`" for any package; sync puts back no package of Poetry's that torch does
    not need (needs-torch). The way it names puts back a package of either side."""
    project = Project.create(tmp_path, index, DEPS, CU129)
    env = no_gpu(tmp_path)
    project.run("install", env_extra=env)
    before = project.installed()
    for name in ("needs-torch", "torch"):
        (dist_info,) = project.site_packages().glob(f"{name.replace('-', '_')}-*")
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n")
        result = run_inprocess(project, "torch-cuda", "sync", "--force", env_extra=env)
        assert result.returncode == 1, result
        assert " ".join(result.stderr.split()) == (
            f"{name}'s METADATA in {project.site_packages()} names no version: a "
            f"damaged install. Delete {name}'s .dist-info folder there, then run "
            "`poetry install`."
        ), result
        shutil.rmtree(dist_info)
        project.run("install", env_extra=env)
        assert project.installed() == before
        project.run("torch-cuda", "status", "--check", env_extra=env)


def test_the_way_out_of_a_version_that_is_no_version_puts_the_build_back(
    tmp_path: Path, index: IndexServer
) -> None:
    """torchvision's METADATA says `Version: banana` (a disk, a hand edit): status and
    verify name the file written over and `sync --force`, which crashed ("Invalid
    version: 'banana'") before it asked pip for anything. It puts the build back."""
    project = Project.create(tmp_path, index, DEPS, CU129)
    env = no_gpu(tmp_path)
    project.run("install", env_extra=env)
    (dist_info,) = project.site_packages().glob("torchvision-*.dist-info")
    metadata = dist_info / "METADATA"
    metadata.write_text(metadata.read_text().replace("0.29.1+cu129", "banana"))
    for command in ("status --check", "verify"):
        result = run_inprocess(project, "torch-cuda", *command.split(), env_extra=env)
        assert result.returncode == 1, result
        shown = " ".join((result.stdout + result.stderr).split())
        assert "torchvision: 1 of its files changed since install" in shown, result
        assert "`poetry torch-cuda sync --force` reinstalls the build" in shown, result
    result = run_inprocess(project, "torch-cuda", "sync", "--force", env_extra=env)
    assert result.returncode == 0, result
    assert project.installed()["torchvision"] == "0.29.1+cu129"
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 0, result


COPIED = "a hand copy, or an install that kept the other (pip --ignore-installed, say)"


def test_two_dist_info_folders_of_torch_fail_the_guards_naming_both(
    tmp_path: Path, index: IndexServer
) -> None:
    """A hand copy left a second torch .dist-info beside the installed one: status
    --check passed when the right one was read first (the filesystem's order),
    though pip and imports may take the other's; status and verify name both
    folders, and its cause: it said "an interrupted install left it incomplete"."""
    project = Project.create(tmp_path, index, DEPS, CU129)
    env = no_gpu(tmp_path)
    project.run("install", env_extra=env)
    site = project.site_packages()
    right = site / "torch-2.14.1+cu129.dist-info"
    stale = site / "torch-2.13.0.dist-info"
    shutil.copytree(right, stale)
    metadata = stale / "METADATA"
    metadata.write_text(
        metadata.read_text().replace("Version: 2.14.1+cu129", "Version: 2.13.0")
    )
    for command in ("status --check", "verify"):
        result = run_inprocess(project, "torch-cuda", *command.split(), env_extra=env)
        assert result.returncode == 1, result
        assert (
            f"torch: 2 .dist-info folders in {site} (torch-2.13.0.dist-info, "
            "torch-2.14.1+cu129.dist-info), so pip and imports may read either "
            "(delete the stale one first)"
        ) in " ".join((result.stdout + result.stderr).split()), result
        assert COPIED in " ".join((result.stdout + result.stderr).split()), result
        assert "incomplete" not in result.stdout + result.stderr, result


def test_a_conflicted_poetry_lock_fails_every_guard_naming_the_lock_file(
    tmp_path: Path, index: IndexServer
) -> None:
    """A merge left conflict markers in poetry.lock: status said only "Invalid
    statement (at line …)", naming no file; it says what verify and lock --check
    say (Poetry's own words for it)."""
    project = Project.create(tmp_path, index, DEPS, CU129)
    project.run("lock")
    text = project.lock_text()
    cut = text.index('[[package]]\nname = "torch"')
    project.lockfile.write_text(
        f"{text[:cut]}<<<<<<< HEAD\n{text[cut:]}=======\n>>>>>>> bot\n"
    )
    env = no_gpu(tmp_path)
    for command in ("status --check", "verify", "lock --check"):
        result = run_inprocess(project, "torch-cuda", *command.split(), env_extra=env)
        assert result.returncode == 1, result
        assert "Unable to read the lock file (" in result.stderr, (command, result)


def test_a_venv_whose_python_is_gone_fails_the_guards_naming_it(
    tmp_path: Path, index: IndexServer
) -> None:
    """The Python the venv was made from was removed (a pyenv or Homebrew
    upgrade): its links dangle. Every reading command fails with the cause and
    the fix, never Poetry's bare ``No such file or directory: 'python'`` (Poetry
    2.0-2.4 run the venv's Python to make it, before any check, ``poetry install``
    too: the fix deletes the folder first); the guards pass again after it."""
    project = Project.create(tmp_path, index, DEPS, CU129)
    env = no_gpu(tmp_path)
    project.run("install", env_extra=env)
    for link in (project.venv / "bin").glob("python*"):
        link.unlink()
        link.symlink_to(tmp_path / "removed-python" / "python3")
    for command in ("status --check", "verify", "detect"):
        result = run_inprocess(project, "torch-cuda", *command.split(), env_extra=env)
        assert result.returncode == 1, result
        assert "No such file or directory" not in result.stderr, result
        assert (
            f"The virtualenv {project.venv} is broken: its Python is missing, or "
            "links to a Python that was removed; delete it, then run `poetry install`."
        ) in " ".join(result.stderr.split()), result
    shutil.rmtree(project.venv)
    project.run("install", env_extra=env)
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 0, result


def test_variants_for_the_locked_torch(
    installed: Project, index: IndexServer, tmp_path: Path
) -> None:
    env = gpu(tmp_path, RTX_4090)
    data = run_json(installed, "torch-cuda", "variants", env=env)
    assert data["packages"] == {"torch": "2.14.1", "torchvision": "0.29.1"}
    assert data["auto"] == "cu129"
    rows = {row["variant"]: row for row in data["variants"]}
    assert list(rows) == ["cpu", "cu130", "cu129", "cu128", "cu126", "rocm6.4"]
    assert (
        rows["cu129"]["offered"],
        rows["cu129"]["usable"],
        rows["cu129"]["configured"],
    ) == (True, True, True)
    assert (rows["cu130"]["offered"], rows["cu130"]["usable"]) == (True, False)
    assert rows["cu130"]["reasons"] == [
        (
            "needs driver >= 580 (CUDA 13.x minor-version compatibility) or >= "
            "580.65.06 (full CUDA 13.0 support); driver 575.51.03 supports CUDA 12.9"
        )
    ]
    assert (rows["cu128"]["offered"], rows["cu128"]["usable"]) == (True, True)
    assert rows["cu126"]["offered"] is False
    assert rows["cu126"]["packages"][0]["versions"] == ["2.13.0"]
    assert (rows["rocm6.4"]["offered"], rows["rocm6.4"]["usable"]) == (True, False)

    # Asked again within the cache's lifetime: the index hears nothing.
    index.clear_requests()
    shown = run_inprocess(installed, "torch-cuda", "variants", env_extra=env)
    assert shown.returncode == 0, shown
    text = shown.stdout
    assert index.requests == []
    assert "cu129    offered  runs here  (configured, auto's pick)" in text
    assert "index: no torch 2.14.1+cu126 (it has 2.13.0)" in text


def test_variants_from_an_html_only_index(
    installed: Project, index: IndexServer, tmp_path: Path
) -> None:
    index.serve_json = False
    data = run_json(
        installed,
        "torch-cuda",
        "variants",
        "cu129",
        "cu126",
        "--refresh",
        env=gpu(tmp_path, RTX_4090),
    )
    assert [r["variant"] for r in data["variants"]] == ["cu129", "cu126"]
    assert [r["offered"] for r in data["variants"]] == [True, False]
    assert {r.path for r in index.records if r.path.endswith("/torch/")} == {
        "/whl/cu129/torch/",
        "/whl/cu126/torch/",
    }


def test_an_index_that_is_down_is_said_once_for_every_row(
    installed: Project, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **gpu(tmp_path, RTX_4090),
        "POETRY_TORCH_CUDA_INDEX_URL": f"http://127.0.0.1:{port}/whl/{{variant}}",
    }
    # First the failure itself, then the host remembered as down: the same one line.
    for args in (("--refresh",), ()):
        shown = run_inprocess(installed, "torch-cuda", "variants", *args, env_extra=env)
        assert shown.returncode == 0, shown
        lines = shown.stdout.splitlines()
        assert "  cu129      unknown  runs here  (configured, auto's pick)" in lines
        said = (
            f"Index (every unknown row): 127.0.0.1:{port} refused the connection. "
            "Check the network and POETRY_TORCH_CUDA_INDEX_URL (this run's mirror), "
            "or unset it to use the configured index."
        )  # the variable named the dead index: not index-url's advice
        assert [line for line in lines if line.startswith("Index")] == [said]
        assert not [line for line in lines if line.strip().startswith("index:")]


# -- sync --------------------------------------------------------------------------


def test_sync_replaces_pypis_build_without_a_poetry_run(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    project = project_factory(DEPS, CU129)
    project.run("install", env_extra={"POETRY_TORCH_CUDA_DISABLE": "1"})
    env = gpu(tmp_path, RTX_4090)

    data = run_json(project, "torch-cuda", "status", "--check", env=env, code=1)
    torch = data["packages"][0]["installed"]
    assert torch == {
        "version": "2.14.1",
        "label": None,
        "build": "PyPI default build, CUDA 13.0",
        "cuda": "13.0",
    }
    assert data["packages"][0]["matches"] is False

    result = run_inprocess(project, "torch-cuda", "sync", "--dry-run", env_extra=env)
    assert result.returncode == 0, result
    assert (
        "would install torch==2.14.1+cu129, torchvision==0.29.1+cu129" in result.stdout
    )
    assert project.installed()["torch"] == "2.14.1"

    result = project.run("torch-cuda", "sync", env_extra=env)
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cu129"
    assert installed["torchvision"] == "0.29.1+cu129"
    assert "nvidia-cublas" not in installed  # PyPI's cu13 wheels are swept
    assert "cuda-toolkit" not in installed
    assert "removed 4 unused CUDA wheels" in result.stdout
    assert run_json(project, "torch-cuda", "status", "--check", env=env)["ok"]

    result = project.run("torch-cuda", "sync", env_extra=env)
    assert "cu129 already installed" in result.stdout

    metadata = next(project.site_packages().glob("torch-*.dist-info")) / "METADATA"
    before = metadata.stat().st_mtime_ns
    result = project.run("torch-cuda", "sync", "--force", env_extra=env)
    assert "installed torch 2.14.1+cu129, torchvision 0.29.1+cu129" in result.stdout
    assert metadata.stat().st_mtime_ns != before  # pip really reinstalled it
    assert project.installed()["torch"] == "2.14.1+cu129"


# -- auto and switch --------------------------------------------------------------


def test_auto_installs_what_the_machine_runs(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    project = project_factory(DEPS, 'variant = "auto"')
    env = gpu(tmp_path, RTX_4090)
    project.run("install", env_extra=env)
    assert project.installed()["torch"] == "2.14.1+cu129"
    # One nvidia-smi call for the whole install.
    assert len(stub_calls(tmp_path / "machine" / "nvidia-smi")) == 1

    # The same pyproject.toml on a teammate's Pascal box: cu126 lacks 2.14.1, so cpu.
    pascal = machine_env(
        tmp_path / "pascal", nvidia_smi=smi_line("575.51.03", *GTX_1080)
    )
    result = project.run("install", "-v", env_extra=pascal)
    assert project.installed()["torch"] == "2.14.1+cpu"
    assert "torch-cuda: auto -> cpu" in result.stdout
    assert "cu129: skipped, not built for sm_61" in result.stdout
    assert "nvidia-cublas-cu12" not in project.installed()

    data = run_json(project, "torch-cuda", "status", "--check", env=pascal)
    assert data["variant"]["configured"] == "auto"
    assert data["variant"]["resolved"] == "cpu"


def test_switch_auto_writes_auto_unless_pinned(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    project = project_factory(DEPS, 'variant = "cpu"')
    env = gpu(tmp_path, RTX_4090)
    project.run("install", env_extra=env)
    result = project.run("torch-cuda", "switch", "auto", env_extra=env)
    assert 'variant = "auto"' in project.pyproject_text()
    assert project.installed()["torch"] == "2.14.1+cu129"
    assert "(auto: cu129)" in result.stdout

    result = project.run("torch-cuda", "switch", "auto", "--pin", env_extra=env)
    assert 'variant = "cu129"' in project.pyproject_text()
    assert "cu129 already installed" in result.stdout


# -- lock time -----------------------------------------------------------------------


def test_lock_warns_when_the_variant_lacks_the_locked_torch(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    project = project_factory({"torch": "*"}, 'variant = "cu126"')
    result = run_inprocess(project, "lock")
    assert result.returncode == 0, result
    assert (
        "torch-cuda: cu126 has no build of torch 2.14.1 (locked in poetry.lock) at "
        f"{index.whl_url('cu126')}; it has torch 2.13.0." in result.stderr
    )
    # torch-cuda.lock is not written either; re-locking would fail the same way,
    # so the warning gives the ways on that work, not "Run `poetry torch-cuda lock`".
    assert "could not update torch-cuda.lock" in result.stderr, result
    assert "Choose a variant that has it" in result.stderr, result
    assert "Run `poetry torch-cuda lock`" not in result.stderr, result
    assert [p for p in index.requests if p.startswith("/whl/")] == ["/whl/cu126/torch/"]

    index.clear_requests()
    result = run_inprocess(project, "lock", "--regenerate")
    assert result.returncode == 0, result
    assert "cu126 has no build of torch 2.14.1" in result.stderr
    assert [p for p in index.requests if p.startswith("/whl/")] == []  # cached

    project.write_pyproject(
        project.pyproject_text().replace('"torch",', '"torch==2.13.0",')
    )
    result = run_inprocess(project, "lock")
    assert result.returncode == 0, result
    assert "torch-cuda" not in result.stderr


@pytest.mark.parametrize(
    ("fault", "way_on"),
    [
        (
            "bad_hash_paths",  # the wheel's bytes are not those its sha256 names
            (
                "A published file never changes: treat this as a compromised or "
                "broken mirror and tell whoever runs it."
            ),
        ),
        (
            "hashless_paths",
            (
                "Use an index that lists them (index-url, or the url of the source "
                "named by source)."
            ),
        ),
    ],
)
def test_lock_warns_with_the_way_on_when_the_index_lists_no_or_a_wrong_sha256(
    project_factory: ProjectFactory, index: IndexServer, fault: str, way_on: str
) -> None:
    """Re-locking meets the same index again: the warning after `poetry lock`
    ends with what the user can do instead."""
    project = project_factory({"torch": "*"}, 'variant = "cu129"')
    index.serve_metadata = False  # the wheel itself is read, checked by its sha256
    getattr(index, fault).add("/whl/cu129/torch/")
    result = run_inprocess(project, "lock")
    assert result.returncode == 0, result
    said = " ".join(result.stderr.split())
    assert "could not update torch-cuda.lock" in said, result
    assert said.endswith(way_on), said
    assert not (project.path / "torch-cuda.lock").exists()


def test_lock_counts_one_package_in_the_singular(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory({"torch": "*"}, 'variant = "cpu"')
    result = run_inprocess(project, "lock")
    assert result.returncode == 0, result
    assert "wrote torch-cuda.lock (cpu: 1 package, 1 file)" in result.stdout, result


def test_variants_names_the_pick_auto_makes_even_beside_a_newer_variant(
    tmp_path: Path,
) -> None:
    """A variant newer than the tables (cu133 on the index) is listed when asked
    for, but auto never installs it, so `variants` must not say auto picks it."""
    from tests.support.catalog import build_universe
    from tests.support.fixtures import served

    universe = build_universe(tmp_path / "universe")
    universe.add_wheel("cu133", "torch", "2.14.1+cu133")
    env = gpu(tmp_path, RTX_4090, driver="580.65.06")
    with next(served(universe.root)) as index:
        project = Project.create(
            tmp_path, index, {"needs-torch": "*"}, 'variant = "auto"'
        )
        project.run("lock")
        detect = run_json(project, "torch-cuda", "detect", env=env)
        listed = run_inprocess(
            project, "torch-cuda", "variants", "cu133", "cu130", env_extra=env
        )
    assert listed.returncode == 0, listed
    assert "cu133  offered" in listed.stdout, listed
    assert f"auto picks {detect['variant']} on this machine." in listed.stdout, listed
