"""The default fake package universe: a fake PyPI plus per-variant PyTorch indexes.

Layout on disk (served by :class:`tests.support.index.IndexServer`)::

    root/pypi/<project>/<files>            -> /simple/<project>/
    root/whl/<variant>/<project>/<files>   -> /whl/<variant>/<project>/

Project directories are PEP 503-normalised names. Every wheel is ``py3-none-any``
and carries no ``Requires-Python``, so Poetry can solve it for any
``requires-python`` range of a test project.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING

from tests.support.wheels import build_wheel
from tests.support.wheels import canonical_name


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping
    from collections.abc import Sequence
    from pathlib import Path


__all__ = [
    "CUDA_VARIANTS",
    "LINUX",
    "PYPI",
    "TORCHAUDIO_FOR",
    "TORCHVISION_FOR",
    "TORCH_VERSIONS",
    "VARIANTS",
    "BuiltWheel",
    "Universe",
    "WheelSpec",
    "add_payload",
    "build_universe",
    "cuda_toolkit",
    "default_specs",
    "linux",
    "linux_marker",
    "torch_requires",
]

#: Index name of the fake PyPI in :class:`Universe` helpers.
PYPI = "pypi"


def linux_marker() -> str:
    """The marker real Linux-only CUDA dependencies carry.

    ``platform_system == "Linux" and platform_machine == "x86_64"``, without
    the machine part when the tests do not run on x86_64 (so they still pass).
    """
    if platform.machine() == "x86_64":
        return 'platform_system == "Linux" and platform_machine == "x86_64"'
    return 'platform_system == "Linux"'


LINUX = linux_marker()

#: torch versions on PyPI and on every full variant index.
TORCH_VERSIONS: tuple[str, ...] = ("2.13.0", "2.14.1")
#: torch public version -> matching torchvision / torchaudio public version.
TORCHVISION_FOR: Mapping[str, str] = {"2.13.0": "0.28.0", "2.14.1": "0.29.1"}
TORCHAUDIO_FOR: Mapping[str, str] = {"2.13.0": "2.13.0", "2.14.1": "2.14.1"}
#: Variant indexes under /whl/. cu126 only has torch 2.13.0+cu126; cu128 only
#: the 2.14.1 family.
VARIANTS: tuple[str, ...] = ("cpu", "cu126", "cu128", "cu129", "cu130", "rocm6.4")
CUDA_VARIANTS: tuple[str, ...] = ("cu126", "cu128", "cu129", "cu130")

TRITON = "3.6.0"
TRITON_ROCM = "3.4.0"
FILELOCK = "3.20.0"
CUBLAS_CU12 = {"cu126": "12.6.4.1", "cu128": "12.8.4.1", "cu129": "12.9.1.4"}
CUDNN_CU12 = "9.10.2.21"
CUBLAS_13 = "13.0.2.14"
CUBLAS_13_NEWER = "13.1.0.3"  # outside torch's ``==13.0.*`` pin on purpose
CUDA_RUNTIME_13 = "13.0.96"
CUDNN_CU13 = "9.13.0.50"
CUDA_TOOLKIT = "13.0.2"


@dataclass(frozen=True)
class WheelSpec:
    """One wheel to build: ``requires`` are PEP 508 strings, ``extras`` name -> reqs."""

    name: str
    version: str
    requires: tuple[str, ...] = ()
    extras: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def project(self) -> str:
        return canonical_name(self.name)


@dataclass(frozen=True)
class BuiltWheel:
    """A wheel on disk; ``index`` is ``"pypi"`` or a variant name such as ``"cu129"``."""

    index: str
    spec: WheelSpec
    path: Path


def linux(*reqs: str) -> tuple[str, ...]:
    """``reqs``, each under the Linux marker (as the real CUDA wheels are)."""
    return tuple(f"{req}; {LINUX}" for req in reqs)


def torch_requires(variant: str | None) -> tuple[str, ...]:
    """Dependencies of torch on PyPI (``None``: the CUDA 13 build) or a variant index."""
    if variant is None:
        return (
            "filelock",
            *linux(
                "nvidia-cublas==13.0.*",
                "nvidia-cudnn-cu13==9.*",
                "cuda-toolkit[cublas,cudart]==13.0.*",
                f"triton=={TRITON}",
            ),
        )
    if variant in CUBLAS_CU12:
        return (
            "filelock",
            *linux(
                f"nvidia-cublas-cu12=={CUBLAS_CU12[variant]}",
                f"nvidia-cudnn-cu12=={CUDNN_CU12}",
                f"triton=={TRITON}",
            ),
        )
    if variant == "cu130":
        return (
            "filelock",
            *linux(
                f"nvidia-cublas=={CUBLAS_13}",
                f"nvidia-cudnn-cu13=={CUDNN_CU13}",
                f"triton=={TRITON}",
            ),
        )
    if variant.startswith("rocm"):
        return ("filelock", *linux(f"pytorch-triton-rocm=={TRITON_ROCM}"))
    return ("filelock",)


def cuda_toolkit() -> WheelSpec:
    """PyPI's cuda-toolkit metapackage: its ``cublas`` and ``cudart`` extras."""
    return WheelSpec(
        "cuda-toolkit",
        CUDA_TOOLKIT,
        extras={
            "cublas": linux(f"nvidia-cublas=={CUDA_TOOLKIT}.*"),
            "cudart": linux(f"nvidia-cuda-runtime=={CUDA_RUNTIME_13}.*"),
        },
    )


