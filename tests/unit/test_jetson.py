"""NVIDIA Jetson and SBSA aarch64: detected from a fake root, never given a build it cannot run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from poetry_torch_cuda.index.offers import Offer
from poetry_torch_cuda.machine.detection import assess
from poetry_torch_cuda.machine.detection import decide
from poetry_torch_cuda.machine.probe import Jetson
from poetry_torch_cuda.machine.probe import Machine
from poetry_torch_cuda.machine.probe import NvidiaDriver
from poetry_torch_cuda.machine.probe import NvidiaGpu
from poetry_torch_cuda.machine.probe import probe_jetson
from poetry_torch_cuda.project.variants import parse_variant


if TYPE_CHECKING:
    from pathlib import Path

    from poetry_torch_cuda.project.variants import Variant

ORIN_RELEASE = (
    "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
    "DATE: Fri Sep 13 04:36:44 UTC 2024\n"
    "# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n"
)
THOR_RELEASE = "# R38 (release), REVISION: 2.0, GCID: 41844464, BOARD: generic\n"


def fake_root(
    tmp_path: Path,
    release: str | None = None,
    model: str | None = None,
    kernel: str = "6.8.0-generic",
) -> Path:
    (tmp_path / "etc").mkdir(parents=True, exist_ok=True)
    (tmp_path / "proc" / "device-tree").mkdir(parents=True, exist_ok=True)
    (tmp_path / "proc" / "sys" / "kernel").mkdir(parents=True, exist_ok=True)
    (tmp_path / "proc" / "sys" / "kernel" / "osrelease").write_text(kernel + "\n")
    if release is not None:
        (tmp_path / "etc" / "nv_tegra_release").write_text(release)
    if model is not None:
        (tmp_path / "proc" / "device-tree" / "model").write_text(model + "\x00")
    return tmp_path


def test_an_orin_is_found_from_its_release_file(tmp_path: Path) -> None:
    root = fake_root(tmp_path, ORIN_RELEASE, "NVIDIA Jetson AGX Orin Developer Kit")
    jetson = probe_jetson(root)
    assert jetson == Jetson((36, 4), "NVIDIA Jetson AGX Orin Developer Kit")
    assert str(jetson) == (
        "NVIDIA Jetson (NVIDIA Jetson AGX Orin Developer Kit, L4T R36.4)"
    )


def test_a_tegra_kernel_without_the_file_is_a_jetson_of_unknown_l4t(
    tmp_path: Path,
) -> None:
    root = fake_root(tmp_path, kernel="5.15.148-tegra")
    assert probe_jetson(root) == Jetson(None, None)


def test_a_server_is_no_jetson(tmp_path: Path) -> None:
    assert probe_jetson(fake_root(tmp_path)) is None


@pytest.mark.parametrize(
    ("text", "release"),
    [(ORIN_RELEASE, (36, 4)), (THOR_RELEASE, (38, 2)), ("garbage", None)],
)
def test_the_l4t_release_is_read_from_its_file(
    tmp_path: Path, text: str, release: tuple[int, int] | None
) -> None:
    jetson = probe_jetson(fake_root(tmp_path, text))
    assert jetson is not None and jetson.l4t == release


def everything(variant: Variant) -> Offer:
    return Offer(True, f"has torch 2.14.1+{variant}")


def arm(
    driver: str | None, capability: tuple[int, int], jetson: Jetson | None = None
) -> Machine:
    nvidia = None
    if driver is not None:
        nvidia = NvidiaDriver(
            driver, "nvidia-smi", (NvidiaGpu(0, "NVIDIA GPU", capability),)
        )
    return Machine("linux", "aarch64", nvidia, jetson=jetson)


def test_an_orin_is_told_which_index_serves_it_and_gets_cpu(tmp_path: Path) -> None:
    jetson = probe_jetson(fake_root(tmp_path, ORIN_RELEASE, "NVIDIA Jetson AGX Orin"))
    machine = arm("540.4.0", (8, 7), jetson)
    decision = decide(machine, everything, "2.14.1")
    assert decision.variant.name == "cpu"
    assert "pypi.jetson-ai-lab.io" in decision.steps[0]
    assert "do not run on Jetson L4T before R38" in decision.steps[0]
    verdict = assess(parse_variant("cu126"), machine, "2.14.1")
    assert verdict.usable is False
    assert "SBSA builds" in verdict.reasons[0]


def test_a_thor_on_jetpack_7_uses_the_aarch64_lists() -> None:
    thor = Jetson((38, 2), "NVIDIA Jetson AGX Thor Developer Kit")
    decision = decide(arm("580.00", (11, 0), thor), everything, "2.14.1")
    # RELEASE.md: the 13.x aarch64 builds carry sm_110; cu126's (8.0, 9.0) do not.
    assert decision.variant.name == "cu132"
    assert not assess(parse_variant("cu126"), arm("580.00", (11, 0), thor)).usable


@pytest.mark.parametrize(
    ("capability", "driver", "picked"),
    [
        ((9, 0), "535.104.05", "cu126"),  # GH200 on R535: cu126's aarch64 sm_90
        ((9, 0), "580.65.06", "cu132"),
        ((12, 1), "580.95.05", "cu132"),  # GB10 (DGX Spark): sm_120 SASS runs on 12.1
        ((12, 1), "575.51.03", "cpu"),  # 12.x aarch64 builds have no sm_120 for 2.14
        ((8, 6), "580.65.06", "cu132"),  # sm_80 SASS covers 8.6 on aarch64
    ],
)
def test_sbsa_servers_use_the_aarch64_lists(
    capability: tuple[int, int], driver: str, picked: str
) -> None:
    def torch_214(variant: Variant) -> Offer:
        return Offer(variant.name in ("cpu", "cu126", "cu130", "cu132"), "asked")

    decision = decide(arm(driver, capability), torch_214, "2.14.1")
    assert decision.variant.name == picked


def test_installing_a_pytorch_cuda_build_on_an_orin_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from cleo.io.buffered_io import BufferedIO

    from poetry_torch_cuda.machine.probe import ROOT_VARIABLE
    from poetry_torch_cuda.machine.resolution import Resolution
    from poetry_torch_cuda.machine.resolution import report
    from poetry_torch_cuda.project.config import TorchCudaConfig

    root = fake_root(tmp_path, ORIN_RELEASE, "NVIDIA Jetson Orin Nano")
    monkeypatch.setenv(ROOT_VARIABLE, str(root))
    cu126 = parse_variant("cu126")

    def said(config: TorchCudaConfig, arch: str, machine: Machine | None) -> str:
        env = SimpleNamespace(marker_env={"platform_machine": arch})
        io = BufferedIO()
        resolution = Resolution(cu126, cu126, "pyproject.toml", machine=machine)
        report(resolution, config, env, io)  # type: ignore[arg-type]
        return io.fetch_error()

    orin = Machine("linux", "aarch64", jetson=probe_jetson())
    for probed in (None, orin):  # a fixed variant probes only the Jetson; auto has it
        warning = said(TorchCudaConfig(cu126), "aarch64", probed)
        assert "cu126 on NVIDIA Jetson (NVIDIA Jetson Orin Nano, L4T R36.4)" in warning
    jetson_index = TorchCudaConfig(cu126, "https://pypi.jetson-ai-lab.io/jp6/{variant}")
    assert said(jetson_index, "aarch64", None) == ""
    assert said(TorchCudaConfig(cu126), "x86_64", None) == ""
    thor = Machine("linux", "aarch64", jetson=Jetson((38, 2), "NVIDIA Jetson Thor"))
    assert said(TorchCudaConfig(cu126), "aarch64", thor) == ""
