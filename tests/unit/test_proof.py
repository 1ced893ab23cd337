"""The verdict on probe reports, the arch-list parser, auto's memory, the verify keys."""

from __future__ import annotations

import json
import re
import sys
import time
import venv
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest
from poetry.utils.env import MockEnv

from poetry_torch_cuda.errors import ConfigError
from poetry_torch_cuda.index.offers import Offer
from poetry_torch_cuda.machine import resolution
from poetry_torch_cuda.machine.probe import Machine
from poetry_torch_cuda.machine.probe import Rocm
from poetry_torch_cuda.machine.probe import RocmGpu
from poetry_torch_cuda.machine.tables import Arch
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.variants import parse_variant
from poetry_torch_cuda.proof.run import MARKER
from poetry_torch_cuda.proof.run import ChildRun
from poetry_torch_cuda.proof.run import parse_output
from poetry_torch_cuda.proof.run import run_child
from poetry_torch_cuda.proof.verdict import judge
from poetry_torch_cuda.proof.verdict import parse_archs
from tests.support.fake_torch import fake_torch
from tests.support.machines import nvidia_machine as nvidia


if TYPE_CHECKING:
    from poetry_torch_cuda.project.variants import Variant

NO_GPU = Machine("linux", "x86_64", notes=("nvidia-smi not found on PATH",))


