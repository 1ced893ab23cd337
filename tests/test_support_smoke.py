"""The test support works with the real tools: pip, Poetry and the fake indexes.

No plugin involvement: Poetry runs with ``POETRY_TORCH_CUDA_DISABLE=1``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.support.catalog import LINUX
from tests.support.catalog import PYPI
from tests.support.catalog import TORCH_VERSIONS
from tests.support.catalog import TORCHAUDIO_FOR
from tests.support.catalog import TORCHVISION_FOR
from tests.support.index import JSON_TYPE
from tests.support.index import IndexServer
from tests.support.poetry_project import describe
from tests.support.poetry_project import installed_distributions
from tests.support.poetry_project import isolated_env
from tests.support.poetry_project import stub_calls
from tests.support.poetry_project import write_stub_executable
from tests.support.wheels import build_wheel
from tests.support.wheels import canonical_name


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.catalog import Universe
    from tests.support.fixtures import ProjectFactory


pytestmark = pytest.mark.e2e

DISABLED = {"POETRY_TORCH_CUDA_DISABLE": "1"}


# -- wheels and the index server -------------------------------------------------


def test_wheel_file_name_and_metadata(tmp_path: Path) -> None:
    path = build_wheel(
        tmp_path,
        "Nvidia_Cublas.Cu12",
        "12.9.1.4+local",
        ["filelock"],
        extras={"x": ['tinyutil; python_version >= "3"']},
    )
    assert path.name == "nvidia_cublas_cu12-12.9.1.4+local-py3-none-any.whl"
    import zipfile

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        metadata = archive.read(
            "nvidia_cublas_cu12-12.9.1.4+local.dist-info/METADATA"
        ).decode()
    assert "nvidia_cublas_cu12/__init__.py" in names
    assert "Requires-Dist: filelock\n" in metadata
    assert "Provides-Extra: x\n" in metadata
    assert (
        'Requires-Dist: tinyutil; (python_version >= "3") and extra == "x"' in metadata
    )


def test_universe_layout(universe: Universe) -> None:
    assert universe.variants == ["cpu", "cu126", "cu128", "cu129", "cu130", "rocm6.4"]
    assert universe.versions("torch") == list(TORCH_VERSIONS)
    assert universe.versions("torch", "cu126") == ["2.13.0+cu126"]
    assert universe.versions("torch", "rocm6.4") == ["2.13.0+rocm6.4", "2.14.1+rocm6.4"]
    assert (
        universe.wheel("torch", "2.14.1+cu129", "cu129").name
        == "torch-2.14.1+cu129-py3-none-any.whl"
    )
    assert LINUX.startswith('platform_system == "Linux"')


def test_index_pages(index: IndexServer) -> None:
    def get(path: str, accept: str | None = None) -> tuple[str, bytes]:
        request = urllib.request.Request(index.url + path)
        if accept:
            request.add_header("Accept", accept)
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers["Content-Type"], response.read()

    content_type, body = get("/simple/Nvidia_Cublas/")
    assert content_type.startswith("text/html")
    assert b"nvidia_cublas-13.0.2.14-py3-none-any.whl#sha256=" in body
    assert b'data-core-metadata="sha256=' in body

    content_type, body = get("/whl/cu129/torch/", JSON_TYPE)
    assert content_type == JSON_TYPE
    page = json.loads(body)
    assert [f["filename"] for f in page["files"]] == [
        "torch-2.13.0+cu129-py3-none-any.whl",
        "torch-2.14.1+cu129-py3-none-any.whl",
    ]
    assert page["files"][1]["url"] == "torch-2.14.1%2Bcu129-py3-none-any.whl"

    _, metadata = get("/whl/cu129/torch/torch-2.14.1%2Bcu129-py3-none-any.whl.metadata")
    assert b"Requires-Dist: nvidia-cublas-cu12==12.9.1.4; platform_system" in metadata

    index.fail_paths["/simple/tinyutil/"] = 503
    index.require_auth = ("user", "secret")
    index.auth_paths = ("/whl/",)
    with pytest.raises(urllib.error.HTTPError) as failed:
        get("/simple/tinyutil/")
    failed.value.close()
    assert failed.value.code == 503
    with pytest.raises(urllib.error.HTTPError) as unauthorized:
        get("/whl/cpu/")
    unauthorized.value.close()
    assert unauthorized.value.code == 401
    assert unauthorized.value.headers["WWW-Authenticate"].startswith("Basic")
    assert index.requests[-2:] == ["/simple/tinyutil/", "/whl/cpu/"]


def test_tampered_files_are_served_and_listed_with_their_new_hash(
    index: IndexServer, universe: Universe
) -> None:
    import hashlib
    import zipfile
    from io import BytesIO

    def get(path: str, accept: str = "*/*") -> bytes:
        request = urllib.request.Request(index.url + path, headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())

    path = "/whl/cu129/torch/torch-2.14.1%2Bcu129-py3-none-any.whl"
    original = universe.wheel("torch", "2.14.1+cu129", "cu129").read_bytes()
    index.tampered_paths.add("/whl/cu129/torch/")
    served = get(path)
    assert served != original
    assert zipfile.ZipFile(BytesIO(served)).comment == b"tampered"
    page = json.loads(get("/whl/cu129/torch/", JSON_TYPE))
    listed = {f["filename"]: f["hashes"]["sha256"] for f in page["files"]}
    assert listed["torch-2.14.1+cu129-py3-none-any.whl"] == (
        hashlib.sha256(served).hexdigest()
    )
    index.reset()
    assert get(path) == original


def test_stub_executable(tmp_path: Path) -> None:
    stub = write_stub_executable(tmp_path / "bin", "nvidia-smi", "CUDA 12.9\n", 3)
    result = subprocess.run(
        [str(stub), "--query-gpu=driver_version", "--format=csv"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (3, "CUDA 12.9\n")
    assert stub_calls(stub) == ["--query-gpu=driver_version --format=csv"]


def test_installed_distributions_skips_a_killed_pips_tilde_folder(
    tmp_path: Path,
) -> None:
    """pip moves a distribution aside to ``~orch-….dist-info`` and ignores it
    ("Ignoring invalid distribution ~orch"), as the plugin does: so does the helper."""
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    for folder, name, version in (
        ("~orch-2.14.1+cu129", "torch", "2.14.1+cu129"),
        ("six-1.0", "six", "1.0"),
    ):
        (site / f"{folder}.dist-info").mkdir(parents=True)
        (site / f"{folder}.dist-info" / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
    assert installed_distributions(tmp_path) == {"six": "1.0"}


# -- (a) every wheel installs with pip from the served indexes -------------------


@dataclass
class PipJob:
    index: str
    requirements: list[str]
    no_deps: bool = False


def _pip_jobs(universe: Universe) -> list[PipJob]:
    """One resolving install per (index, torch version) of the torch family,
    then ``--no-deps`` installs of everything not covered, at most one version
    of a project per job."""
    jobs: list[PipJob] = []
    for index in [PYPI, *universe.variants]:
        for torch in universe.versions("torch", index):
            public, _, label = torch.partition("+")
            suffix = f"+{label}" if label else ""
            reqs = [f"torch=={torch}"]
            for project, table in (
                ("torchvision", TORCHVISION_FOR),
                ("torchaudio", TORCHAUDIO_FOR),
            ):
                version = table[public] + suffix
                if version in universe.versions(project, index):
                    reqs.append(f"{project}=={version}")
            jobs.append(PipJob(index, reqs))
    return jobs


def _pip_install(
    universe: Universe, index: IndexServer, tmp_path: Path, n: int, job: PipJob
) -> tuple[PipJob, dict[str, str]]:
    venv = tmp_path / f"venv{n}"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
    )
    url = index.pypi_url if job.index == PYPI else index.whl_url(job.index)
    command = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(venv / "bin" / "python"),
        "install",
        "--index-url",
        url,
        *(["--no-deps"] if job.no_deps else []),
        *job.requirements,
    ]
    result = subprocess.run(
        command,
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, describe(result)
    return job, installed_distributions(venv)


def test_every_wheel_installs_with_pip(
    universe: Universe, index: IndexServer, tmp_path: Path
) -> None:
    jobs = _pip_jobs(universe)
    results: list[tuple[PipJob, dict[str, str]]] = []

    def run_all(batch: list[PipJob], offset: int) -> None:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [
                pool.submit(_pip_install, universe, index, tmp_path, offset + n, job)
                for n, job in enumerate(batch)
            ]
            results.extend(future.result() for future in futures)

    run_all(jobs, 0)

    # Everything a job installed came from that job's index, at a version there.
    covered: set[tuple[str, str, str]] = set()
    for job, installed in results:
        for name, version in installed.items():
            assert version in universe.versions(name, job.index), (job, name, version)
            covered.add((job.index, name, version))

    # Then the rest, without dependencies, one version of a project per job.
    layers: dict[tuple[str, int], list[str]] = defaultdict(list)
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for built in universe.wheels:
        key = (built.index, built.spec.project, built.spec.version)
        if key in covered:
            continue
        layer = seen[(built.index, built.spec.project)]
        seen[(built.index, built.spec.project)] += 1
        layers[(built.index, layer)].append(
            f"{built.spec.project}=={built.spec.version}"
        )
    rest = [PipJob(i, reqs, no_deps=True) for (i, _), reqs in sorted(layers.items())]
    run_all(rest, len(jobs))
    for job, installed in results[len(jobs) :]:
        for requirement in job.requirements:
            name, version = requirement.split("==")
            assert installed.get(name) == version, (job, installed)
            covered.add((job.index, name, version))

    every = {(b.index, b.spec.project, b.spec.version) for b in universe.wheels}
    assert covered == every

    by_job = {(job.index, job.requirements[0]): inst for job, inst in results}
    assert by_job[("cu129", "torch==2.14.1+cu129")] == {
        "torch": "2.14.1+cu129",
        "torchvision": "0.29.1+cu129",
        "torchaudio": "2.14.1+cu129",
        "filelock": "3.20.0",
        "nvidia-cublas-cu12": "12.9.1.4",
        "nvidia-cudnn-cu12": "9.10.2.21",
        "triton": "3.6.0",
    }
    assert by_job[(PYPI, "torch==2.14.1")] == {
        "torch": "2.14.1",
        "torchvision": "0.29.1",
        "torchaudio": "2.14.1",
        "filelock": "3.20.0",
        "nvidia-cublas": "13.0.2.14",  # not 13.1.0.3: torch pins ==13.0.*
        "nvidia-cudnn-cu13": "9.13.0.50",
        "cuda-toolkit": "13.0.2",
        "nvidia-cuda-runtime": "13.0.96",
        "triton": "3.6.0",
    }
    assert by_job[("rocm6.4", "torch==2.13.0+rocm6.4")]["pytorch-triton-rocm"] == (
        "3.4.0"
    )
    assert set(by_job[("cpu", "torch==2.14.1+cpu")]) == {
        "torch",
        "torchvision",
        "torchaudio",
        "filelock",
    }


# -- (b) and (c) the real poetry against the fake PyPI ---------------------------


def test_poetry_locks_and_installs_from_fake_pypi(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    project = project_factory({"needs-torch": "*", "torchvision": "*"})
    project.run("lock", env_extra=DISABLED)
    locked = project.locked()
    assert locked["torch"] == "2.14.1"
    assert locked["torchvision"] == "0.29.1"
    assert locked["nvidia-cublas"] == "13.0.2.14"

    project.run("install", env_extra=DISABLED)
    installed = project.installed()
    for name in ("needs-torch", "torch", "torchvision", "filelock", "nvidia-cublas"):
        assert installed[name] == locked[name]
    assert "tinyutil" not in installed
    assert all(path.startswith("/simple/") for path in index.requests)


def test_poetry_downgrades_pip_installed_cuda_build(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    """The problem the plugin solves: Poetry replaces the CUDA build by PyPI's."""
    project = project_factory({"torch": "2.14.1", "torchvision": "*"})
    project.run("install", env_extra=DISABLED)
    assert project.installed()["torch"] == "2.14.1"

    project.pip(
        "install",
        "--index-url",
        index.whl_url("cu129"),
        "torch==2.14.1+cu129",
        "torchvision==0.29.1+cu129",
    )
    assert project.installed()["torch"] == "2.14.1+cu129"

    result = project.run("install", env_extra=DISABLED)
    assert "Downgrading torch (2.14.1+cu129 -> 2.14.1)" in result.stdout, describe(
        result
    )
    installed = project.installed()
    assert installed["torch"] == "2.14.1"
    assert installed["torchvision"] == "0.29.1"
    assert canonical_name("nvidia_cublas_cu12") in installed  # pip left it behind
