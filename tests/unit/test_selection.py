"""Unit tests for issue 8's selection logic: groups/extras, held packages, the family."""

from __future__ import annotations

import os
import shutil
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name
from poetry.console.commands.group_command import GroupCommand
from poetry.core.packages.dependency import Dependency
from poetry.core.packages.dependency_group import DependencyGroup
from poetry.core.packages.package import Package
from poetry.core.packages.project_package import ProjectPackage

from poetry_torch_cuda.environment.installed import InstalledEnvironment
from poetry_torch_cuda.environment.installed import installed_environment
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.pip import pip_environment
from poetry_torch_cuda.install.planning import Target
from poetry_torch_cuda.install.planning import build_targets
from poetry_torch_cuda.install.undo import Stash
from poetry_torch_cuda.project.config import TorchCudaConfig
from poetry_torch_cuda.project.locked import LockedState
from poetry_torch_cuda.project.locked import refuse_unindexed
from poetry_torch_cuda.project.selection import SELECTION_OPTIONS
from poetry_torch_cuda.project.selection import LockView
from poetry_torch_cuda.project.selection import Selection
from poetry_torch_cuda.project.selection import selection_from
from poetry_torch_cuda.project.selection import selection_options
from poetry_torch_cuda.project.variants import parse_variant
from poetry_torch_cuda.reports.status import left_to_poetry
from poetry_torch_cuda.reports.status import unknown_entries
from poetry_torch_cuda.tempfiles import remove


if TYPE_CHECKING:
    from pathlib import Path


def n(name: str) -> NormalizedName:
    return canonicalize_name(name)


def project_package() -> ProjectPackage:
    package = ProjectPackage("demo", "1.0")
    package.add_dependency(Dependency("filelock", "*"))
    dev = DependencyGroup("dev")
    dev.add_dependency(Dependency("pytest", "*"))
    gpu = DependencyGroup("gpu", optional=True)
    gpu.add_dependency(Dependency("torch", "*"))
    package.add_dependency_group(dev)
    package.add_dependency_group(gpu)
    package.extras = {n("cuda"): [Dependency("torch", "*")]}
    return package


class FakeCommand(GroupCommand):
    """Poetry's GroupCommand with options given directly (no console)."""

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self._options = {
            name.replace("_", "-"): value for name, value in options.items()
        }
        self._poetry = SimpleNamespace(package=project_package())

    @property
    def poetry(self) -> Any:
        return self._poetry

    def option(self, name: str, default: Any = None) -> Any:
        if name in self._options:
            return self._options[name]
        return [] if name in ("with", "without", "only", "extras") else False

    def line_error(self, *args: Any, **kwargs: Any) -> None:
        pass


def test_the_options_are_poetry_installs_own() -> None:
    assert sorted(o.name for o in selection_options()) == sorted(SELECTION_OPTIONS)


def test_no_options_is_not_explicit_and_selects_the_default_groups() -> None:
    selection = selection_from(FakeCommand())
    assert not selection.explicit
    assert selection.groups == {"main", "dev"}
    assert selection.extras == frozenset()


@pytest.mark.parametrize(
    ("options", "groups"),
    [
        ({"with": ["gpu"]}, {"main", "dev", "gpu"}),
        ({"without": ["dev"]}, {"main"}),
        ({"only": ["gpu"]}, {"gpu"}),
        ({"with": ["gpu,dev"], "without": ["main"]}, {"dev", "gpu"}),
        ({"all_groups": True}, {"main", "dev", "gpu"}),
    ],
)
def test_groups_are_selected_as_poetry_does(
    options: dict[str, Any], groups: set[str]
) -> None:
    selection = selection_from(FakeCommand(**options))
    assert selection.explicit
    assert selection.groups == groups


def test_extras() -> None:
    assert selection_from(FakeCommand(extras=["cuda"])).extras == {"cuda"}
    assert selection_from(FakeCommand(all_extras=True)).extras == {"cuda"}
    with pytest.raises(TorchCudaError, match="nope"):
        selection_from(FakeCommand(extras=["nope"]))
    with pytest.raises(TorchCudaError, match="all-extras"):
        selection_from(FakeCommand(extras=["cuda"], all_extras=True))


def test_unknown_group_and_contradictions_are_errors() -> None:
    with pytest.raises(TorchCudaError, match="Group"):
        selection_from(FakeCommand(**{"with": ["nope"]}))
    with pytest.raises(TorchCudaError, match="all-groups"):
        selection_from(FakeCommand(all_groups=True, without=["dev"]))