def report(
    version: str,
    *,
    imports: bool = True,
    error: str | None = None,
    cuda: str | None = None,
    available: bool = False,
    archs: list[str] | None = None,
    devices: list[dict[str, Any]] | None = None,
    compute: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    entry = {"installed": True, "version": version, "imports": imports, "error": error}
    torch = None
    if imports:
        torch = {
            "version": version,
            "cuda": cuda,
            "hip": None,
            "cudnn": None,
            "arch_list": archs or [],
            "is_available": available,
            "devices": devices or [],
        }
    return {
        "packages": {"torch": entry},
        "torch": torch,
        "compute": compute or [{"device": "cpu", "ok": True, "error": None}],
        "torchvision_op": None,
    }


def failures(data: dict[str, Any], variant: str, machine: Machine) -> list[str]:
    verdict = judge(ChildRun(data), parse_variant(variant), machine, ["torch"])
    return [check.message for check in verdict.failures]


def test_a_cpu_build_on_a_machine_without_gpu_passes() -> None:
    verdict = judge(
        ChildRun(report("2.13.0+cpu")), parse_variant("cpu"), NO_GPU, ["torch"]
    )
    assert verdict.ok
    assert [c.message for c in verdict.checks if c.status == "ok"] == [
        "torch 2.13.0+cpu imports",
        "torch 2.13.0+cpu: CPU-only build",
        "computes on the CPU",
    ]


def test_a_cuda_build_without_gpu_is_a_note_not_a_failure() -> None:
    data = report("2.14.1+cu129", cuda="12.9", archs=["sm_90"])
    verdict = judge(ChildRun(data), parse_variant("cu129"), NO_GPU, ["torch"])
    assert verdict.ok
    notes = [c.message for c in verdict.checks if c.status == "note"]
    assert notes == [
        (
            "no GPU on this machine (nvidia-smi not found on PATH): the GPU checks "
            "were skipped"
        )
    ]


def test_a_failing_nvidia_smi_is_not_called_no_gpu() -> None:
    """nvidia-smi is there and fails, /proc has no driver: a broken driver, or a VM
    without a GPU; the note said "no GPU on this machine" (status: cannot be checked)."""
    smi = "nvidia-smi failed: exit status 9; fix the NVIDIA driver"
    broken = Machine("linux", "x86_64", notes=(smi, "no /proc/driver/nvidia"))
    data = report("2.14.1+cu129", cuda="12.9", archs=["sm_90"])
    verdict = judge(ChildRun(data), parse_variant("cu129"), broken, ["torch"])
    assert verdict.ok
    notes = [c.message for c in verdict.checks if c.status == "note"]
    why = f"({smi}; no /proc/driver/nvidia)"
    assert notes == [f"the GPU cannot be checked {why}: the GPU checks were skipped"]


@pytest.mark.parametrize(
    ("variant", "version", "build", "machine", "has"),
    [
        ("cu130", "2.14.1+cu130", {"cuda": "13.0"}, "amd", "GPU 0 (AMD Radeon"),
        ("rocm6.4", "2.14.1+rocm6.4", {"hip": "6.4.43482"}, "nvidia", "GPU 0 (NVIDIA"),
    ],
    ids=["cuda-on-amd", "rocm-on-nvidia"],
)
def test_a_build_for_the_other_vendors_gpus_verifies_with_a_note(
    variant: str, version: str, build: dict[str, str], machine: str, has: str
) -> None:
    data = report(version, **({"cuda": build["cuda"]} if "cuda" in build else {}))
    data["torch"]["hip"] = build.get("hip")
    amd = Machine(
        "linux",
        "x86_64",
        rocm=Rocm("6.4.1", (RocmGpu(0, "gfx1100", "AMD Radeon RX 7900 XTX"),)),
        notes=("nvidia-smi not found on PATH",),
    )
    gtx = nvidia("575.51.03", ("NVIDIA GeForce GTX 1080", (6, 1)))
    verdict = judge(
        ChildRun(data),
        parse_variant(variant),
        amd if machine == "amd" else gtx,
        ["torch"],
    )
    assert verdict.ok
    (note,) = [c.message for c in verdict.checks if c.status == "note"]
    assert has in note
    assert f"the {variant} build uses none of this machine's GPUs" in note
    assert f"(note: {note})" in verdict.summary()


def test_an_import_error_of_a_cuda_library_is_a_machine_reason() -> None:
    error = "OSError: libcudnn.so.9: cannot open shared object file"
    data = report("2.14.1+cu128", imports=False, error=error)
    verdict = judge(ChildRun(data), parse_variant("cu128"), NO_GPU, ["torch"])
    assert [c.message for c in verdict.failures] == [
        f"torch 2.14.1+cu128 does not import: {error}"
    ]
    assert verdict.machine_reason


def test_a_failure_with_a_traceback_says_how_to_see_it() -> None:
    error = "OSError: libc10.so: cannot open shared object file"
    data = report("2.13.0+cpu", imports=False, error=error)
    data["packages"]["torch"]["traceback"] = "Traceback (most recent call last): ..."
    verdict = judge(ChildRun(data), parse_variant("cpu"), NO_GPU, ["torch"])
    message = verdict.failure_message()
    assert message.startswith(f"torch 2.13.0+cpu does not import: {error}\nCause: ")
    assert message.endswith("\n(-vvv shows the traceback of the check.)")
    assert verdict.failure_message(debug=True).endswith(
        "\ntorch:\nTraceback (most recent call last): ..."
    )
    passed = judge(
        ChildRun(report("2.13.0+cpu")), parse_variant("cpu"), NO_GPU, ["torch"]
    )
    assert passed.trace_lines(debug=False) == []


def test_an_import_error_of_a_cpu_build_is_not_a_machine_reason() -> None:
    error = "OSError: libc10.so: cannot open shared object file"
    data = report("2.13.0+cpu", imports=False, error=error)
    verdict = judge(ChildRun(data), parse_variant("cpu"), NO_GPU, ["torch"])
    assert not verdict.ok
    assert not verdict.machine_reason
    assert (
        verdict.failures[0].fix
        == "`poetry torch-cuda sync --force` reinstalls the build"
    )


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("torchaudio", "OSError: libtorchaudio.so: undefined symbol: _ZNK5torch8auto"),
        ("torchvision", "RuntimeError: operator torchvision::nms does not exist"),
    ],
)
def test_a_package_built_for_another_torch_is_not_this_machine_s_failure(
    name: str, error: str
) -> None:
    """torch runs; a torchaudio or torchvision pip put in for another torch fails to
    import as the real ones do. auto must not remember the variant as failing here."""
    data = report("2.14.1+cu130", cuda="13.0")
    entry = {"installed": True, "version": "0.1.0+cu130", "imports": False}
    data["packages"][name] = {**entry, "error": error}
    verdict = judge(
        ChildRun(data), parse_variant("cu130"), NO_GPU, ["torch", name], auto=True
    )
    assert [(c.cause, c.fix, c.machine) for c in verdict.failures] == [
        (
            f"{name} was built for another torch (or another variant)",
            "`poetry torch-cuda sync --force` reinstalls the build",
            False,
        )
    ]


