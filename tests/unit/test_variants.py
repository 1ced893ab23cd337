from __future__ import annotations

import pytest

from poetry_torch_cuda.project.variants import parse_variant


@pytest.mark.parametrize(
    ("name", "kind", "cuda"),
    [
        ("cu118", "cuda", (11, 8)),
        ("cu129", "cuda", (12, 9)),
        ("cu130", "cuda", (13, 0)),
        ("cpu", "cpu", None),
        ("xpu", "xpu", None),
        ("auto", "auto", None),
        ("rocm6.4", "rocm", None),
        ("rocm6.2.4", "rocm", None),
    ],
)
def test_valid_variants(name: str, kind: str, cuda: tuple[int, int] | None) -> None:
    variant = parse_variant(name)
    assert variant.kind == kind
    assert variant.cuda_version == cuda
    assert variant.name == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "cu12x",
        "cu",
        "cu1299",
        "rocm",
        "rocm6",
        "gpu",
        "cuda12.9",
        " cu129",
        "cu129\n",
    ],
)
def test_invalid_variants(name: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_variant(name)


def test_platform_availability() -> None:
    assert parse_variant("cu129").not_built_for("linux") is None
    assert parse_variant("cu129").not_built_for("win32") is None
    assert parse_variant("cu129").not_built_for("darwin") is not None
    assert parse_variant("rocm6.4").not_built_for("win32") is not None
    assert parse_variant("rocm6.4").not_built_for("linux") is None
    assert parse_variant("cpu").not_built_for("darwin") is not None


def test_not_built_for_is_the_one_wording_of_the_gate() -> None:
    assert parse_variant("cu129").not_built_for("linux") is None
    assert (
        parse_variant("cu129").not_built_for("darwin")
        == "PyTorch publishes no cu129 builds for darwin"
    )
    assert (
        parse_variant("rocm6.4").not_built_for("win32", "windows-x86_64")
        == "PyTorch publishes no rocm6.4 builds for windows-x86_64"
    )
    # auto names no build: what PyTorch lacks there is every GPU build
    assert (
        parse_variant("auto").not_built_for("darwin")
        == "PyTorch publishes no CUDA or ROCm builds for darwin"
    )


#: ``sys.platform`` -> ``platform.system()`` as CPython reports them (sys.platform's
#: table of known values; platform.system(): ``os.uname().sysname``, "Windows" on
#: win32, "iOS" and "Android" since 3.13; FreeBSD's sys.platform has no major since 3.14).
PYTHONS = [
    ("linux", "Linux"),
    ("darwin", "Darwin"),
    ("win32", "Windows"),
    ("cygwin", "CYGWIN_NT-10.0-19045"),
    ("android", "Android"),
    ("ios", "iOS"),
    ("emscripten", "Emscripten"),
    ("aix", "AIX"),
    ("freebsd", "FreeBSD"),
    ("freebsd14", "FreeBSD"),
    ("sunos5", "SunOS"),
]


@pytest.mark.parametrize(("sys_platform", "system"), PYTHONS)
@pytest.mark.parametrize("name", ["cu129", "rocm6.4", "cpu", "xpu", "auto"])
def test_the_gate_answers_as_the_marker_export_writes_where_python_runs(
    name: str, sys_platform: str, system: str
) -> None:
    """The gate takes ``sys.platform``; the marker an export writes is PyTorch's
    (``platform_system``): an install there and the gate agree on every platform."""
    from packaging.markers import Marker

    variant = parse_variant(name)
    built = Marker(variant.built()).evaluate({"platform_system": system})
    assert (variant.not_built_for(sys_platform) is None) is built


def test_the_platforms_words_are_python_s_own() -> None:
    """The one home of the platforms' words says of this OS what Python does; every
    fleet platform is one of its OSes; a machine has Linux's name on any OS."""
    from packaging.markers import default_environment

    from poetry_torch_cuda.project.variants import PLATFORMS
    from poetry_torch_cuda.project.variants import SYSTEMS
    from poetry_torch_cuda.project.variants import arch

    here = dict(default_environment())
    assert SYSTEMS[here["sys_platform"]] == {k: here[k] for k in SYSTEMS["linux"]}
    for markers in PLATFORMS.values():
        assert markers.items() >= SYSTEMS[markers["sys_platform"]].items()
    machines = ["AMD64", "arm64", "ARM64", "aarch64", "x86_64", "ppc64le"]
    linux = ["x86_64", "aarch64", "aarch64", "aarch64", "x86_64", "ppc64le"]
    assert [arch(machine) for machine in machines] == linux