def _torch_family(
    variant: str | None, torch_versions: Iterable[str]
) -> list[WheelSpec]:
    label = f"+{variant}" if variant else ""
    specs: list[WheelSpec] = []
    for version in torch_versions:
        specs.append(WheelSpec("torch", version + label, torch_requires(variant)))
        # Real torchvision/torchaudio builds pin torch's *public* version.
        pin = (f"torch=={version}",)
        specs.append(WheelSpec("torchvision", TORCHVISION_FOR[version] + label, pin))
        specs.append(WheelSpec("torchaudio", TORCHAUDIO_FOR[version] + label, pin))
    return specs


def default_specs() -> dict[str, list[WheelSpec]]:
    """The whole default universe: index name (``"pypi"`` or variant) -> wheels."""
    filelock = WheelSpec("filelock", FILELOCK)
    triton = WheelSpec("triton", TRITON)
    triton_rocm = WheelSpec("pytorch-triton-rocm", TRITON_ROCM)
    cublas13 = WheelSpec("nvidia-cublas", CUBLAS_13)
    cudnn13 = WheelSpec("nvidia-cudnn-cu13", CUDNN_CU13, ("nvidia-cublas",))
    cublas12 = {v: WheelSpec("nvidia-cublas-cu12", CUBLAS_CU12[v]) for v in CUBLAS_CU12}
    cudnn12 = WheelSpec("nvidia-cudnn-cu12", CUDNN_CU12, ("nvidia-cublas-cu12",))

    pypi = [
        *_torch_family(None, TORCH_VERSIONS),
        filelock,
        triton,
        triton_rocm,
        cublas13,
        WheelSpec("nvidia-cublas", CUBLAS_13_NEWER),
        WheelSpec("nvidia-cuda-runtime", CUDA_RUNTIME_13),
        cudnn13,
        cuda_toolkit(),
        WheelSpec("cuda-pathfinder", "1.3.0"),
        WheelSpec("cuda-bindings", "13.0.3", ("cuda-pathfinder~=1.1",)),
        *cublas12.values(),
        cudnn12,
        WheelSpec("needs-torch", "1.0.0", ("torch>=2.13",)),
        WheelSpec("tinyutil", "1.0.0"),
        WheelSpec("tinyutil", "1.1.0"),
    ]
    return {
        PYPI: pypi,
        "cu129": [
            *_torch_family("cu129", TORCH_VERSIONS),
            filelock,
            triton,
            cublas12["cu129"],
            cudnn12,
        ],
        "cu130": [
            *_torch_family("cu130", TORCH_VERSIONS),
            filelock,
            triton,
            cublas13,
            cudnn13,
        ],
        "cu128": [
            *_torch_family("cu128", ("2.14.1",)),
            filelock,
            triton,
            cublas12["cu128"],
            cudnn12,
        ],
        "cu126": [
            WheelSpec("torch", "2.13.0+cu126", torch_requires("cu126")),
            filelock,
            triton,
            cublas12["cu126"],
            cudnn12,
        ],
        "cpu": [*_torch_family("cpu", TORCH_VERSIONS), filelock],
        "rocm6.4": [*_torch_family("rocm6.4", TORCH_VERSIONS), filelock, triton_rocm],
    }