def test_a_broken_build_no_install_moves_gets_the_fix_that_moves_it() -> None:
    """A +cu129 torch installed by hand that poetry.lock does not lock (Plan.unmoved)
    fails to import: the fix was `sync --force`, which moves no such build."""
    fix = "add it to the project's dependencies (`poetry add torch`)"
    unmoved = {"torch": ("torch … is installed, but …", "not locked", fix)}
    data = report("2.14.1+cu129", imports=False, error="ImportError: no _C")
    verdict = judge(
        ChildRun(data), parse_variant("cpu"), NO_GPU, ["torch"], unmoved=unmoved
    )
    assert [(c.message, c.fix) for c in verdict.failures] == [
        ("torch 2.14.1+cu129 does not import: ImportError: no _C", fix)
    ]


def test_a_driver_too_old_for_the_build_names_the_driver_and_the_fix() -> None:
    machine = nvidia("535.104.05", ("NVIDIA GeForce RTX 4090", (8, 9)))
    data = report("2.14.1+cu130", cuda="13.0", archs=["sm_90"])
    verdict = judge(ChildRun(data), parse_variant("cu130"), machine, ["torch"])
    (failure,) = verdict.failures
    # the driver rule's own words, as detect says them (issue 21 item 4)
    assert failure.message == (
        "torch 2.14.1+cu130 cannot use the GPU: needs driver >= 580 (CUDA 13.x "
        "minor-version compatibility) or >= 580.65.06 (full CUDA 13.0 support); "
        "driver 535.104.05 supports CUDA 12.2"
    )
    # without auto's decision no variant is named: detect knows the offers
    assert failure.fix == (
        "update the driver, or `poetry torch-cuda detect` shows which build runs here"
    )
    assert verdict.machine_reason


def test_a_gpu_the_driver_reports_but_torch_does_not_see_fails() -> None:
    machine = nvidia("575.51.03", ("NVIDIA GeForce RTX 4090", (8, 9)))
    data = report("2.14.1+cu129", cuda="12.9", archs=["sm_89"])
    assert failures(data, "cu129", machine) == [
        (
            "torch 2.14.1+cu129 cannot use the GPU: nvidia-smi reports GPU 0 (NVIDIA "
            "GeForce RTX 4090, sm_89) but torch.cuda.is_available() is False"
        )
    ]


def test_a_gpu_outside_the_compiled_arch_list_fails() -> None:
    machine = nvidia("575.51.03", ("NVIDIA GeForce GTX 1080", (6, 1)))
    device = {"index": 0, "name": "NVIDIA GeForce GTX 1080", "capability": "6.1"}
    data = report(
        "2.13.0+cu126",
        cuda="12.6",
        available=True,
        archs=["sm_75", "sm_80", "sm_90"],
        devices=[device],
        compute=[
            {"device": "cpu", "ok": True, "error": None},
            {
                "device": "cuda:0",
                "ok": False,
                "error": "RuntimeError: CUDA error: no kernel image is available",
            },
        ],
    )
    verdict = judge(ChildRun(data), parse_variant("cu126"), machine, ["torch"])
    messages = [c.message for c in verdict.failures]
    assert messages[0] == (
        "torch 2.13.0+cu126 is not built for GPU 0 (NVIDIA GeForce GTX 1080, sm_61): "
        "it builds sm_75..sm_90"
    )
    assert messages[1].startswith(
        "torch 2.13.0+cu126 cannot compute on GPU 0 (NVIDIA GeForce GTX 1080)"
    )
    assert verdict.machine_reason


