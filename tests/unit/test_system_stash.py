"""The rollback stash of an install into a Python that is no virtualenv
(``virtualenvs.create = false``, opted in): in the environment's state folder
(Poetry's cache), never in the interpreter's prefix; a copy where that folder
is on another filesystem than site-packages (issue 21 #17)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import suppress
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING
from typing import Any

import pytest
from packaging.markers import default_environment
from packaging.utils import canonicalize_name

from poetry_torch_cuda.environment.envlock import state_dir
from poetry_torch_cuda.environment.installed import installed_environment
from poetry_torch_cuda.install import undo
from poetry_torch_cuda.install.undo import INSTALLED
from poetry_torch_cuda.install.undo import PREVIOUS
from poetry_torch_cuda.install.undo import STASH
from poetry_torch_cuda.install.undo import Stash
from poetry_torch_cuda.install.undo import dead_stashes
from poetry_torch_cuda.install.undo import drop_previous
from poetry_torch_cuda.install.undo import finish
from poetry_torch_cuda.install.undo import previous_build
from poetry_torch_cuda.install.undo import recover
from tests.support.processes import mounted_tmpfs


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterator
    from collections.abc import Sequence

SHM = Path("/dev/shm")  # a tmpfs: another filesystem than tmp_path's


class SystemPython:
    """What Poetry's SystemEnv tells the stash about a prefix like ``/usr/local``."""

    def __init__(self, prefix: Path) -> None:
        self.path = prefix
        site = prefix / "lib" / "python3.11" / "site-packages"
        self.site_packages = SimpleNamespace(candidates=[site])
        self.marker_env = default_environment()


def system_python(prefix: Path) -> Any:
    """A prefix holding torch 2.14.1+cpu: its module and dist-info, no pyvenv.cfg."""
    env = SystemPython(prefix)
    site = env.site_packages.candidates[0]
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("build = 'cpu'\n")
    info = site / "torch-2.14.1+cpu.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: torch\nVersion: 2.14.1+cpu\n"
    )
    (info / "RECORD").write_text(
        "torch/__init__.py,,\n"
        "torch-2.14.1+cpu.dist-info/METADATA,,\n"
        "torch-2.14.1+cpu.dist-info/RECORD,,\n"
    )
    return env