@dataclass
class Universe:
    """A built fake universe rooted at ``root`` (see the module docstring)."""

    root: Path
    wheels: list[BuiltWheel] = field(default_factory=list)

    @property
    def pypi_dir(self) -> Path:
        return self.root / "pypi"

    def whl_dir(self, variant: str) -> Path:
        return self.root / "whl" / variant

    def index_dir(self, index: str = PYPI) -> Path:
        """Directory of ``"pypi"`` or of a variant index."""
        return self.pypi_dir if index == PYPI else self.whl_dir(index)

    @property
    def variants(self) -> list[str]:
        """Variant indexes present on disk, sorted."""
        whl = self.root / "whl"
        return (
            sorted(p.name for p in whl.iterdir() if p.is_dir()) if whl.is_dir() else []
        )

    def project_dir(self, project: str, index: str = PYPI) -> Path:
        return self.index_dir(index) / canonical_name(project)

    def files(self, project: str, index: str = PYPI) -> list[Path]:
        """Wheel files of ``project`` on ``index`` (empty if it has none)."""
        directory = self.project_dir(project, index)
        return sorted(directory.glob("*.whl")) if directory.is_dir() else []

    def versions(self, project: str, index: str = PYPI) -> list[str]:
        """Versions of ``project`` on ``index``, as in the wheel file names."""
        return [path.name.split("-")[1] for path in self.files(project, index)]

    def wheel(self, project: str, version: str, index: str = PYPI) -> Path:
        """The one wheel of ``project==version`` on ``index``; raises if absent."""
        for built in self.wheels:
            if (
                built.index == index
                and built.spec.project == canonical_name(project)
                and built.spec.version == version
            ):
                return built.path
        raise KeyError(f"no wheel {project}=={version} on {index}")

    def add_wheel(
        self,
        index: str,
        name: str,
        version: str,
        requires: Sequence[str] = (),
        *,
        extras: Mapping[str, Sequence[str]] | None = None,
        tag: str = "py3-none-any",
    ) -> Path:
        """Build one more wheel into ``index`` (``"pypi"`` or a variant, new or not).

        A running IndexServer serves it at once (it reads the tree per request).
        Note that the session-wide universe is shared by every test: tests that
        add wheels should prefer their own ``build_universe(tmp_path)``.
        """
        spec = WheelSpec(
            name,
            version,
            tuple(requires),
            {k: tuple(v) for k, v in (extras or {}).items()},
        )
        path = build_wheel(
            self.project_dir(name, index),
            name,
            version,
            spec.requires,
            extras=spec.extras,
            tag=tag,
        )
        self.wheels.append(BuiltWheel(index, spec, path))
        return path


def build_universe(
    root: Path, specs: Mapping[str, Iterable[WheelSpec]] | None = None
) -> Universe:
    """Build every wheel of ``specs`` (default: :func:`default_specs`) under ``root``."""
    universe = Universe(root)
    root.mkdir(parents=True, exist_ok=True)
    for index, index_specs in (specs if specs is not None else default_specs()).items():
        universe.index_dir(index).mkdir(parents=True, exist_ok=True)
        for spec in index_specs:
            universe.add_wheel(
                index, spec.name, spec.version, spec.requires, extras=spec.extras
            )
    return universe


def add_payload(universe: Universe, project: str, payload: Mapping[str, bytes]) -> None:
    """Rebuild every wheel of ``project``, on every index, with ``payload`` added.

    Two projects given the same paths share files as the real CUDA 12 and 13
    wheels do (``nvidia-cudnn-cu12`` and ``-cu13`` both ship
    ``nvidia/cudnn/lib/libcudnn.so.9``).
    """
    found = False
    for built in universe.wheels:
        if built.spec.project == canonical_name(project):
            build_wheel(
                built.path.parent,
                built.spec.name,
                built.spec.version,
                built.spec.requires,
                extras=built.spec.extras,
                payload=payload,
            )
            found = True
    if not found:
        raise KeyError(f"no wheel of {project} in the universe")