def test_targets_are_what_is_held_plus_what_is_selected() -> None:
    configured = [n("torch"), n("torchvision"), n("torchaudio")]
    everything = {n("torch"): "2.14.1", n("torchvision"): "0.29.1", n("filelock"): "3"}

    def targets(held: dict[str, str], selected: Any) -> dict[str, str]:
        view = LockView.__new__(LockView)  # the lock's answers, without a Poetry
        view.versions, view.base = everything, LockedState({}, {})
        view.selection = Selection(explicit=selected is not None)
        view._resolved = {(frozenset(), frozenset()): selected}
        return dict(view.state(configured, Installed(held)).versions)

    torch = {"torch": "2.14.1+cu129"}
    assert targets(torch, None) == {n("torch"): "2.14.1"}
    # nothing held, nothing asked: nothing to install
    assert targets({}, None) == {}
    selected = {n("torchvision"): "0.29.1", n("filelock"): "3"}
    assert targets(torch, selected) == {
        n("torch"): "2.14.1",
        n("torchvision"): "0.29.1",
    }


class Installed(InstalledEnvironment):
    def __init__(self, versions: dict[str, str]) -> None:
        super().__init__([], {})
        from poetry_torch_cuda.environment.installed import InstalledDistribution

        self._cache.update(
            {
                n(name): InstalledDistribution(n(name), version, frozenset())
                for name, version in versions.items()
            }
        )

    def get(self, name: str) -> Any:
        return self._cache.get(n(name))

    def all(self) -> Any:
        return {k: v for k, v in self._cache.items() if v is not None}


def test_a_specifier_only_target_never_comes_alone() -> None:
    locked = Target(n("torch"), version=None)
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    torch = Target(n("torch"), Version("2.14.1+cu130"))
    audio = Target(n("torchaudio"), specifier=SpecifierSet(">=2.8"))
    wanted = [Requirement("torch"), Requirement("torchaudio>=2.8")]
    cu130 = parse_variant("cu130")

    def targets(locked: dict[str, str], held: dict[str, str]) -> list[Target]:
        versions = {n(name): version for name, version in locked.items()}
        return build_targets(wanted, versions, cu130, Installed(held))

    assert targets({}, {}) == []
    assert targets({}, {"torchaudio": "2.14.1+cu129"}) == [audio]
    assert targets({"torch": "2.14.1"}, {}) == [torch, audio]
    assert locked.version is None


def config(*packages: str) -> TorchCudaConfig:
    return TorchCudaConfig(
        parse_variant("cu129"), packages=tuple(Requirement(p) for p in packages)
    )


def test_a_misspelled_entry_is_named_with_a_close_match() -> None:
    (message,) = unknown_entries(
        config("troch", "torchvision"), ["torch", "torchvision"]
    )
    assert '"troch"' in message and "did you mean torch?" in message
    # a specifier, a PyTorch package the lock lacks, and the lock's names are fine
    assert unknown_entries(config("torch", "torchaudio", "x>=1"), ["torch"]) == []


def test_a_per_variant_package_left_to_poetry_is_named() -> None:
    installed = Installed({"torch": "2.14.1+cu129", "torchvision": "0.29.1"})
    (message,) = left_to_poetry(config("torch"), installed)
    assert "torchvision 0.29.1" in message
    assert 'packages = ["torch", "torchvision"]' in message
    assert left_to_poetry(config("torch"), Installed({"torchvision": "0.29.1"})) == []


def test_pip_settings_that_add_files_or_pins_are_neutralised() -> None:
    env = pip_environment(
        {"PIP_FIND_LINKS": "/wheels", "PIP_CONSTRAINT": "/c.txt", "PIP_CERT": "/ca.pem"}
    )
    assert env["PIP_FIND_LINKS"] == env["PIP_CONSTRAINT"] == ""
    assert env["PIP_NO_INPUT"] == "1"
    assert env["PIP_CERT"] == "/ca.pem"  # every other setting is kept


def test_the_stash_restores_the_exact_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No Poetry env here for its in-process uninstaller: the removal goes to "pip".
    monkeypatch.setitem(sys.modules, "poetry.installation.uninstaller", None)
    (tmp_path / "pyvenv.cfg").write_text("")  # a virtualenv: its stash is inside
    site = tmp_path / "site"
    info = site / "demo-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "demo.py").write_text("old = True\n")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    (info / "RECORD").write_text(
        "demo.py,,\ndemo-1.0.dist-info/METADATA,,\ndemo-1.0.dist-info/RECORD,,\n"
    )
    env = SimpleNamespace(
        path=tmp_path,
        site_packages=SimpleNamespace(candidates=[site]),
        marker_env={},
    )
    stash = Stash.take(env, ["demo"], installed_environment(env))  # type: ignore[arg-type]
    assert stash is not None
    # what pip does: unlink the old files, write new ones (and leave a ~ dir)
    for path in (site / "demo.py", info / "METADATA", info / "RECORD"):
        path.unlink()
    info.rmdir()
    new_info = site / "demo-2.0.dist-info"
    new_info.mkdir()
    (site / "demo.py").write_text("old = False\n")
    (new_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: demo\nVersion: 2.0\n"
    )
    (new_info / "RECORD").write_text("demo.py,,\ndemo-2.0.dist-info/METADATA,,\n")
    (site / "~emo").mkdir()
    removed: list[list[str]] = []

    def uninstall(names: list[str]) -> None:
        removed.append(names)
        shutil.rmtree(new_info)
        (site / "demo.py").unlink()

    changes = stash.put_back(env, uninstall)  # type: ignore[arg-type]
    remove(stash.root)
    assert changes == ["changed demo 2.0 -> 1.0"]
    assert (site / "demo.py").read_text() == "old = True\n"
    assert "Version: 1.0" in (info / "METADATA").read_text()
    assert sorted(os.listdir(site)) == ["demo-1.0.dist-info", "demo.py"]
    assert sorted(os.listdir(tmp_path)) == ["pyvenv.cfg", "site"]  # no stash left


