"""torch-cuda.lock end to end: real Poetry, real pip, the local index.

Lock two variants with the right hashes, install from the lock, refuse a
tampered wheel (same name, new bytes, index page updated: a compromised
mirror) in ``install`` and ``switch``, ``lock --check`` as a CI guard.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import threading
import zipfile
from typing import TYPE_CHECKING

import pytest

from tests.support.audit import whl_requests
from tests.support.catalog import build_universe
from tests.support.fixtures import reset_around
from tests.support.fixtures import served
from tests.support.gpus import no_gpu
from tests.support.inprocess import run_inprocess
from tests.support.kept import Kept
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.poetry_project import installed_distributions
from tests.support.poetry_project import isolated_env
from tests.support.processes import captured
from tests.support.processes import finish
from tests.support.processes import running
from tests.support.processes import start_poetry
from tests.support.processes import wait_for
from tests.support.processes import wait_for_request


if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.catalog import Universe
    from tests.support.index import IndexServer

pytestmark = pytest.mark.e2e

DEPS = {"needs-torch": "*", "torchvision": "*"}
TWO = 'variant = "cu129"\nlock-variants = ["cu129", "cu130"]\n'
#: Held by the index while a test changes the project under a running install.
TORCH_CU130 = "/whl/cu130/torch/torch-2.14.1+cu130-py3-none-any.whl"


@pytest.fixture(scope="module")
def universe_kept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Universe, Path]:
    """The module's universe and an untouched copy of it."""
    root = tmp_path_factory.mktemp("lock-universe")
    universe = build_universe(root / "universe")
    copy = root / "untouched"
    shutil.copytree(universe.root, copy)
    return universe, copy


@pytest.fixture(scope="module")
def lock_index(
    universe_kept: tuple[Universe, Path],
) -> Iterator[IndexServer]:
    yield from served(universe_kept[0].root)


def untouched(universe_kept: tuple[Universe, Path]) -> Universe:
    """The universe put back as built (the index keys what it read from a file on
    its mtime and size, which the copy keeps)."""
    universe, copy = universe_kept
    shutil.rmtree(universe.root)
    shutil.copytree(copy, universe.root)
    return universe


@pytest.fixture
def own_universe(universe_kept: tuple[Universe, Path]) -> Universe:
    """These tests change wheels on the index: each starts from the untouched copy."""
    return untouched(universe_kept)


@pytest.fixture
def own_index(lock_index: IndexServer, own_universe: Universe) -> Iterator[IndexServer]:
    yield from reset_around(lock_index)


@pytest.fixture(scope="module")
def kept(
    lock_index: IndexServer,
    universe_kept: tuple[Universe, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, str], Kept]:
    """``kept(table, then)``: a project of ``DEPS`` after ``then``, built once per
    module against the untouched universe (module fixtures are set up before a
    test's own: the last test may have changed it)."""

    def build(table: str, then: str) -> Kept:
        untouched(universe_kept)
        root = tmp_path_factory.mktemp("kept")
        return Kept.keep(make_project(root, lock_index, table, then))

    return build


@pytest.fixture(scope="module")
def kept_installed(kept: Callable[[str, str], Kept]) -> Kept:
    """Both variants locked, cu129 installed."""
    return kept(TWO, "install")


@pytest.fixture(scope="module")
def kept_locked(kept: Callable[[str, str], Kept]) -> Kept:
    """Both variants locked, nothing installed."""
    return kept(TWO, "lock")


@pytest.fixture(scope="module")
def kept_cu129(kept: Callable[[str, str], Kept]) -> Kept:
    """cu129 alone configured, locked and installed."""
    return kept('variant = "cu129"\n', "install")


def make_project(
    tmp_path: Path, index: IndexServer, table: str = TWO, then: str | None = None
) -> Project:
    """A project of ``DEPS`` with ``table``; ``then``: run that command first."""
    project = Project.create(tmp_path, index, DEPS, table)
    if then is not None:
        project.run(then)
    return project


def lock_bytes(project: Project) -> bytes:
    return (project.path / "torch-cuda.lock").read_bytes()