@pytest.fixture(params=["same-filesystem", "other-filesystem"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """Poetry's cache folder: beside the prefix, or on a tmpfs."""
    if request.param == "same-filesystem":
        yield tmp_path / "cache"
        return
    if not os.access(SHM, os.W_OK) or SHM.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no writable folder on another filesystem")
    folder = Path(tempfile.mkdtemp(dir=SHM))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def refuse(names: object) -> None:
    raise AssertionError("nothing changed version: nothing to uninstall")


def test_the_stash_stays_out_of_the_prefix_and_puts_torch_back(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POETRY_CACHE_DIR", str(cache))
    prefix = tmp_path / "usr-local"
    env = system_python(prefix)
    module = env.site_packages.candidates[0] / "torch" / "__init__.py"

    stash = Stash.take(env, ["torch"], installed_environment(env))

    assert stash is not None
    home = state_dir(prefix)
    assert cache in home.parents and stash.root.parent == home
    assert [p.name for p in prefix.iterdir()] == ["lib"]
    module.unlink()  # as pip replaces a file: unlink, then write
    module.write_text("build = 'cu130'\n")
    # Not "pip had changed": Poetry's uninstaller, a removal's, may have.
    assert stash.put_back(env, refuse) == ["put back 1 file"]
    assert module.read_text() == "build = 'cpu'\n"

    stash.keep(prefix)  # the previous build, for a switch's rollback
    previous = previous_build(prefix)
    assert previous is not None and previous.root.parent == home
    assert [p.name for p in prefix.iterdir()] == ["lib"]
    drop_previous(prefix)
    assert previous_build(prefix) is None


def test_a_distribution_pip_left_without_record_is_removed_and_the_old_one_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after pip wrote a wheel's files and METADATA but not yet its RECORD
    (pip writes RECORD last): no uninstaller can remove that distribution, so
    the put-back removes it itself, then links the stashed build back."""
    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    env = system_python(tmp_path / "usr-local")
    site = env.site_packages.candidates[0]
    stash = Stash.take(env, ["torch"], installed_environment(env))
    assert stash is not None
    # pip removed the old build, then was stopped while writing the new one
    shutil.rmtree(site / "torch-2.14.1+cpu.dist-info")
    (site / "torch" / "__init__.py").unlink()
    (site / "torch" / "__init__.py").write_text("build = 'cu130'\n")
    (site / "torch" / "_C.so").write_text("new\n")
    half = site / "torch-2.14.1+cu130.dist-info"
    half.mkdir()
    (half / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: torch\nVersion: 2.14.1+cu130\n"
    )

    stash.put_back(env, refuse)

    assert not half.exists()
    assert not (site / "torch" / "_C.so").exists()
    assert (site / "torch" / "__init__.py").read_text() == "build = 'cpu'\n"
    assert (site / "torch-2.14.1+cpu.dist-info" / "RECORD").is_file()


def test_a_previous_build_that_cannot_be_kept_leaves_the_install_standing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After pip succeeded, a stash that cannot become the previous build (a full
    disk for its manifest; here a file where it goes) is dropped: no error for an
    install that holds, and the record of its locked files is written."""
    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    prefix = tmp_path / "usr-local"
    env = system_python(prefix)
    stash = Stash.take(env, ["torch"], installed_environment(env))
    (state_dir(prefix) / PREVIOUS).write_text("in the way\n")
    sha = "ab" * 32
    request = SimpleNamespace(
        files=(SimpleNamespace(name="torch", sha256=sha),),
        plan=SimpleNamespace(force=False),
    )

    finish(stash, env, request)  # type: ignore[arg-type]

    assert not stash.root.exists()
    assert previous_build(prefix) is None
    assert json.loads((state_dir(prefix) / INSTALLED).read_text()) == {"torch": sha}


def test_an_interrupt_while_the_stash_is_taken_leaves_no_stash(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the files are linked (or copied, on another disk: seconds for
    a CUDA build) drops the half-made stash, as a failed link does."""
    from poetry_torch_cuda.install import undo

    monkeypatch.setenv("POETRY_CACHE_DIR", str(cache))
    env = system_python(tmp_path / "usr")
    linked: list[str] = []

    def interrupted(source: str | Path, target: str | Path) -> None:
        linked.append(str(target))
        if len(linked) == 2:  # the user's Ctrl-C, between two files
            raise KeyboardInterrupt
        shutil.copyfile(source, target)

    monkeypatch.setattr(undo, "link", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Stash.take(env, ["torch"], installed_environment(env))
    assert len(linked) == 2
    assert [p.name for p in state_dir(env.path).iterdir() if p.is_dir()] == []


def test_a_failed_put_back_is_worded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stash after a failed install and the kept build after a failed
    verification fail to go back the same way: one sentence, with the fix."""
    from poetry_torch_cuda.install.undo import undo
    from poetry_torch_cuda.proof import after

    def broken(*_: Any) -> None:
        raise OSError("disk gone")

    fix = (
        "failed too (disk gone): torch may not import; "
        "`poetry torch-cuda sync --force` reinstalls the build."
    )
    plan = SimpleNamespace(unchanged="Nothing changed.", install=())
    stash = SimpleNamespace(put_back=broken)
    error = undo(RuntimeError("pip failed"), stash, plan, None, None)  # type: ignore[arg-type]
    assert f"Putting back the environment {fix}" in str(error)
    kept = Stash(tmp_path, {"torch": "2.14.1+cu126"}, ["torch"])
    monkeypatch.setattr(kept, "put_back", broken)
    monkeypatch.setattr(after, "previous_build", lambda _: kept)
    env = SimpleNamespace(path=tmp_path, get_pip_command=lambda: ["pip"])
    ctx = SimpleNamespace(env=env, config=SimpleNamespace(package_names={"torch"}))
    plan = SimpleNamespace(install=("torch",))
    assert after._roll_back(ctx, plan, []) == (  # type: ignore[arg-type]
        False,
        f"Putting back torch 2.14.1+cu126 {fix}",
    )


def _dist(
    site: Path, name: str, version: str, module: str, installer: str = "pip"
) -> None:
    package = name.replace("-", "_")
    info = site / f"{package}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    (info / "INSTALLER").write_text(f"{installer}\n")
    (site / package).mkdir(exist_ok=True)
    (site / package / "__init__.py").write_text(module)
    (info / "RECORD").write_text(
        f"{package}/__init__.py,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n"
    )


def _killed(root: Path, how: str = "killed") -> Path:
    """The stash ``root`` as a run that is gone now left it."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    return root.rename(root.with_name(f"{STASH}{gone.pid}.{how}"))


def _uninstaller(site: Path, removed: list[str]) -> Callable[[Sequence[str]], None]:
    """An uninstall that notes each name and removes its files, as pip does."""

    def uninstall(names: Sequence[str]) -> None:
        for name in names:
            removed.append(name)
            package = name.replace("-", "_")
            shutil.rmtree(next(site.glob(f"{package}-*.dist-info")))
            shutil.rmtree(site / package)

    return uninstall


def _cu130_installed_over_a_stash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Path, Stash]:
    """A system Python whose cpu torch was stashed, then replaced by cu130 as pip does."""
    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "poetry.installation.uninstaller", None)
    env = system_python(tmp_path / "usr-local")
    site = env.site_packages.candidates[0]
    stash = Stash.take(env, ["torch"], installed_environment(env))
    shutil.rmtree(site / "torch-2.14.1+cpu.dist-info")  # pip's install of cu130
    (site / "torch" / "__init__.py").unlink()
    _dist(site, "torch", "2.14.1+cu130", "build = 'cu130'\n")
    return env, site, stash


def test_a_killed_runs_stash_is_put_back_leaving_what_poetry_changed_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 after pip replaced torch; then Poetry updated a package of its own
    (the next ``poetry install``, before the plugin's step): the next run puts
    back torch from the killed run's stash and leaves Poetry's update alone."""
    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "poetry.installation.uninstaller", None)
    env = system_python(tmp_path / "usr-local")
    site = env.site_packages.candidates[0]
    _dist(site, "tinyutil", "1.0.0", "old = True\n")
    stash = Stash.take(env, ["torch", "nvidia-cublas"], installed_environment(env))
    _killed(stash.root)  # its run is gone now
    # what the killed run's pip did, then Poetry's update
    shutil.rmtree(site / "torch-2.14.1+cpu.dist-info")
    (site / "torch" / "__init__.py").unlink()
    _dist(site, "torch", "2.14.1+cu130", "build = 'cu130'\n")
    _dist(site, "nvidia-cublas", "13.0.2.14", "")
    shutil.rmtree(site / "tinyutil-1.0.0.dist-info")
    (site / "tinyutil" / "__init__.py").unlink()
    _dist(site, "tinyutil", "1.1.0", "old = False\n")
    removed: list[str] = []
    undone = recover(env, _uninstaller(site, removed))

    assert removed == ["nvidia-cublas", "torch"]
    assert undone == [
        "removed nvidia-cublas 13.0.2.14",
        "changed torch 2.14.1+cu130 -> 2.14.1+cpu",
    ]
    assert (site / "torch" / "__init__.py").read_text() == "build = 'cpu'\n"
    assert (site / "tinyutil" / "__init__.py").read_text() == "old = False\n"
    assert (site / "tinyutil-1.1.0.dist-info").is_dir()
    assert [p.name for p in state_dir(env.path).iterdir()] == []
    assert recover(env, refuse) == []  # nothing left to put back


def test_a_killed_runs_stash_leaves_what_poetry_installed_of_its_family_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 after pip replaced torch; then Poetry's installer changed two
    distributions the killed run's stash names (triton, made the project's own
    since, and filelock, which the killed run was to add): recovery removed
    Poetry's filelock and put the stashed triton 3.5.0 back beside Poetry's
    3.6.0. It puts back torch only, keeps Poetry's two, and says so."""
    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "poetry.installation.uninstaller", None)
    env = system_python(tmp_path / "usr-local")
    site = env.site_packages.candidates[0]
    _dist(site, "triton", "3.5.0", "old = True\n")
    family = ["filelock", "torch", "triton"]
    stash = Stash.take(env, family, installed_environment(env))
    _killed(stash.root)  # its run is gone now
    # what the killed run's pip did, then Poetry's installer
    shutil.rmtree(site / "torch-2.14.1+cpu.dist-info")
    (site / "torch" / "__init__.py").unlink()
    _dist(site, "torch", "2.14.1+cu130", "build = 'cu130'\n")
    shutil.rmtree(site / "triton-3.5.0.dist-info")
    (site / "triton" / "__init__.py").unlink()
    _dist(site, "triton", "3.6.0", "old = False\n", installer="Poetry 2.5.1")
    (site / "triton" / "new.py").write_text("")  # a file the stashed triton lacks
    with (site / "triton-3.6.0.dist-info" / "RECORD").open("a") as record:
        record.write("triton/new.py,,\n")
    _dist(site, "filelock", "3.19.0", "", installer="Poetry 2.5.1")
    removed: list[str] = []
    undone = recover(env, _uninstaller(site, removed))

    assert removed == ["torch"]
    assert undone == [
        "changed torch 2.14.1+cu130 -> 2.14.1+cpu",
        "kept filelock 3.19.0 (installed by Poetry since)",
        "kept triton 3.6.0 (installed by Poetry since)",
    ]
    assert (site / "torch" / "__init__.py").read_text() == "build = 'cpu'\n"
    assert (site / "triton" / "__init__.py").read_text() == "old = False\n"
    assert (site / "triton" / "new.py").is_file()
    assert sorted(p.name for p in site.glob("*.dist-info")) == [
        "filelock-3.19.0.dist-info",
        "torch-2.14.1+cpu.dist-info",
        "triton-3.6.0.dist-info",
    ]


def test_a_killed_runs_stash_puts_console_scripts_back_whatever_the_record_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stash follows RECORD, whose order is the wheel's: here the .dist-info
    first, and a console script outside site-packages (``../../../bin``). pip
    replaced both; recovery puts the script and the metadata back."""
    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "poetry.installation.uninstaller", None)
    env = system_python(tmp_path / "usr-local")
    site = env.site_packages.candidates[0]
    script = env.path / "bin" / "torchrun"
    script.parent.mkdir()
    script.write_text("#!python\n# cpu\n")
    info = site / "torch-2.14.1+cpu.dist-info"
    (info / "RECORD").write_text(
        f"{info.name}/RECORD,,\n{info.name}/METADATA,,\n"
        "../../../bin/torchrun,,\ntorch/__init__.py,,\n"
    )
    stash = Stash.take(env, ["torch"], installed_environment(env))
    _killed(stash.root)  # its run is gone now
    shutil.rmtree(info)  # what the killed run's pip did
    shutil.rmtree(site / "torch")
    script.unlink()
    _dist(site, "torch", "2.14.1+cu130", "build = 'cu130'\n")
    script.write_text("#!python\n# cu130\n")

    def uninstall(names: Sequence[str]) -> None:
        assert list(names) == ["torch"]
        shutil.rmtree(site / "torch-2.14.1+cu130.dist-info")
        shutil.rmtree(site / "torch")
        script.unlink()

    assert recover(env, uninstall) == ["changed torch 2.14.1+cu130 -> 2.14.1+cpu"]
    assert script.read_text() == "#!python\n# cpu\n"
    assert (site / "torch" / "__init__.py").read_text() == "build = 'cpu'\n"
    assert (info / "METADATA").is_file() and (info / "RECORD").is_file()


def test_a_killed_runs_stash_that_cannot_be_put_back_names_its_folder_and_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The put-back of a killed run's stash failed (a full disk; here a file
    where torch's folder goes): every later run said "failed unexpectedly" and
    nothing named the stash. One error names it, the cause and the ways on."""
    from poetry_torch_cuda.errors import TorchCudaError

    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    env = system_python(tmp_path / "usr-local")
    site = env.site_packages.candidates[0]
    stash = Stash.take(env, ["torch"], installed_environment(env))
    root = _killed(stash.root)  # its run is gone now
    shutil.rmtree(site / "torch")
    (site / "torch").write_text("in the way\n")

    with pytest.raises(TorchCudaError) as failure:
        recover(env, refuse)

    assert str(failure.value) == (
        f"Putting back a killed run's stash ({root}) failed ([Errno 20] Not a "
        f"directory: '{site / 'torch' / '__init__.py'}'): torch may not import. Run "
        "the command again once the cause is gone (a full disk: free space), or "
        "delete that folder: then `poetry torch-cuda sync --force` reinstalls the "
        "build."
    )
    assert root.is_dir()


def test_an_interrupt_while_a_done_runs_stash_is_removed_leaves_the_install_standing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM or Ctrl-C while a run that succeeded (``sync --force``) removes its
    stash, after some of its links went: the next run put that stash back,
    uninstalling the new torch, then failed on the link that was gone, and every
    run after it so. A stash half removed changed nothing: the install stands."""
    env, site, stash = _cu130_installed_over_a_stash(tmp_path, monkeypatch)
    request = SimpleNamespace(files=(), plan=SimpleNamespace(force=True))

    def interrupted(path: Path, ignore_errors: bool = False) -> None:
        links = sorted(p for p in Path(path).iterdir() if p.name != "stash.json")
        links[0].unlink()
        raise KeyboardInterrupt  # the signal, between two files

    with monkeypatch.context() as patched:
        patched.setattr(shutil, "rmtree", interrupted)
        with pytest.raises(KeyboardInterrupt):
            finish(stash, env, request)  # type: ignore[arg-type]
    _killed(stash.root)  # its run is gone now

    assert recover(env, refuse) == []
    assert (site / "torch" / "__init__.py").read_text() == "build = 'cu130'\n"
    assert [p.name for p in state_dir(env.path).iterdir() if p.is_dir()] == []


def test_status_words_each_killed_runs_stash_as_the_next_run_treats_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """status said of every killed run's stash that the next run undoes that run;
    one killed while it was taken (no manifest) or removed (a file gone) is only
    removed: nothing is put back."""
    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    env = system_python(tmp_path / "usr-local")
    roots = []
    for how in ("whole", "taken", "removed"):
        stash = Stash.take(env, ["torch"], installed_environment(env))
        roots.append(_killed(stash.root, how))
    (roots[1] / "stash.json").unlink()
    (roots[2] / "torch.0").unlink()

    said = {
        root: [w for w in dead_stashes(env.path) if f" {root} " in w] for root in roots
    }
    assert said[roots[0]][0].endswith(
        "the next install, sync or switch undoes that run"
    )
    for root in roots[1:]:
        assert said[root][0].endswith("removes it, undoing nothing"), said[root]


def test_an_interrupt_while_a_done_runs_stash_is_kept_leaves_the_install_standing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after a successful install, while its stash becomes the previous
    build (the last one dropped, the rename not yet done): the next run took it
    for a killed run's stash and put the old build back, to reinstall the new
    one. The signal waits for both steps; the install stands, kept as previous."""
    env, site, stash = _cu130_installed_over_a_stash(tmp_path, monkeypatch)
    request = SimpleNamespace(files=(), plan=SimpleNamespace(force=False))

    def interrupted(env_path: Path) -> None:
        drop_previous(env_path)
        signal.raise_signal(signal.SIGINT)  # Ctrl-C, before the rename

    with monkeypatch.context() as patched:
        patched.setattr(undo, "drop_previous", interrupted)
        with pytest.raises(KeyboardInterrupt):
            finish(stash, env, request)  # type: ignore[arg-type]
    for left in state_dir(env.path).glob(f"{STASH}*"):  # the interrupted run is gone
        _killed(left)

    assert recover(env, refuse) == []
    assert (site / "torch" / "__init__.py").read_text() == "build = 'cu130'\n"
    previous = previous_build(env.path)
    assert previous is not None and previous.before["torch"] == "2.14.1+cpu"


def test_a_package_installed_from_a_file_no_entry_of_the_lock_names_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The install record (the locked file each package came from) against
    torch-cuda.lock: a file no entry names at the installed version is named, with its
    cause and fix; one another entry names is fine (a switch keeps the triton of the
    same version), and one of another version is not the installed build's (another
    installer replaced it); a version the lock does not hold is lock_problem's to word."""
    from poetry_torch_cuda.lockfile.model import LockedPackage
    from poetry_torch_cuda.lockfile.model import LockInputs
    from poetry_torch_cuda.lockfile.model import TorchCudaLock
    from poetry_torch_cuda.lockfile.model import VariantLock

    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    env = system_python(tmp_path / "usr-local")
    site = env.site_packages.candidates[0]
    _dist(site, "triton", "3.6.0", "")
    metadata = site / "torch-2.14.1+cpu.dist-info" / "METADATA"
    metadata.write_text(metadata.read_text() + "Requires-Dist: triton\n")
    a, b, c, d = (letter * 64 for letter in "abcd")

    def entry(name: str, *builds: tuple[str, str, str]) -> VariantLock:
        return VariantLock(
            name,
            "https://example.org/whl/",
            tuple(
                LockedPackage(canonicalize_name(n), v, files=((f"{n}.whl", "u", s, 1),))
                for n, v, s in builds
            ),
        )

    def problems(torch: str, triton: str, *entries: VariantLock) -> list[object]:
        lock = TorchCudaLock(LockInputs("hash", (), ("torch",), ("cpu",)), entries)
        record = {"torch": torch, "triton": triton}
        (state_dir(env.path) / INSTALLED).write_text(json.dumps(record))
        held = installed_environment(env)
        return undo.family_problems(env, held, ["torch"], lock=lock)

    cpu = entry("cpu", ("torch", "2.14.1+cpu", a), ("triton", "3.6.0", b))
    cu130 = entry("cu130", ("torch", "2.14.1+cu130", c), ("triton", "3.6.0", c))
    assert problems(a, b, cpu, cu130) == []
    assert problems(a, c, cpu, cu130) == []  # cu130's triton, kept by a switch
    assert problems(c, b, cpu, cu130) == []  # cu130's torch, replaced by another pip
    said = f"torch 2.14.1+cpu: installed from a file (sha256 {d[:12]}…) torch-"
    said += "cuda.lock no longer names"
    assert problems(d, b, cpu, cu130) == [(said, undo.RELOCKED, undo.SYNC_FORCE)]
    old = entry("cpu", ("torch", "2.13.0+cpu", a), ("triton", "3.6.0", b))
    assert problems(d, b, old) == []  # a stale lock: status and verify say so