def audio_lock() -> Any:
    """cu130's entry of torch-cuda.lock, holding several torchaudio builds."""
    from poetry_torch_cuda.lockfile.model import LockedPackage
    from poetry_torch_cuda.lockfile.model import VariantLock

    held = [("torch", "2.14.1")] + [
        ("torchaudio", v) for v in ("2.13.0", "2.14.1", "2.15.0")
    ]
    packages = tuple(LockedPackage(n(name), f"{v}+cu130") for name, v in held)
    return VariantLock("cu130", "https://index.test/whl/cu130", packages)


def audio_plan(installed_version: str | None, specifier: str = ">=2.8,<2.15") -> Any:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.install.request import pin_specifiers

    installed = Installed(
        {} if installed_version is None else {"torchaudio": installed_version}
    )
    plan = Plan(
        parse_variant("cu130"),
        install=(
            Target(n("torch"), Version("2.14.1+cu130")),
            Target(n("torchaudio"), specifier=SpecifierSet(specifier)),
        ),
        installed=installed,  # type: ignore[arg-type]
    )
    return pin_specifiers(plan, audio_lock())


def test_a_specifier_only_package_is_pinned_to_one_build_of_the_lock() -> None:
    # the installed public version moves sideways to the new build
    assert str(audio_plan("2.13.0+cu129").install[1]) == "torchaudio==2.13.0+cu130"
    # else the newest locked build that satisfies the specifier
    assert str(audio_plan(None).install[1]) == "torchaudio==2.14.1+cu130"
    assert str(audio_plan(None).install[0]) == "torch==2.14.1+cu130"


def test_no_locked_build_that_satisfies_the_specifier_is_an_error() -> None:
    with pytest.raises(
        TorchCudaError, match=r"torch-cuda\.lock has no torchaudio>=3 for"
    ):
        audio_plan(None, ">=3")


def test_auto_falling_back_to_cpu_next_to_a_gpu_names_the_drivers() -> None:
    from poetry_torch_cuda.index.offers import Offer
    from poetry_torch_cuda.machine.detection import cpu_fallback_warning
    from poetry_torch_cuda.machine.detection import decide
    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.machine.probe import NvidiaDriver
    from poetry_torch_cuda.machine.probe import NvidiaGpu

    rtx = NvidiaGpu(0, "NVIDIA GeForce RTX 3090", (8, 6))
    # Below even CUDA 11.x's minor-version-compatibility floor (450.80.02): no
    # CUDA build runs (470.57.02 would run cu118 by that rule).
    machine = Machine(
        "linux", "x86_64", NvidiaDriver("440.33.01", "nvidia-smi", (rtx,))
    )
    decision = decide(machine, lambda variant: Offer(True, "offered"))
    warning = cpu_fallback_warning(decision, machine)
    assert warning is not None
    assert "RTX 3090 (driver 440.33.01)" in warning
    assert "the driver is too old for: cu132, cu130" in warning
    assert ">= 450.80.02 runs cu118" in warning  # by minor-version compatibility
    assert 'set variant = "cpu"' in warning
    assert max(len(line) for line in warning.splitlines()) < 200
    # a machine without a GPU, or a CUDA pick, says nothing
    cpu_only = Machine("linux", "x86_64")
    none = decide(cpu_only, lambda variant: Offer(True, "offered"))
    assert cpu_fallback_warning(none, cpu_only) is None


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("directory", "/src/vision"),
        ("git", "https://github.com/me/vision.git"),
        ("url", "https://me:s3cret@example.org/torchvision-0.29.1-py3-none-any.whl"),
        ("legacy", None),  # a Poetry source: an index, the plugin's to replace
    ],
)
def test_a_configured_package_from_no_index_is_refused(kind: str, url: str) -> None:
    package = Package("torchvision", "0.29.1", source_type=kind, source_url=url)
    if url is None:
        refuse_unindexed([package], (Requirement("torchvision"),))
        return
    refuse_unindexed([package], (Requirement("torch"),))  # not configured: Poetry's
    with pytest.raises(TorchCudaError) as error:
        refuse_unindexed([package], (Requirement("torchvision"),))
    shown = url.replace("me:s3cret", "***")  # never a credential
    assert f"poetry.lock takes it from {kind} {shown}, which" in str(error.value)
