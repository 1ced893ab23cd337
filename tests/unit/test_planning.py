from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from poetry_torch_cuda.environment.installed import InstalledEnvironment
from poetry_torch_cuda.install.planning import Plan
from poetry_torch_cuda.install.planning import Target
from poetry_torch_cuda.install.planning import build_targets
from poetry_torch_cuda.install.planning import find_orphans
from poetry_torch_cuda.install.planning import plan_for
from poetry_torch_cuda.install.reconcile import describe_plan
from poetry_torch_cuda.install.request import InstallRequest
from poetry_torch_cuda.install.request import prepare_install
from poetry_torch_cuda.project.config import TorchCudaConfig
from poetry_torch_cuda.project.locked import LockedState
from poetry_torch_cuda.project.variants import parse_variant


if TYPE_CHECKING:
    from pathlib import Path

    from poetry_torch_cuda.project.variants import Variant

LINUX = {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11"}
CU129 = parse_variant("cu129")


def write_dist(site: Path, name: str, version: str, *requires: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {req}" for req in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def env_of(site: Path) -> InstalledEnvironment:
    return InstalledEnvironment([str(site)], LINUX)


CUBLAS = canonicalize_name("nvidia-cublas-cu12")
TORCH = TorchCudaConfig(CU129, packages=(Requirement("torch"),))
LOCKED = LockedState({canonicalize_name("torch"): "2.14.1"}, {})


def plan(site: Path, variant: Variant = CU129, *, force: bool = False) -> Plan:
    """The plan for torch 2.14.1 of ``variant`` in an environment of ``site``."""
    return plan_for(TORCH, variant, LOCKED, env_of(site), force=force)


NOTHING = InstalledEnvironment([], LINUX)


def torch_needing_cublas(site: Path, marker: str) -> Target:
    """Install torch 2.14.1+cu129, requiring cublas under ``marker``, and cublas
    in ``site``; the target torch 2.14.1+cu129."""
    write_dist(site, "torch", "2.14.1+cu129", f"nvidia-cublas-cu12 ; {marker}")
    write_dist(site, "nvidia-cublas-cu12", "12.9.1.4")
    return Target(canonicalize_name("torch"), Version("2.14.1+cu129"))


def test_targets_pin_locked_version_with_variant_label() -> None:
    targets = build_targets(
        [Requirement("torch"), Requirement("torchvision"), Requirement("torchaudio")],
        {
            canonicalize_name("torch"): "2.14.1",
            canonicalize_name("torchvision"): "0.29.1+cu126",
        },
        CU129,
        NOTHING,
    )
    assert [str(t) for t in targets] == [
        "torch==2.14.1+cu129",
        "torchvision==0.29.1+cu129",
    ]


def test_unlocked_package_with_specifier_becomes_a_range_target(
    tmp_path: Path,
) -> None:
    write_dist(tmp_path, "torchaudio", "2.13.0+cu126")  # held: it moves with the family
    wanted = [Requirement("torchaudio[io]>=2.13")]
    targets = build_targets(wanted, {}, CU129, env_of(tmp_path))
    assert [str(t) for t in targets] == ["torchaudio[io]>=2.13"]


def test_an_entry_whose_marker_excludes_the_environment_is_not_the_runs() -> None:
    packages = (
        Requirement("torch"),
        Requirement("torchvision; sys_platform == 'win32'"),
    )
    config = TorchCudaConfig(CU129, packages=packages)
    here = config.here(SimpleNamespace(marker_env=LINUX))  # type: ignore[arg-type]
    assert here.package_names == {"torch"}
    assert TORCH.here(None) is TORCH  # type: ignore[arg-type]  # no marker: no env asked


def test_satisfaction_needs_the_label() -> None:
    exact = Target(canonicalize_name("torch"), Version("2.14.1+cu129"))
    assert exact.is_satisfied_by("2.14.1+cu129", CU129)
    assert not exact.is_satisfied_by("2.14.1", CU129)
    assert not exact.is_satisfied_by("2.14.1+cu130", CU129)
    assert not exact.is_satisfied_by(None, CU129)
    ranged = Target(canonicalize_name("torch"), specifier=SpecifierSet(">=2.13"))
    assert ranged.is_satisfied_by("2.14.1+cu129", CU129)
    assert not ranged.is_satisfied_by("2.14.1+cpu", CU129)
    assert not ranged.is_satisfied_by("2.12.0+cu129", CU129)


def test_plan_is_empty_when_installed_matches(tmp_path: Path) -> None:
    target = torch_needing_cublas(tmp_path, "platform_system == 'Linux'")
    made = plan(tmp_path)
    assert made.is_empty
    assert made.satisfied == (target,)
    assert made.protected == {canonicalize_name("torch"), CUBLAS}


def test_plan_installs_when_label_differs(tmp_path: Path) -> None:
    write_dist(tmp_path, "torch", "2.14.1")
    target = Target(canonicalize_name("torch"), Version("2.14.1+cu129"))
    assert plan(tmp_path).install == (target,)


def test_orphans_are_cuda_wheels_nothing_needs(tmp_path: Path) -> None:
    write_dist(tmp_path, "torch", "2.14.1+cpu", "filelock")
    write_dist(tmp_path, "filelock", "3.20.0")
    write_dist(tmp_path, "nvidia-cublas-cu12", "12.9.1.4")
    write_dist(tmp_path, "nvidia-cudnn-cu12", "9.10.2.21", "nvidia-cublas-cu12")
    write_dist(tmp_path, "triton", "3.6.0")
    write_dist(tmp_path, "other-app", "1.0", "triton")
    target = Target(canonicalize_name("torch"), Version("2.14.1+cpu"))
    candidates = {
        canonicalize_name(n)
        for n in ("nvidia-cublas-cu12", "nvidia-cudnn-cu12", "triton")
    }
    orphans = find_orphans(candidates, [target], env_of(tmp_path))
    assert orphans == ["nvidia-cublas-cu12", "nvidia-cudnn-cu12"]


def test_no_orphans_when_the_target_needs_them(tmp_path: Path) -> None:
    target = torch_needing_cublas(tmp_path, "platform_system == 'Linux'")
    assert find_orphans({CUBLAS}, [target], env_of(tmp_path)) == []


def test_requirements_under_false_markers_do_not_count(tmp_path: Path) -> None:
    target = torch_needing_cublas(tmp_path, "platform_system == 'Windows'")
    assert find_orphans({CUBLAS}, [target], env_of(tmp_path)) == ["nvidia-cublas-cu12"]


def test_a_wheel_of_another_cuda_family_nothing_needs_is_an_orphan(
    tmp_path: Path,
) -> None:
    """Beside a CUDA 13 build, a ``-cu12`` wheel that no graph reaches (a later
    ``pip install --no-deps``) is an orphan; one something needs, one poetry.lock
    holds (JAX's, whose extra no installed metadata asks for), or one beside a
    build of no CUDA is not."""
    write_dist(tmp_path, "torch", "2.14.1+cu130", "nvidia-cudnn-cu13")
    write_dist(tmp_path, "nvidia-cudnn-cu13", "9.13.0.50")
    write_dist(tmp_path, "nvidia-cudnn-cu12", "9.10.2.21")
    write_dist(tmp_path, "nvidia-nccl-cu12", "2.27.3")
    write_dist(tmp_path, "jax-cuda12-plugin", "0.7.0", "nvidia-nccl-cu12")
    torch = Target(canonicalize_name("torch"), Version("2.14.1+cu130"))
    installed = env_of(tmp_path)
    assert find_orphans((), [torch], installed) == ["nvidia-cudnn-cu12"]
    cudnn12 = canonicalize_name("nvidia-cudnn-cu12")
    assert find_orphans((), [torch], installed, {cudnn12}) == []
    cpu = tmp_path / "cpu"
    write_dist(cpu, "torch", "2.14.1+cpu")
    write_dist(cpu, "nvidia-cudnn-cu12", "9.10.2.21")
    cpu_torch = Target(canonicalize_name("torch"), Version("2.14.1+cpu"))
    assert find_orphans((), [cpu_torch], env_of(cpu)) == []


def test_a_wheel_of_another_family_makes_the_plan_reinstall_the_build(
    tmp_path: Path,
) -> None:
    """It may have replaced the build's files: the plan reinstalls the build (the
    sweep after it removes the wheel), as ``sync --force`` would."""
    write_dist(tmp_path, "torch", "2.14.1+cu130")
    write_dist(tmp_path, "nvidia-cublas-cu12", "12.9.1.4")
    made = plan(tmp_path, parse_variant("cu130"))
    assert made.install == (
        Target(canonicalize_name("torch"), Version("2.14.1+cu130")),
    )
    assert made.force and made.remove == ()
    # The dry run says why the matching build is installed again.
    assert describe_plan(made, would=True) == (
        "would install torch==2.14.1+cu130 from https://download.pytorch.org/whl/"
        "cu130; then remove nvidia-cublas-cu12, which nothing needs"
    )
    # One poetry.lock holds is Poetry's (JAX's): the build is left as it is.
    cublas = canonicalize_name("nvidia-cublas-cu12")
    locked = LockedState(LOCKED.versions, {cublas: []})
    made = plan_for(TORCH, parse_variant("cu130"), locked, env_of(tmp_path))
    assert made.is_empty


def test_a_build_without_a_cuda_wheel_it_requires_is_installed_again(
    tmp_path: Path,
) -> None:
    """A killed install left torch without its cuBLAS: Poetry skips the family's
    wheels, so the plan installs the targets again (pip adds what is missing)."""
    write_dist(tmp_path, "torch", "2.14.1+cu129", "nvidia-cublas-cu12", "filelock")
    target = Target(canonicalize_name("torch"), Version("2.14.1+cu129"))
    made = plan(tmp_path)
    assert made.install == (target,) and not made.force
    write_dist(tmp_path, "nvidia-cublas-cu12", "12.9.1.4")
    assert plan(tmp_path).is_empty  # filelock is Poetry's to install


def test_a_build_lacking_a_wheel_beside_an_orphan_sweeps_it_after_the_install(
    tmp_path: Path,
) -> None:
    """The orphan goes after the install, under its stash, as beside any other
    install: removed ahead of it by pip, a failed install could not put it back
    and would report the environment unchanged."""
    write_dist(tmp_path, "torch", "2.14.1+cu129", "nvidia-cudnn-cu12")
    write_dist(tmp_path, "nvidia-cublas-cu12", "12.9.1.4")  # nothing needs it
    torch, cublas = canonicalize_name("torch"), canonicalize_name("nvidia-cublas-cu12")
    locked = LockedState(LOCKED.versions, {torch: [cublas]})
    made = plan_for(TORCH, CU129, locked, env_of(tmp_path))
    assert made.install == (Target(torch, Version("2.14.1+cu129")),)
    assert made.remove == ()
    assert cublas in made.sweepable
    assert describe_plan(made) == (
        "install torch==2.14.1+cu129 from https://download.pytorch.org/whl/cu129; "
        "then remove nvidia-cublas-cu12, which nothing needs"
    )
    # Beside a wheel of another family too, the build is reinstalled whole.
    other = tmp_path / "cu130"
    write_dist(other, "torch", "2.14.1+cu130", "nvidia-cudnn-cu13")
    write_dist(other, "nvidia-cublas-cu12", "12.9.1.4")
    made = plan(other, parse_variant("cu130"))
    assert made.force and made.remove == ()


def test_a_plan_carries_what_it_was_made_from(tmp_path: Path) -> None:
    write_dist(tmp_path, "torch", "2.14.1+cu129", "nvidia-cublas-cu12")
    write_dist(tmp_path, "nvidia-cublas-cu12", "12.9.1.4")
    cu130 = parse_variant("cu130")
    target = Target(canonicalize_name("torch"), Version("2.14.1+cu130"))
    cublas = canonicalize_name("nvidia-cublas-cu12")
    made = plan(tmp_path, cu130)
    assert made.install == (target,)
    assert made.protected == {target.name, cublas}
    assert made.installed.version("torch") == "2.14.1+cu129"
    # what the installer may sweep afterwards: the CUDA wheels, never torch itself
    assert made.sweepable == {cublas}
    assert describe_plan(made) == (
        "install torch==2.14.1+cu130 from https://download.pytorch.org/whl/cu130"
    )
    shown = dataclasses.replace(made, index_shown="https://***@mirror.test/whl/cu130")
    assert describe_plan(shown) == (
        "install torch==2.14.1+cu130 from https://***@mirror.test/whl/cu130"
    )


def test_force_moves_what_is_in_place_to_the_install_list(tmp_path: Path) -> None:
    write_dist(tmp_path, "torch", "2.14.1+cu129")
    target = Target(canonicalize_name("torch"), Version("2.14.1+cu129"))
    made = plan(tmp_path)
    assert made.is_empty and not made.force
    again = plan(tmp_path, force=True)
    assert again.install == (target,) and again.satisfied == ()
    assert again.force


def test_a_plan_that_only_removes_asks_nothing_before_pip(tmp_path: Path) -> None:
    plan = Plan(CU129, remove=(canonicalize_name("nvidia-cublas-cu12"),))
    config = TorchCudaConfig(CU129)
    # neither the environment nor the output is touched: no index, no lock
    given = InstallRequest(plan, config, None, None, True)  # type: ignore[arg-type]
    request = prepare_install(given, None, None)  # type: ignore[arg-type]
    assert request.plan == plan
    assert request.files == () and request.asked == ""
    assert request.compile_bytecode


def test_nothing_held_is_said_only_when_nothing_is_here_to_move(
    tmp_path: Path,
) -> None:
    from poetry_torch_cuda.commands.switch import holds_nothing

    assert holds_nothing(Plan(CU129))
    # unused CUDA wheels to remove (switch --dry-run said "nothing moved")
    cublas = canonicalize_name("nvidia-cublas-cu12")
    assert not holds_nothing(Plan(CU129, remove=(cublas,)))
    # a specifier-only package in place is held (sync said "nothing moved")
    write_dist(tmp_path, "torchaudio", "2.14.1+cu129")
    audio = Target(canonicalize_name("torchaudio"), Version("2.14.1+cu129"))
    configured, here = frozenset({audio.name}), env_of(tmp_path)
    in_place = Plan(CU129, satisfied=(audio,), configured=configured, installed=here)
    assert not holds_nothing(in_place)
    # a configured package poetry.lock lacks is installed: it is here, unmoved
    write_dist(tmp_path, "torch", "2.14.1+cu128")
    torch = frozenset({canonicalize_name("torch")})
    held = Plan(CU129, configured=torch, installed=env_of(tmp_path))
    assert not holds_nothing(held)


LOCK = """\
[[package]]
name = "torch"
version = "2.14.1"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
markers = "sys_platform == \\"darwin\\""
files = []

[metadata]
lock-version = "2.1"
python-versions = ">=3.9"
content-hash = "0"
"""


def test_unmoved_says_whether_poetry_lock_locks_it_for_other_environments(
    tmp_path: Path,
) -> None:
    """A build poetry.lock locks for macOS alone was said to be one it does not
    lock, with the fix `poetry add torch`, which changes nothing."""
    from poetry.factory import Factory

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "1"\nrequires-python = ">=3.9"\n'
        "dependencies = [\"torch; sys_platform == 'darwin'\"]\n"
    )
    (project / "poetry.lock").write_text(LOCK)
    poetry = Factory().create_poetry(project)
    site = tmp_path / "site"
    write_dist(site, "torch", "2.14.1+cu128")
    write_dist(site, "torchvision", "0.29.1+cu128")
    names = frozenset(map(canonicalize_name, ("torch", "torchvision")))
    held = Plan(CU129, configured=names, installed=env_of(site))

    unmoved = held.unmoved(poetry)

    warning, cause, fix = unmoved["torch"]
    assert cause == (
        'poetry.lock locks torch only for other environments (sys_platform == "'
        "darwin\"), so no install puts cu129's build in"
    )
    assert fix == "widen the markers that leave it out, then run `poetry lock`"
    assert (
        warning
        == f"torch 2.14.1+cu128 (CUDA 12.8 build) is installed, but {cause}: {fix}"
    )
    assert unmoved["torchvision"][0] == (
        "torchvision 0.29.1+cu128 (CUDA 12.8 build) is installed, but poetry.lock "
        "does not lock torchvision, so no install puts cu129's build in: add it to "
        "the project's dependencies (`poetry add torchvision`)"
    )
    # the variant's own build needs no move
    cu128 = Plan(parse_variant("cu128"), configured=names, installed=env_of(site))
    assert cu128.unmoved(poetry) == {}