def test_a_torch_that_fails_on_the_cpu_and_the_gpu_alike_is_a_broken_build() -> None:
    """The same error on the CPU and the GPU is the build's, not the GPU's: said once,
    with the fix for a broken build, and no GPU to blame."""
    machine = nvidia("575.51.03", ("NVIDIA GeForce RTX 4090", (8, 9)))
    device = {"index": 0, "name": "NVIDIA GeForce RTX 4090", "capability": "8.9"}
    error = "RuntimeError: Could not run 'aten::empty.memory_format'"
    data = report(
        "2.14.1+cu129",
        cuda="12.9",
        available=True,
        archs=["sm_89"],
        devices=[device],
        compute=[
            {"device": "cpu", "ok": False, "error": error},
            {"device": "cuda:0", "ok": False, "error": error},
        ],
    )
    verdict = judge(ChildRun(data), parse_variant("cu129"), machine, ["torch"])
    assert verdict.failure_message() == (
        f"torch 2.14.1+cu129 cannot compute on the CPU: {error}\n"
        "Cause: the installed torch is broken.\n"
        "Fix: `poetry torch-cuda sync --force` reinstalls the build."
    )
    assert not verdict.machine_reason


def test_ptx_covers_newer_gpus() -> None:
    machine = nvidia("580.95.05", ("NVIDIA B300", (10, 3)), ("RTX 5090", (12, 0)))
    data = report(
        "2.14.1+cu130", cuda="13.0", available=True, archs=["sm_90", "compute_90"]
    )
    assert failures(data, "cu130", machine) == []


def test_a_label_other_than_the_variant_fails() -> None:
    assert failures(report("2.14.1+cu129"), "cu130", NO_GPU)[0] == (
        "torch 2.14.1+cu129 is the +cu129 build, not the cu130 build"
    )


def test_a_torchvision_operator_mismatch_fails() -> None:
    data = report("2.14.1+cpu")
    data["torchvision_op"] = {
        "name": "torchvision.ops.nms",
        "ok": False,
        "error": "RuntimeError: operator torchvision::nms does not exist",
    }
    verdict = judge(ChildRun(data), parse_variant("cpu"), NO_GPU, ["torch"])
    (failure,) = verdict.failures
    assert (
        failure.cause == "torchvision was built for another torch (or another variant)"
    )


def test_no_report_fails_with_the_reason() -> None:
    verdict = judge(
        ChildRun(None, "the check did not finish within 120 s"),
        parse_variant("cpu"),
        NO_GPU,
        [],
    )
    assert verdict.failures[0].message == (
        "could not check the build: the check did not finish within 120 s"
    )


def test_parse_archs() -> None:
    assert parse_archs(["sm_75", "sm_120", "compute_120", "sm_90a", "bogus"]) == (
        Arch(7, 5),
        Arch(9, 0),
        Arch(12, 0, ptx=True),
    )