def read_lock(project: Project) -> dict:
    return tomllib.loads((project.path / "torch-cuda.lock").read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tamper(universe: Universe, variant: str, project: str, version: str) -> Path:
    """Give a wheel on the index other bytes under the same name (the page follows)."""
    path = universe.wheel(project, version, variant)
    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = b"tampered"
    return path


def assert_tamper_refused(
    result: subprocess.CompletedProcess[str], wheel: Path
) -> None:
    """Exit 1, naming the changed wheel and that the index serves other bytes."""
    assert result.returncode == 1, describe(result)
    assert wheel.name in result.stderr, describe(result)
    assert "now serves different bytes" in result.stderr


def snapshot(project: Project) -> dict[str, object]:
    return {
        "installed": project.installed(),
        "pyproject": project.pyproject.read_bytes(),
        "poetry.lock": project.lockfile.read_bytes(),
        "torch-cuda.lock": lock_bytes(project),
    }


def test_lock_records_both_variants_with_the_index_hashes(
    tmp_path: Path, own_index: IndexServer, own_universe: Universe
) -> None:
    project = make_project(tmp_path, own_index)
    result = project.run("lock")
    assert "wrote torch-cuda.lock" in result.stdout, describe(result)
    lock = read_lock(project)
    assert lock["metadata"]["lock-variants"] == ["cu129", "cu130"]
    variants = {v["name"]: v for v in lock["variant"]}
    assert sorted(variants) == ["cu129", "cu130"]
    for name in ("cu129", "cu130"):
        packages = {p["name"]: p for p in variants[name]["package"]}
        assert packages["torch"]["version"] == f"2.14.1+{name}"
        assert packages["torchvision"]["version"] == f"0.29.1+{name}"
        for package in packages.values():
            for file in package["files"]:
                wheel = own_universe.wheel(package["name"], package["version"], name)
                assert file["file"] == wheel.name
                assert file["hash"] == f"sha256:{sha256(wheel)}"
        assert variants[name]["index-url"] == own_index.whl_url(name)
    cu129 = {p["name"] for p in variants["cu129"]["package"]}
    assert cu129 == {
        "torch",
        "torchvision",
        "nvidia-cublas-cu12",
        "nvidia-cudnn-cu12",
        "triton",
    }
    cu130 = {p["name"] for p in variants["cu130"]["package"]}
    assert cu130 == {
        "torch",
        "torchvision",
        "nvidia-cublas",
        "nvidia-cudnn-cu13",
        "triton",
    }
    # Deterministic: locking again writes the same bytes.
    before = lock_bytes(project)
    project.run("torch-cuda", "lock")
    assert lock_bytes(project) == before
    assert project.run("torch-cuda", "lock", "--check").returncode == 0


def test_install_installs_the_locked_files_and_refuses_others(
    own_index: IndexServer, own_universe: Universe, kept_locked: Kept
) -> None:
    project = kept_locked.fresh()
    locked = read_lock(project)
    # A locked wheel changed on the index before the first install: refused.
    wheel = tamper(own_universe, "cu129", "nvidia-cublas-cu12", "12.9.1.4")
    result = project.run("install", check=False)
    assert_tamper_refused(result, wheel)
    assert "the index or mirror now serves different bytes for the same file" in (
        result.stderr
    )
    assert sha256(wheel) in result.stderr
    files = {
        f["file"]: f["hash"]
        for v in locked["variant"]
        for p in v["package"]
        for f in p["files"]
    }
    assert files[wheel.name].removeprefix("sha256:") in result.stderr
    assert "torch" not in project.installed()
    assert read_lock(project) == locked


def test_tampered_wheel_is_refused_by_install_and_switch(
    own_index: IndexServer, own_universe: Universe, kept_installed: Kept
) -> None:
    project = kept_installed.fresh()
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cu129"
    assert installed["nvidia-cublas-cu12"] == "12.9.1.4"
    lock = read_lock(project)
    assert {v["name"] for v in lock["variant"]} == {"cu129", "cu130"}
    wheel = tamper(own_universe, "cu130", "torch", "2.14.1+cu130")
    before = snapshot(project)
    for args, env in (
        (("install",), {"POETRY_TORCH_CUDA_VARIANT": "cu130"}),
        (("torch-cuda", "switch", "cu130"), {}),
    ):
        result = project.run(*args, check=False, env_extra=env)
        assert_tamper_refused(result, wheel)
        assert sha256(wheel) in result.stderr
        assert "now serves different bytes for the same file" in result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert snapshot(project) == before


def test_lock_check_fails_when_poetry_lock_moves_and_poetry_lock_mends_it(
    tmp_path: Path, own_index: IndexServer
) -> None:
    project = make_project(tmp_path, own_index, 'variant = "cu129"\n', then="lock")
    assert project.run("torch-cuda", "lock", "--check").returncode == 0
    moved = project.run(
        "add",
        "torchvision@0.28.0",
        "--lock",
        env_extra={"POETRY_TORCH_CUDA_DISABLE": "1"},
    )
    assert project.locked()["torch"] == "2.13.0", describe(moved)
    own_index.clear_requests()
    result = project.run("torch-cuda", "lock", "--check", check=False)
    assert result.returncode == 1, describe(result)
    assert "torch-cuda.lock does not match" in result.stderr
    assert "torch 2.13.0" in result.stderr
    assert own_index.requests == []  # offline
    project.run("lock")
    assert project.run("torch-cuda", "lock", "--check").returncode == 0
    packages = {
        p["name"]: p["version"] for p in read_lock(project)["variant"][0]["package"]
    }
    assert packages["torch"] == "2.13.0+cu129"


def test_a_variant_not_locked_yet_is_locked_first_and_said_so(
    own_index: IndexServer, own_universe: Universe, kept_cu129: Kept
) -> None:
    project = kept_cu129.fresh()
    assert [v["name"] for v in read_lock(project)["variant"]] == ["cu129"]
    result = project.run("install", env_extra={"POETRY_TORCH_CUDA_VARIANT": "cu130"})
    assert "locking cu130 first" in result.stdout, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert [v["name"] for v in read_lock(project)["variant"]] == ["cu129", "cu130"]
    # lock-variants is still the configured variant: `lock` would drop the entry, so
    # the check fails, naming it
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 1, check
    assert "it holds cu130, a variant neither variant nor lock-variants" in (
        check.stderr
    ), check


def test_relock_refuses_a_file_whose_hash_changed(
    own_index: IndexServer, own_universe: Universe, kept_locked: Kept
) -> None:
    project = kept_locked.fresh()
    before = lock_bytes(project)
    wheel = tamper(own_universe, "cu130", "triton", "3.6.0")
    result = project.run("torch-cuda", "lock", check=False)
    assert_tamper_refused(result, wheel)
    assert "refusing to overwrite" in result.stderr
    assert lock_bytes(project) == before


def pip_version(python: Path) -> tuple[int, ...]:
    """The version of the pip in ``python``'s environment."""
    out = captured(
        [str(python), "-c", "import pip; print(pip.__version__)"], check=True
    ).stdout.strip()
    return tuple(int(part) for part in out.split(".")[:2] if part.isdigit())


def fresh_venv(path: Path) -> Path:
    """A new virtualenv (virtualenv seeds a current pip); its python."""
    captured([sys.executable, "-m", "virtualenv", "-q", str(path)], check=True)
    return path / "bin" / "python"


def test_export_both_formats_offline_and_pip_reproduces_the_locked_build(
    tmp_path: Path, own_index: IndexServer, own_universe: Universe, kept_installed: Kept
) -> None:
    project = kept_installed.fresh()
    lock = read_lock(project)
    cu130 = {
        p["name"]: p["version"]
        for v in lock["variant"]
        if v["name"] == "cu130"
        for p in v["package"]
    }
    # The index is down: requirements.txt reads the two locks only; pylock.toml
    # also needs each file's URL from the index's pages.
    own_index.fail_paths["/"] = 503
    own_index.clear_requests()
    outputs = {}
    for fmt, name in (
        ("requirements.txt", "requirements.txt"),
        ("pylock.toml", "pylock.toml"),
    ):
        if fmt == "pylock.toml":
            assert own_index.requests == []
            own_index.fail_paths.clear()
        target = tmp_path / "out" / fmt / name
        target.parent.mkdir(parents=True)
        project.run(
            "torch-cuda",
            "export",
            "--variant",
            "cu130",
            "--format",
            fmt,
            "-o",
            str(target),
        )
        outputs[fmt] = target
    text = outputs["requirements.txt"].read_text()
    assert "torch==2.14.1+cu130" in text
    assert f"--extra-index-url {own_index.whl_url('cu130')}" in text
    assert "nvidia-cublas-cu12" not in text  # PyPI's / cu129's CUDA wheels stay out
    assert "--hash=sha256:" in text
    own_index.fail_paths.clear()

    env = isolated_env(tmp_path)
    for fmt, args in (
        ("requirements.txt", ["--require-hashes", "-r"]),
        ("pylock.toml", ["-r"]),
    ):
        python = fresh_venv(tmp_path / f"venv-{fmt}")
        if fmt == "pylock.toml" and pip_version(python) < (26, 1):
            # requirements.txt was installed and checked above.
            pytest.skip(
                f"pip {'.'.join(map(str, pip_version(python)))} in this Python's "
                "venv cannot install pylock.toml (pip >= 26.1 needed)"
            )
        result = captured(
            [str(python), "-m", "pip", "install", *args, str(outputs[fmt])], env=env
        )
        assert result.returncode == 0, describe(result)
        installed = installed_distributions(python.parent.parent)
        for name, version in cu130.items():
            assert installed[name] == version, (fmt, name)
        assert installed["needs-torch"] == "1.0.0"
        assert installed["filelock"] == "3.20.0"
        assert not {"nvidia-cublas-cu12", "nvidia-cudnn-cu12", "cuda-toolkit"} & set(
            installed
        )


def test_auto_locks_every_variant_the_index_offers(
    tmp_path: Path, own_index: IndexServer
) -> None:
    project = make_project(tmp_path, own_index, 'variant = "auto"\n', then="lock")
    project.run("torch-cuda", "lock")
    lock = read_lock(project)
    assert lock["metadata"]["lock-variants"] == [
        "auto",
        "cpu",
        "cu128",
        "cu129",
        "cu130",
        "rocm6.4",
    ]
    # cu126 has no torch 2.14.1; every other variant index has the whole family.
    assert [v["name"] for v in lock["variant"]] == [
        "cpu",
        "cu128",
        "cu129",
        "cu130",
        "rocm6.4",
    ]
    rocm = next(v for v in lock["variant"] if v["name"] == "rocm6.4")
    assert {p["name"] for p in rocm["package"]} == {
        "torch",
        "torchvision",
        "pytorch-triton-rocm",
    }
    assert project.run("torch-cuda", "lock", "--check").returncode == 0


def test_locking_first_with_the_index_down_changes_nothing(
    own_index: IndexServer, own_universe: Universe, kept_cu129: Kept
) -> None:
    project = kept_cu129.fresh()
    before = snapshot(project)
    own_index.fail_paths["/whl/cu130/"] = 404
    result = project.run(
        "install", check=False, env_extra={"POETRY_TORCH_CUDA_VARIANT": "cu130"}
    )
    assert result.returncode == 1, describe(result)
    assert "locking cu130 first" in result.stdout
    assert "Nothing changed: the environment still has torch 2.14.1+cu129" in (
        result.stderr
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert snapshot(project) == before

    # The index lists a hash its bytes do not have: locked first, refused by pip,
    # and the entry locked for this install is not kept.
    own_index.fail_paths.clear()
    own_index.bad_hash_paths.add("/whl/cu130/torch/")
    result = project.run(
        "install", check=False, env_extra={"POETRY_TORCH_CUDA_VARIANT": "cu130"}
    )
    assert result.returncode == 1, describe(result)
    assert "locking cu130 first" in result.stdout
    assert "torch-2.14.1+cu130-py3-none-any.whl: expected sha256" in result.stderr
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("meanwhile", "entries"),
    [
        # A teammate adds cu128 to the variants to lock and re-locks.
        ("lock-variants", ["cu128", "cu129", "cu130"]),
        # `poetry add` rewrites poetry.lock and, after it, torch-cuda.lock.
        ("add", ["cu129"]),
    ],
)
def test_an_install_that_locked_first_keeps_what_another_run_wrote_meanwhile(
    own_index: IndexServer, kept_cu129: Kept, meanwhile: str, entries: list[str]
) -> None:
    """The entry an install locked first is written once it installed: into the
    file as it is then, not the whole file as it was before the download."""
    project = kept_cu129.fresh()
    own_index.held_paths.add(TORCH_CU130)
    cu130 = {"POETRY_TORCH_CUDA_VARIANT": "cu130"}
    with running(project, "install", env_extra=cu130) as process:
        wait_for_request(own_index, TORCH_CU130)
        if meanwhile == "add":
            other = run_inprocess(project, "add", "tinyutil", "--lock")
        else:
            text = project.pyproject_text() + 'lock-variants = ["cu128"]\n'
            project.write_pyproject(text)
            other = run_inprocess(project, "torch-cuda", "lock")
        assert other.returncode == 0, other
        written = read_lock(project)
        own_index.held_paths.clear()
        result = finish(process)
    assert result.returncode == 0, describe(result)
    assert "locking cu130 first" in result.stdout, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    lock = read_lock(project)
    assert lock["metadata"] == written["metadata"]
    assert [v["name"] for v in lock["variant"]] == entries
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    # the per-run cu130 entry is one `lock` drops: the check says so
    assert check.returncode == int("cu130" in entries), check


@pytest.mark.parametrize("set_to", ["cu130", "cpu"])
def test_a_switch_to_a_variant_someone_set_meanwhile_locks_it(
    own_index: IndexServer, kept_cu129: Kept, set_to: str
) -> None:
    """While ``switch cu130`` installs, pyproject.toml is set by hand: to cu130,
    the switch has nothing left to write there and still writes the entry it
    locked; to cpu, the switch writes last, as if it ran after the edit. The
    environment, pyproject.toml and torch-cuda.lock agree on cu130."""
    project = kept_cu129.fresh()
    switched = project.pyproject_text().replace('"cu129"', '"cu130"')
    own_index.held_paths.add(TORCH_CU130)
    with running(project, "torch-cuda", "switch", "cu130") as process:
        wait_for_request(own_index, TORCH_CU130)
        edited = project.pyproject_text().replace('"cu129"', f'"{set_to}"')
        project.write_pyproject(edited)
        own_index.held_paths.clear()
        result = finish(process)
    assert result.returncode == 0, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert project.pyproject_text() == switched
    assert [v["name"] for v in read_lock(project)["variant"]] == ["cu130"]
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 0, check


def test_a_switch_whose_pyproject_goes_away_meanwhile_says_what_to_do(
    own_index: IndexServer, kept_cu129: Kept
) -> None:
    """pyproject.toml deleted while ``switch cu130`` installs: the switch ended with
    a bare error after pip had run. It says the file was not changed and what to
    set in it; the environment holds what the message implies, and torch-cuda.lock
    is as it was."""
    project = kept_cu129.fresh()
    lock = lock_bytes(project)
    own_index.held_paths.add(TORCH_CU130)
    with running(project, "torch-cuda", "switch", "cu130") as process:
        wait_for_request(own_index, TORCH_CU130)
        project.pyproject.unlink()
        own_index.held_paths.clear()
        result = finish(process)
    assert result.returncode == 1, describe(result)
    assert result.stderr.strip().endswith(
        "pyproject.toml could not be written (No such file or directory); it was "
        'not changed. Set variant = "cu130" in it by hand.'
    ), describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert lock_bytes(project) == lock


#: What a switch says when pyproject.toml lost the table or its variant meanwhile.
LOST = (
    "pyproject.toml no longer has a [tool.poetry-torch-cuda] table with a variant "
    "(edited while the switch ran); nothing was changed. Restore it, then run the "
    "switch again."
)


def lose_the_variant(text: str, edit: str) -> str:
    """``text`` without its table (``table``), its variant (``variant``), or with
    the table made an array of tables (``array``)."""
    header = "[tool.poetry-torch-cuda]"
    if edit == "table":
        return text[: text.index(header)]
    if edit == "array":
        return text.replace(header, f"[{header}]")
    return text.replace('variant = "cu129"\n', "")


@pytest.mark.parametrize(
    ("edit", "keep"),
    [("table", True), ("variant", True), ("array", True), ("variant", False)],
)
def test_a_switch_whose_table_goes_away_meanwhile_puts_the_build_back(
    own_index: IndexServer, kept_cu129: Kept, edit: str, keep: bool
) -> None:
    """The table (or its variant) removed, or made an array of tables, while
    ``switch cu130`` installs: the switch ended after pip had run with "could not
    be written", the environment on cu130 and nothing recording it. The switch did
    not happen: the previous build is put back (also with keep-previous-build =
    false: it goes only after the switch), one message says why and what to do."""
    project = kept_cu129.fresh()
    if not keep:
        project.write_pyproject(
            project.pyproject_text() + "keep-previous-build = false\n"
        )
    lock, before = lock_bytes(project), project.installed()
    own_index.held_paths.add(TORCH_CU130)
    with running(project, "torch-cuda", "switch", "cu130") as process:
        wait_for_request(own_index, TORCH_CU130)
        edited = lose_the_variant(project.pyproject_text(), edit)
        project.write_pyproject(edited)
        own_index.held_paths.clear()
        result = finish(process)
    assert result.returncode == 1, describe(result)
    assert result.stderr.startswith(LOST + "\n"), describe(result)
    assert result.stderr.endswith(" (no download). pyproject.toml is unchanged.\n"), (
        describe(result)
    )
    assert "Put back the previous build: torch 2.14.1+cu129" in result.stderr
    assert len(result.stderr.splitlines()) == 2, describe(result)
    assert project.installed() == before
    assert project.pyproject_text() == edited
    assert lock_bytes(project) == lock
    assert list(project.path.glob(".pyproject.toml.*")) == []


def test_a_failed_switch_keeps_what_another_run_wrote_meanwhile(
    own_index: IndexServer, kept_cu129: Kept
) -> None:
    """A switch that fails puts back no torch-cuda.lock over the one a teammate's
    re-lock wrote while it downloaded."""
    project = kept_cu129.fresh()
    own_index.held_paths.add(TORCH_CU130)
    own_index.corrupt_paths.add(TORCH_CU130)
    with running(project, "torch-cuda", "switch", "cu130") as process:
        wait_for_request(own_index, TORCH_CU130)
        project.write_pyproject(
            project.pyproject_text() + 'lock-variants = ["cu128"]\n'
        )
        other = run_inprocess(project, "torch-cuda", "lock")
        assert other.returncode == 0, other
        written = lock_bytes(project)
        own_index.held_paths.clear()
        result = finish(process)
    assert result.returncode == 1, describe(result)
    assert "expected sha256" in result.stderr, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu129"
    assert lock_bytes(project) == written


def test_a_lock_written_while_an_install_writes_its_entry_is_kept(
    own_index: IndexServer, kept_cu129: Kept, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``poetry torch-cuda lock`` (a teammate added cu128 to lock-variants) writes
    torch-cuda.lock between an install's read of the file and its write of the
    entry it locked first: the install wrote the file it had read plus its entry,
    and cu128 was lost (`lock --check` failed). Every writer of the file holds
    one lock, so the ``lock`` waits, then writes."""
    from poetry_torch_cuda.lockfile import service

    project = kept_cu129.fresh()
    read = service.read_lock
    other: list[subprocess.Popen[str]] = []
    said: list[str] = []

    def read_then_race(path: Path) -> object:
        found = read(path)
        if sys._getframe(1).f_code.co_name == "write" and not other:
            text = project.pyproject_text() + 'lock-variants = ["cu128"]\n'
            project.write_pyproject(text)
            other.append(start_poetry(project, "torch-cuda", "lock"))
            assert other[0].stderr is not None
            for line in other[0].stderr:  # until it waits or ends
                if "waiting for another run" in line:
                    said.append(line)
                    break
        return found

    monkeypatch.setattr(service, "read_lock", read_then_race)
    cu130 = {"POETRY_TORCH_CUDA_VARIANT": "cu130"}
    result = run_inprocess(project, "install", env_extra=cu130)
    assert result.returncode == 0, result
    assert "locking cu130 first" in result.stdout, result
    assert finish(other[0]).returncode == 0
    assert said == [
        f"torch-cuda: waiting for another run to finish with {project.path}/torch-cuda.lock\n"
    ]
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert [v["name"] for v in read_lock(project)["variant"]] == ["cu128", "cu129"]
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 0, check


def test_an_install_that_writes_poetry_lock_writes_torch_cuda_lock(
    own_index: IndexServer, kept_cu129: Kept
) -> None:
    """``poetry install`` without poetry.lock (Poetry locks, then installs) in an
    environment that already holds the build wrote no torch-cuda.lock, and
    ``lock --check`` failed right after the install; it follows poetry.lock as
    after ``poetry lock``."""
    project = kept_cu129.fresh()
    project.lockfile.unlink()
    (project.path / "torch-cuda.lock").unlink()
    result = run_inprocess(project, "install")
    assert result.returncode == 0, result
    assert "wrote torch-cuda.lock (cu129: " in result.stdout, result
    assert project.installed()["torch"] == "2.14.1+cu129"
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 0, check


@pytest.mark.parametrize("then", [("torch-cuda", "lock"), ("lock",)])
def test_two_locks_at_once_leave_the_lock_of_the_project_as_it_is_last(
    own_index: IndexServer, kept_cu129: Kept, then: tuple[str, ...]
) -> None:
    """``poetry torch-cuda lock``, then another lock (``poetry lock``, which read
    pyproject.toml first) at once, the project edited meanwhile: each read and
    resolved outside the file's lock, so the one started before the edit could
    write last, and torch-cuda.lock missed the edit (`lock --check` failed).
    Reading, resolving and writing hold one lock; a run that waited for it locks
    the project as it is then."""
    project = kept_cu129.fresh()
    page = "/whl/cu129/torch/"
    own_index.clear_requests()
    own_index.held_paths.add(page)
    with running(project, "torch-cuda", "lock") as first:
        wait_for_request(own_index, page)
        with running(project, *then) as second:
            assert second.stderr is not None
            said: list[str] = []
            reader = threading.Thread(
                target=lambda: said.extend(iter(second.stderr.readline, ""))
            )
            reader.start()
            wait_for(
                lambda: (
                    any("waiting for another run" in line for line in said)
                    or own_index.requests.count(page) > 1
                ),
                180,
                "the second lock to wait or to ask the index",
            )
            text = project.pyproject_text() + 'lock-variants = ["cu128"]\n'
            project.write_pyproject(text)
            own_index.held_paths.clear()
            assert finish(first, 180).returncode == 0
            assert second.wait(timeout=180) == 0, said
            reader.join()
    assert [v["name"] for v in read_lock(project)["variant"]] == ["cu128", "cu129"]
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 0, check


def test_a_relocked_build_of_the_installed_version_fails_the_guards_until_synced(
    tmp_path: Path, own_index: IndexServer, own_universe: Universe, kept_cu129: Kept
) -> None:
    """torch-cuda.lock re-locked against a rebuilt torch of the installed version
    (or a teammate's lock of another build, or an edit): status --check and verify
    said the environment was fine, though its torch is not the locked file. They name
    it and the fix. `poetry install` stays a no-op, as Poetry's own install is for a
    changed hash (it compares versions): the check costs its no-op nothing."""
    project = kept_cu129.fresh()
    before = sha256(own_universe.wheel("torch", "2.14.1+cu129", "cu129"))
    tamper(own_universe, "cu129", "torch", "2.14.1+cu129")
    project.run("torch-cuda", "lock", "--accept-drift")
    env = no_gpu(tmp_path)
    own_index.clear_requests()
    result = project.run("install", env_extra=env)
    assert whl_requests(own_index) == [], describe(result)
    said = (  # the problem, its cause, its fix
        f"torch 2.14.1+cu129: installed from a file (sha256 {before[:12]}…) torch-"
        + "cuda.lock no longer names",
        "it was locked again since, for another build of that version (or edited)",
        "`poetry torch-cuda sync --force` reinstalls the build",
    )
    for command in ("status --check", "verify"):
        result = run_inprocess(project, "torch-cuda", *command.split(), env_extra=env)
        assert result.returncode == 1, result
        shown = " ".join((result.stdout + result.stderr).split())
        assert all(part in shown for part in said), result
    result = run_inprocess(project, "torch-cuda", "sync", "--force", env_extra=env)
    assert result.returncode == 0, result
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 0, result


def test_a_build_another_installer_put_in_is_not_blamed_on_the_lock(
    tmp_path: Path, lock_index: IndexServer, kept_installed: Kept
) -> None:
    """`pip install` put cu130's torchvision (a build torch-cuda.lock names) over the
    cu129 one the plugin installed: status --check and verify said it came "from a
    file torch-cuda.lock no longer names: it was locked again since", though the lock
    did not change. They say what is installed and what the variant wants instead."""
    project = kept_installed.fresh()
    project.pip(
        "install",
        "--no-deps",
        "--index-url",
        lock_index.whl_url("cu130"),
        "torchvision==0.29.1+cu130",
    )
    env = no_gpu(tmp_path)
    for command in ("status --check", "verify"):
        result = run_inprocess(project, "torch-cuda", *command.split(), env_extra=env)
        assert result.returncode == 1, result
        shown = " ".join((result.stdout + result.stderr).split())
        assert "0.29.1+cu130" in shown and "cu129" in shown, result
        assert "no longer names" not in shown, result
        assert "locked again" not in shown, result


def test_a_family_wheel_a_build_rejects_is_put_right_by_the_sync_the_guards_name(
    tmp_path: Path, lock_index: IndexServer, kept_cu129: Kept
) -> None:
    """`pip install` put cu128's nvidia-cublas-cu12 under the cu129 torch, which pins
    12.9.1.4: status --check named the mismatch, but `poetry torch-cuda sync` said
    "already installed" and changed nothing (only --force, reinstalling the whole
    build, did). sync makes the environment hold the locks: it installs the locked
    wheel alone, as status says, and status --check passes."""
    project = kept_cu129.fresh()
    project.pip(
        "install",
        "--no-deps",
        "--index-url",
        lock_index.pypi_url,
        "nvidia-cublas-cu12==12.8.4.1",
    )
    env = no_gpu(tmp_path)
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 1, result
    shown = " ".join(result.stdout.split())
    assert "but nvidia-cublas-cu12 12.8.4.1 is installed; `poetry torch-cuda sync`" in (
        shown
    ), result
    record = project.site_packages() / "torch-2.14.1+cu129.dist-info" / "RECORD"
    before = record.stat().st_mtime_ns
    result = run_inprocess(project, "torch-cuda", "sync", env_extra=env)
    assert result.returncode == 0, result
    assert "already installed" not in result.stdout + result.stderr, result
    assert project.installed()["nvidia-cublas-cu12"] == "12.9.1.4"
    assert record.stat().st_mtime_ns == before  # torch stayed: not reinstalled
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 0, result


def test_a_metadata_written_over_is_put_right_by_plain_sync(
    tmp_path: Path, lock_index: IndexServer, kept_cu129: Kept
) -> None:
    """torchvision's METADATA says `Version: banana`: status says cu129 wants
    0.29.1+cu129 and `sync`, which failed with "the index does not label its builds"
    (pip takes the .dist-info folder's 0.29.1+cu129 as installed). sync reinstalls
    it, and status --check passes."""
    project = kept_cu129.fresh()
    (dist_info,) = project.site_packages().glob("torchvision-*.dist-info")
    metadata = dist_info / "METADATA"
    metadata.write_text(metadata.read_text().replace("0.29.1+cu129", "banana"))
    env = no_gpu(tmp_path)
    result = run_inprocess(project, "torch-cuda", "sync", env_extra=env)
    assert result.returncode == 0, result
    assert "label" not in result.stdout + result.stderr, result
    assert project.installed()["torchvision"] == "0.29.1+cu129"
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 0, result


def test_a_killed_pips_leftovers_are_named_by_status_and_swept_by_sync(
    tmp_path: Path, kept_cu129: Kept
) -> None:
    """A killed pip left `~orch` (torch's files, renamed aside) beside the intact
    torch: every guard passed and nothing removed it but a killed run's recovery,
    though such folders hold GBs. status --check names them, their size and `sync`;
    sync removes them (and says so), and status --check passes."""
    project = kept_cu129.fresh()
    site = project.site_packages()
    shutil.copytree(site / "torch", site / "~orch")
    env = no_gpu(tmp_path)
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 1, result
    shown = " ".join(result.stdout.split())
    assert f"a killed pip left ~orch in {site} (" in shown, result
    assert "MB); `poetry torch-cuda sync` removes it" in shown, result
    result = run_inprocess(project, "torch-cuda", "sync", env_extra=env)
    assert result.returncode == 0, result
    assert "removed ~orch" in result.stdout, result
    assert not (site / "~orch").exists()
    assert (site / "torch").is_dir()
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 0, result