def test_a_full_disk_for_the_install_record_is_said_not_blamed_on_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk filled up before the install record was written: the install stood
    with no word, the last build's record stayed, and status then said torch came
    "from a file torch-cuda.lock no longer names". The stale record goes, and the
    install says what could not be written, what that costs and how to mend it."""
    from poetry_torch_cuda.lockfile.model import LockedPackage
    from poetry_torch_cuda.lockfile.model import LockInputs
    from poetry_torch_cuda.lockfile.model import TorchCudaLock
    from poetry_torch_cuda.lockfile.model import VariantLock

    with mounted_tmpfs(tmp_path / "disk") as disk:
        monkeypatch.setenv("POETRY_CACHE_DIR", str(disk))
        env = system_python(tmp_path / "usr-local")
        record = state_dir(env.path) / INSTALLED
        record.write_text(json.dumps({"torch": "a" * 64}))  # the last build's
        stash = Stash.take(env, ["torch"], installed_environment(env))
        with suppress(OSError), (disk / "filler").open("wb") as stream:
            while True:
                stream.write(bytes(4096))
                stream.flush()
        request = SimpleNamespace(
            files=(SimpleNamespace(name="torch", sha256="b" * 64),),
            plan=SimpleNamespace(force=False),
        )

        said = finish(stash, env, request)  # type: ignore[arg-type]

        torch = LockedPackage(
            canonicalize_name("torch"),
            "2.14.1+cpu",
            files=(("t.whl", "u", "b" * 64, 1),),
        )
        entry = VariantLock("cpu", "https://example.org/whl/", (torch,))
        lock = TorchCudaLock(LockInputs("hash", (), ("torch",), ("cpu",)), (entry,))
        held = installed_environment(env)
        problems = undo.family_problems(env, held, ["torch"], lock=lock)
        left = sorted(p.name for p in state_dir(env.path).iterdir())
    assert problems == []
    assert said == (
        f"the install record {record} could not be written (No space left on "
        "device): status and verify cannot tell which locked file each package came "
        "from until `poetry torch-cuda sync --force` writes it again"
    )
    assert INSTALLED not in left and not any(n.startswith(STASH) for n in left)


def test_status_names_a_killed_runs_stash_whose_pid_is_in_use_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a container every start gets the same pid: a killed run's stash is named
    after the pid `status` runs as, or another live process's. With the env lock
    free no run is at work, so status names it as the next install treats it; a
    stash of a run that holds the lock is that run's own, and not named."""
    monkeypatch.setenv("POETRY_CACHE_DIR", str(tmp_path / "cache"))
    env = system_python(tmp_path / "usr-local")
    stash = Stash.take(env, ["torch"], installed_environment(env))
    ours = stash.root.rename(stash.root.with_name(f"{STASH}{os.getpid()}.killed"))

    said = dead_stashes(env.path)
    assert [w for w in said if f" {ours} " in w], said

    lock = state_dir(env.path) / ".poetry-torch-cuda.lock"
    hold = (  # as an install does
        f"import fcntl, os, time\nfd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)"
        "\nfcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        running = Stash.take(env, ["torch"], installed_environment(env))
        theirs = running.root.rename(
            running.root.with_name(f"{STASH}{holder.pid}.running")
        )
        said = dead_stashes(env.path)
    finally:
        holder.kill()
        holder.wait()
    assert not [w for w in said if f" {theirs} " in w], said