def test_the_readme_documents_every_key_of_verify_json() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("`--json` prints one object whose layout is stable")[1]
    table = table.split("\n\n")[1]  # the table after that sentence
    documented = set(re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", table, re.MULTILINE))
    documented = {key for pair in documented for key in pair if key}
    proof = judge(ChildRun(None, "x"), parse_variant("cpu"), NO_GPU, ["torch"])
    keys = proof.to_json(configured=parse_variant("cpu"))
    assert documented == set(keys)
    unchecked = judge(
        ChildRun(None, "x", unchecked=("", "")), parse_variant("cpu"), NO_GPU, []
    ).to_json(configured=parse_variant("cpu"))
    assert (unchecked["ok"], unchecked["checked"]) == (False, False)
    ok_row = next(line for line in table.splitlines() if line.startswith("| `ok`"))
    assert "`checked`" in ok_row  # a check that could not finish is no failure


def test_verify_json_does_not_call_a_package_missing_when_the_check_crashed() -> None:
    crashed = ChildRun(None, "the check process was killed by SIGSEGV")
    proof = judge(crashed, parse_variant("cpu"), NO_GPU, ["torch"])
    data = proof.to_json(configured=parse_variant("cpu"))
    assert data["packages"]["torch"]["installed"] is None  # unknown, not "missing"
    nothing = judge(ChildRun({"packages": {}}), parse_variant("cpu"), NO_GPU, ["torch"])
    empty = nothing.to_json(configured=parse_variant("cpu"))
    assert empty["packages"]["torch"]["installed"] is False  # no environment yet


# -- the child and its output ---------------------------------------------------------


def test_parse_output_takes_the_last_marker_line() -> None:
    out = f"noise\n{MARKER}{json.dumps({'a': 1})}\n"
    assert parse_output(out) == {"a": 1}
    assert parse_output("no marker") is None


def test_the_probe_reports_a_package_that_is_not_installed() -> None:
    run = run_child(sys.executable, ["surely-not-installed-pkg"], 60)
    assert run.error is None
    assert run.report is not None
    assert run.report["packages"]["surely-not-installed-pkg"]["installed"] is False
    assert run.report.get("torch") is None


def test_the_probe_times_out(tmp_path: Path) -> None:
    python = tmp_path / "hangs"
    python.write_text("#!/bin/sh\nsleep 30\n")
    python.chmod(0o755)
    run = run_child(str(python), ["torch"], 0.5)
    assert run.report is None
    assert run.error == "the check did not finish within 0.5 s (stopped it)"


def test_the_probe_gives_up_on_a_process_the_kill_does_not_end(tmp_path: Path) -> None:
    # A CUDA initialisation stuck in the driver cannot die at once; here a process
    # outside the group holds the pipes. verify-timeout still bounds the wait.
    python = tmp_path / "stuck"
    python.write_text("#!/bin/sh\nsetsid sleep 20 &\nsleep 20\n")
    python.chmod(0o755)
    begun = time.monotonic()
    run = run_child(str(python), ["torch"], 0.5)
    assert time.monotonic() - begun < 15
    assert run.unchecked and run.report is None


def test_a_crashing_probe_says_how_it_died(tmp_path: Path) -> None:
    python = tmp_path / "crashes"
    python.write_text("#!/bin/sh\necho 'Fatal Python error: boom' >&2\nexit 3\n")
    python.chmod(0o755)
    run = run_child(str(python), ["torch"], 10)
    assert run.error == (
        "the check process exited with code 3: Fatal Python error: boom"
    )


def venv_with(
    tmp_path: Path,
    files: dict[str, str],
    dist: str = "torch 2.14.1+cu130",
    folder: str = "torch",
) -> str:
    """A real venv holding ``dist``'s metadata and ``files`` in ``folder``/, with the
    RECORD pip writes (no top_level.txt: only setuptools writes one)."""
    venv.create(tmp_path, with_pip=False)
    (site,) = tmp_path.glob("lib/python*/site-packages")
    (site / folder).mkdir()
    for name, text in files.items():
        (site / folder / name).write_text(text)
    name, version = dist.split()
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    (site / info).mkdir()
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    (site / info / "METADATA").write_text(metadata)
    listed = [f"{folder}/{file}" for file in files] + [
        f"{info}/{n}" for n in ("METADATA", "RECORD")
    ]
    (site / info / "RECORD").write_text("".join(f"{path},,\n" for path in listed))
    return str(tmp_path / "bin" / "python")


def test_a_torch_without_its_init_is_damaged_not_a_build_of_torch_none(
    tmp_path: Path,
) -> None:
    # torch/__init__.py deleted: Python imports the folder as an empty namespace
    # package, which has no version, no build and no functions.
    python = venv_with(tmp_path, {"version.py": "cuda = '13.0'\n"})
    run = run_child(python, ["torch"], 60)
    proof = judge(run, parse_variant("cu130"), NO_GPU, ["torch"])
    (folder,) = tmp_path.glob("lib/python*/site-packages/torch")
    error = f"ImportError: {folder}/__init__.py is missing: torch imports empty"
    assert [(c.message, c.cause, c.fix) for c in proof.failures] == [
        (
            f"torch 2.14.1+cu130 does not import: {error}, a broken install",
            "a removal or an interrupted install left it incomplete",
            "`poetry torch-cuda sync --force` reinstalls the build",
        )
    ]
    assert not proof.machine_reason  # auto does not move on from a damaged install
    assert proof.trace_lines(debug=False) == []  # the check's own raise: no trace
    assert "None" not in "\n".join(proof.lines())


def test_a_torch_whose_import_crashes_the_python_shows_where_with_vvv(
    tmp_path: Path,
) -> None:
    # A segfault in the import (a driver/library mismatch): the fix says that
    # -vvv shows the check's own output, so that output must say where it died.
    python = venv_with(
        tmp_path, {"__init__.py": "import ctypes\nctypes.string_at(0)\n"}
    )
    run = run_child(python, ["torch"], 60)
    assert run.error == (
        "the check process was killed by SIGSEGV (the Python or a library crashed)"
    )
    proof = judge(run, parse_variant("cu130"), NO_GPU, ["torch"])
    assert proof.trace_lines(debug=False) == [
        "(-vvv shows the traceback of the check.)"
    ]
    (shown,) = proof.trace_lines(debug=True)
    assert 'torch/__init__.py", line 2' in shown


def test_a_check_that_hangs_at_exit_after_its_report_is_judged_by_it(
    tmp_path: Path,
) -> None:
    # A library's thread (or atexit handler) that never returns: the report is out,
    # the Python never exits. The build is judged, not "takes longer than the timeout".
    hang = (
        "import threading\nthreading.Thread(target=_time.sleep, args=(60,)).start()\n"
    )
    build = fake_torch("2.14.1+cu130", cuda="13.0", archs=["sm_80"])
    python = venv_with(tmp_path, {"__init__.py": f"{build}\n{hang}"})
    proof = judge(
        run_child(python, ["torch"], 4), parse_variant("cu130"), NO_GPU, ["torch"]
    )
    assert proof.verified
    assert proof.summary() == (
        "verified torch 2.14.1+cu130: imports, computes on the CPU (note: the check "
        "hung at exit after its report; verify-timeout (4 s) stopped it (a library's "
        "thread or exit handler never returns: programs using torch may too)) (note: "
        "no GPU on this machine (nvidia-smi not "
        "found on PATH): the GPU checks were skipped)"
    )


def test_a_check_killed_by_sigkill_says_out_of_memory_most_likely(
    tmp_path: Path,
) -> None:
    python = venv_with(
        tmp_path,
        {"__init__.py": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"},
    )
    proof = judge(
        run_child(python, ["torch"], 60), parse_variant("cu130"), NO_GPU, ["torch"]
    )
    assert [(c.status, c.message, c.cause, c.fix) for c in proof.checks] == [
        (
            "unchecked",
            "could not check the build: the check process was killed by SIGKILL",
            "most likely out of memory: the kernel's out-of-memory killer sends SIGKILL",
            (
                "the build stays installed; free memory (or raise the container's memory "
                "limit) and run `poetry torch-cuda verify`"
            ),
        )
    ]


def test_a_check_killed_by_sigkill_on_macos_names_the_code_signature_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """macOS has no out-of-memory killer's SIGKILL to blame alone: its kernel kills
    with SIGKILL a process loading a library whose code signature it refuses."""
    python = venv_with(
        tmp_path,
        {"__init__.py": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"},
    )
    monkeypatch.setattr(sys, "platform", "darwin")  # the env's kernel: this one
    run = run_child(python, ["torch"], 60)
    proof = judge(run, parse_variant("cpu"), NO_GPU, ["torch"])
    assert [(c.status, c.message, c.cause, c.fix) for c in proof.checks] == [
        (
            "unchecked",
            "could not check the build: the check process was killed by SIGKILL",
            (
                "macOS kills with SIGKILL a process loading a library whose code "
                "signature it refuses (a changed or unsigned .so or .dylib), or one "
                "out of memory"
            ),
            (
                "the build stays installed; its crash report in Console says which "
                "(CODESIGNING: reinstall the package of the library it names; else "
                "free memory) and run `poetry torch-cuda verify`"
            ),
        )
    ]


def test_a_torch_with_an_empty_init_is_a_broken_install_not_torch_none(
    tmp_path: Path,
) -> None:
    python = venv_with(tmp_path, {"__init__.py": "", "version.py": "cuda = '13.0'\n"})
    proof = judge(
        run_child(python, ["torch"], 60), parse_variant("cu130"), NO_GPU, ["torch"]
    )
    assert [(c.message, c.cause, c.fix) for c in proof.failures] == [
        (
            (
                "torch 2.14.1+cu130 does not import: ImportError: torch imported but has "
                "no __version__: a broken install"
            ),
            "a removal or an interrupted install left it incomplete",
            "`poetry torch-cuda sync --force` reinstalls the build",
        )
    ]
    assert "None" not in "\n".join(proof.lines())


def test_a_distribution_imports_as_its_top_level_module(tmp_path: Path) -> None:
    # pytorch-triton-rocm installs the module triton, as its RECORD says.
    python = venv_with(
        tmp_path,
        {"__init__.py": "__version__ = '3.5.0'\n"},
        dist="pytorch-triton-rocm 3.5.0",
        folder="triton",
    )
    # auditwheel names the bundled libraries' folder after the package, not the module.
    (site,) = tmp_path.glob("lib/python*/site-packages")
    (site / "pytorch_triton_rocm.libs").mkdir()
    (site / "pytorch_triton_rocm.libs" / "libamdhip64.so").write_bytes(b"")
    (record,) = site.glob("*.dist-info/RECORD")
    # Nor is a top-level file that is no module, nor pip's bytecode of one.
    (site / "LICENSE").write_text("MIT\n")
    with record.open("a") as listing:
        for path in ("pytorch_triton_rocm.libs/libamdhip64.so", "LICENSE"):
            listing.write(f"{path},,\n")
        listing.write("__pycache__/_triton_helper.cpython-39.pyc,,\n")
    run = run_child(python, ["pytorch-triton-rocm"], 60)
    proof = judge(run, parse_variant("rocm6.4"), NO_GPU, ["pytorch-triton-rocm"])
    assert [c.message for c in proof.checks if c.name.startswith("import")] == [
        "pytorch-triton-rocm 3.5.0 imports"
    ]


# -- auto's memory -----------------------------------------------------------------


def test_memory_is_keyed_on_driver_and_gpus(tmp_path: Path) -> None:
    (tmp_path / "pyvenv.cfg").write_text("")  # a virtualenv: its memory is inside
    gtx = nvidia("575.51.03", ("NVIDIA GeForce GTX 1080", (6, 1)))
    assert resolution.remember(
        tmp_path, gtx, parse_variant("cu126"), "2.13.0+cu126", "x"
    )
    assert [f.variant for f in resolution.failures(tmp_path, gtx)] == ["cu126"]
    newer_driver = nvidia("580.95.05", ("NVIDIA GeForce GTX 1080", (6, 1)))
    assert resolution.failures(tmp_path, newer_driver) == []
    assert not resolution.remember(tmp_path, NO_GPU, parse_variant("cpu"), None, "x")

    asked: list[str] = []

    def offers(variant: Variant) -> Offer:
        asked.append(variant.name)
        return Offer(True, "on the index")

    decision = resolution.choose(gtx, offers, "2.13.0", env=MockEnv(path=tmp_path))
    offered = {verdict.variant.name: offer for verdict, offer in decision.candidates}
    skipped = offered["cu126"]
    assert skipped is not None and skipped.available is False
    assert "failed verification in this environment" in skipped.detail
    assert "cu126" not in asked  # the memory answers, the index is not asked
    assert decision.variant.name != "cu126"
    assert offered[decision.variant.name] == Offer(True, "on the index")
    assert resolution.forget(tmp_path) == 1
    assert resolution.failures(tmp_path) == []


def test_a_failure_of_another_torch_is_not_remembered_for_the_new_one(
    tmp_path: Path,
) -> None:
    # cu126 failed with torch 2.13.0; the lock moved to 2.14.1: a build never tried
    (tmp_path / "pyvenv.cfg").write_text("")  # a virtualenv: its memory is inside
    gtx = nvidia("575.51.03", ("NVIDIA GeForce GTX 1080", (6, 1)))
    resolution.remember(tmp_path, gtx, parse_variant("cu126"), "2.13.0+cu126", "x")
    env = MockEnv(path=tmp_path)
    offered = Offer(True, "on the index")
    decision = resolution.choose(gtx, lambda _: offered, "2.14.1", env=env)
    assert decision.variant.name == "cu126"
    assert resolution.failures(tmp_path, gtx, "2.14.1") == []
    again = resolution.choose(gtx, lambda _: offered, "2.13.0", env=env)
    assert again.variant.name != "cu126"


def test_a_damaged_memory_is_no_memory(tmp_path: Path) -> None:
    (tmp_path / "pyvenv.cfg").write_text("")  # a virtualenv: its memory is inside
    gtx = nvidia("575.51.03", ("NVIDIA GeForce GTX 1080", (6, 1)))
    key = "NVIDIA driver 575.51.03; GPU 0 (NVIDIA GeForce GTX 1080, sm_61)"
    entry = {"variant": "cu126", "torch": None, "reason": "x", "when": "t"}
    damaged = [{**entry, "variant": ["cu126"]}, {**entry, "torch": 2}, "cu126", None]
    memory = tmp_path / ".poetry-torch-cuda-memory.json"
    memory.write_text(
        json.dumps(
            {
                "failures": [
                    {**e, "machine": key} if isinstance(e, dict) else e for e in damaged
                ]
            }
        )
    )
    offered = Offer(True, "on the index")
    decision = resolution.choose(
        gtx, lambda _: offered, "2.14.1", env=MockEnv(path=tmp_path)
    )
    assert decision.variant.name == "cu126"
    assert resolution.failures(tmp_path) == []
    assert resolution.remember(tmp_path, gtx, parse_variant("cu126"), None, "y")
    assert [f.reason for f in resolution.failures(tmp_path, gtx, "2.14.1")] == ["y"]


# -- configuration -----------------------------------------------------------------


def table(**keys: object) -> dict[str, Any]:
    return {"tool": {"poetry-torch-cuda": {"variant": "cpu", **keys}}}


def test_verify_defaults_and_overrides() -> None:
    config = load_config(table(), {})
    assert config is not None
    assert (config.verify, config.verify_timeout) == (True, 120.0)
    config = load_config(table(verify=False, **{"verify-timeout": 30}), {})
    assert config is not None
    assert (config.verify, config.verify_timeout) == (False, 30.0)
    config = load_config(table(), {"POETRY_TORCH_CUDA_VERIFY": "0"})
    assert config is not None
    assert config.verify is False


@pytest.mark.parametrize(
    ("keys", "environ", "message"),
    [
        ({"verify": "yes"}, {}, "verify must be true or false"),
        ({"verify-timeout": 0}, {}, "verify-timeout must be a number of seconds"),
        ({"verify-timeout": True}, {}, "verify-timeout must be a number of seconds"),
        ({}, {"POETRY_TORCH_CUDA_VERIFY": "maybe"}, "is not a switch"),
    ],
)
def test_bad_verify_settings_are_refused(
    keys: dict[str, object], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(table(**keys), environ)
