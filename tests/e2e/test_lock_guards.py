"""torch-cuda.lock's guards fail first: one reader of the whole file, the drift
sentinel over a broken file, the configured variant always locked, `switch`
and bots leave a lock that `lock --check` can judge, the file's mode.

Real Poetry, real pip, the local index (issue 20 #2, #11, #12, #13; issue 24
#3 and the lock-file mode).
"""

from __future__ import annotations

import os
import re
import stat
from typing import TYPE_CHECKING

import pytest

from tests.e2e.test_torch_cuda_lock import DEPS
from tests.e2e.test_torch_cuda_lock import TWO
from tests.e2e.test_torch_cuda_lock import lock_bytes
from tests.e2e.test_torch_cuda_lock import read_lock
from tests.e2e.test_torch_cuda_lock import tamper
from tests.support.catalog import build_universe
from tests.support.fixtures import served
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.untouched import untouched


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.catalog import Universe
    from tests.support.index import IndexServer

pytestmark = pytest.mark.e2e

BOT = {"POETRY_TORCH_CUDA_DISABLE": "1"}


@pytest.fixture
def own_universe(tmp_path: Path) -> Universe:
    return build_universe(tmp_path / "universe")


@pytest.fixture
def own_index(own_universe: Universe) -> Iterator[IndexServer]:
    yield from served(own_universe.root)


def conflicted(text: str, inside: str) -> str:
    """``text`` with a git merge conflict around the first line after ``inside``."""
    start = text.index(inside)
    line_start = text.index("\n", start) + 1
    line_end = text.index("\n", line_start) + 1
    line = text[line_start:line_end]
    other = line.replace("sha256:", "sha256:0")
    return (
        text[:line_start]
        + "<<<<<<< HEAD\n"
        + line
        + "=======\n"
        + other
        + ">>>>>>> other-branch\n"
        + text[line_end:]
    )


def test_lock_check_fails_on_a_conflict_inside_a_variant_entry(
    tmp_path: Path, index: IndexServer
) -> None:
    project = Project.create(tmp_path, index, DEPS, TWO)
    project.run("lock")
    path = project.path / "torch-cuda.lock"
    text = path.read_text()
    path.write_text(conflicted(text, 'name = "cu130"'))
    index.clear_requests()
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    assert "not valid TOML" in result.stderr
    assert "matches" not in result.stdout
    assert index.requests == []


def test_relock_over_a_conflicted_lock_still_refuses_drift(
    tmp_path: Path, own_index: IndexServer, own_universe: Universe
) -> None:
    project = Project.create(tmp_path, own_index, DEPS, TWO)
    project.run("lock")
    path = project.path / "torch-cuda.lock"
    path.write_text(conflicted(path.read_text(), 'name = "cu129"'))
    broken = lock_bytes(project)
    wheel = tamper(own_universe, "cu130", "triton", "3.6.0")
    result = project.run("torch-cuda", "lock", check=False)
    assert result.returncode == 1, describe(result)
    assert wheel.name in result.stderr
    assert "now serves different bytes" in result.stderr
    assert lock_bytes(project) == broken

    # Nothing recoverable at all: refused, and the deliberate way is named.
    path.write_text("<<<<<<< HEAD\nthis is not a lock\n")
    result = project.run("torch-cuda", "lock", check=False)
    assert result.returncode == 1, describe(result)
    assert "--accept-drift" in result.stderr
    assert path.read_text() == "<<<<<<< HEAD\nthis is not a lock\n"
    project.run("torch-cuda", "lock", "--accept-drift")
    assert run_inprocess(project, "torch-cuda", "lock", "--check").returncode == 0


def test_the_configured_variant_is_locked_even_outside_lock_variants(
    tmp_path: Path, index: IndexServer
) -> None:
    table = 'variant = "cu130"\nlock-variants = ["cu129"]\n'
    project = Project.create(tmp_path, index, DEPS, table)
    project.run("lock")
    assert [v["name"] for v in read_lock(project)["variant"]] == ["cu129", "cu130"]
    assert run_inprocess(project, "torch-cuda", "lock", "--check").returncode == 0
    before = lock_bytes(project)
    result = project.run("install")
    assert "locking" not in result.stdout, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert lock_bytes(project) == before
    project.run("lock")
    assert lock_bytes(project) == before


def test_lock_check_fails_when_the_configured_variant_is_not_locked(
    tmp_path: Path, index: IndexServer
) -> None:
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    project.run("lock")
    text = project.pyproject_text().replace(
        'variant = "cu129"', 'variant = "cu130"\nlock-variants = ["cu129"]'
    )
    project.write_pyproject(text)
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    assert "cu130 is not locked" in result.stderr


def test_switch_leaves_a_lock_that_passes_the_check(
    tmp_path: Path, index: IndexServer
) -> None:
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    project.run("install")
    assert run_inprocess(project, "torch-cuda", "lock", "--check").returncode == 0
    project.run("torch-cuda", "switch", "cpu")
    assert project.installed()["torch"] == "2.14.1+cpu"
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 0, result
    lock = read_lock(project)
    assert lock["metadata"]["lock-variants"] == ["cpu"]
    assert [v["name"] for v in lock["variant"]] == ["cpu"]
    # What `poetry torch-cuda lock` would write, byte for byte.
    before = lock_bytes(project)
    project.run("torch-cuda", "lock")
    assert lock_bytes(project) == before


def test_after_a_bot_ran_poetry_lock_the_check_names_the_one_fix(
    tmp_path: Path, index: IndexServer
) -> None:
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    project.run("lock")
    project.run("add", "tinyutil", "--lock", env_extra=BOT)
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    assert "Run `poetry torch-cuda lock`" in result.stderr
    assert "`poetry lock`" not in result.stderr
    project.run("torch-cuda", "lock")
    assert run_inprocess(project, "torch-cuda", "lock", "--check").returncode == 0


def test_torch_cuda_lock_gets_the_mode_poetry_lock_gets(
    tmp_path: Path, index: IndexServer
) -> None:
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    old = os.umask(0o022)
    try:
        project.run("lock")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((project.path / "torch-cuda.lock").stat().st_mode)
    assert mode == stat.S_IMODE(project.lockfile.stat().st_mode) == 0o644


def without_package(text: str, variant: str, name: str) -> str:
    """``text`` with ``name``'s block removed from ``variant``'s entry (a bad merge)."""
    entry = text.index(f'[[variant]]\nname = "{variant}"')
    start = text.index(f'[[variant.package]]\nname = "{name}"', entry)
    end = text.find("[[variant", start + 1)
    return text[:start] + (text[end:] if end != -1 else "")


def test_export_refuses_an_entry_that_lacks_a_dependency_as_the_check_does(
    tmp_path: Path, index: IndexServer
) -> None:
    """An entry that lost a package (a bad merge) fails ``lock --check``; export
    then writes no list with a hole in it, but names the same cause and fix."""
    project = Project.create(tmp_path, index, DEPS, TWO)
    assert run_inprocess(project, "lock").returncode == 0
    path = project.path / "torch-cuda.lock"
    path.write_text(without_package(path.read_text(), "cu129", "nvidia-cudnn-cu12"))
    lacking = "torch-cuda.lock's cu129 entry lacks nvidia-cudnn-cu12 9.10.2.21"
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 1, check
    assert lacking in check.stderr, check
    exported = run_inprocess(project, "torch-cuda", "export", "--variant", "cu129")
    assert exported.returncode == 1, exported
    assert "nvidia-cublas-cu12==" not in exported.stdout, exported
    assert exported.stderr == check.stderr  # one cause, one wording
    # An install locks the entry again first, as Poetry locks a stale poetry.lock.
    installed = project.run("install")
    assert f"locking cu129 first ({lacking})" in installed.stdout, describe(installed)
    assert project.installed()["torch"] == "2.14.1+cu129"
    assert run_inprocess(project, "torch-cuda", "lock", "--check").returncode == 0


def test_lock_check_refuses_an_entry_named_no_variant(
    tmp_path: Path, index: IndexServer
) -> None:
    """A hand edit named an entry ``cu13x``: the check says the file is unreadable
    and how to get a good one, instead of failing on the name."""
    project = Project.create(tmp_path, index, DEPS, TWO)
    assert run_inprocess(project, "lock").returncode == 0
    path = project.path / "torch-cuda.lock"
    path.write_text(path.read_text().replace('name = "cu130"', 'name = "cu13x"'))
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    assert "run `poetry torch-cuda lock` to write it again" in result.stderr, result
    assert "ValueError" not in result.stdout + result.stderr, result


def test_lock_over_an_unreadable_lock_says_so(
    tmp_path: Path, index: IndexServer
) -> None:
    """torch-cuda.lock cannot be read at all (here a directory): ``lock`` names the
    file and the way on (not --accept-drift, which cannot write over a folder)."""
    project = Project.create(tmp_path, index, DEPS, TWO)
    assert run_inprocess(project, "lock").returncode == 0
    path = project.path / "torch-cuda.lock"
    path.unlink()
    path.mkdir()
    result = run_inprocess(project, "torch-cuda", "lock")
    assert result.returncode == 1, result
    assert f"torch-cuda.lock cannot be read (Is a directory): {path}." in (
        " ".join(result.stderr.split())
    ), result


@pytest.mark.parametrize("args", [("lock",), ("remove", "--lock", "torchvision")])
def test_a_relock_over_an_unreadable_lock_fails_before_poetry_lock_changes(
    tmp_path: Path, index: IndexServer, args: tuple[str, ...]
) -> None:
    """A folder where torch-cuda.lock should be: ``poetry lock`` (or ``remove
    --lock``) wrote poetry.lock (and pyproject.toml), then failed on the file. It
    is refused before Poetry writes anything, in the one message with the fix."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    assert run_inprocess(project, "lock").returncode == 0
    path = project.path / "torch-cuda.lock"
    path.unlink()
    path.mkdir()
    project.write_pyproject(
        project.pyproject_text().replace('"torchvision"', '"torchvision>=0.1"')
    )
    with untouched(project):
        result = run_inprocess(project, *args)
    assert result.returncode == 1, result
    assert " ".join(result.stderr.split()) == (
        f"torch-cuda.lock cannot be read (Is a directory): {path}. Make it a file "
        "you can read (its permissions, or remove what is in its place and run "
        "`poetry torch-cuda lock`), then run the command again."
    ), result


def test_lock_check_refuses_a_file_of_another_build_or_none(
    tmp_path: Path, index: IndexServer
) -> None:
    """A hand edit gave cu130's torch the cu129 wheel (name, URL and its true
    sha256), or took its file away: every install would put in another build, or
    none, so the check fails naming it, and an install locks the entry again."""
    project = Project.create(tmp_path, index, DEPS, TWO)
    assert run_inprocess(project, "lock").returncode == 0
    path = project.path / "torch-cuda.lock"
    good = path.read_text()
    cu129 = good[good.index('{file = "torch-2.14.1+cu129') :].split("\n")[0]
    cu130 = good[good.index('{file = "torch-2.14.1+cu130') :].split("\n")[0]
    path.write_text(good.replace(cu130, cu129.replace('url = "', 'url = "../cu129/')))
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    assert (
        "cu130: torch 2.14.1+cu130 lists torch-2.14.1+cu129-py3-none-any.whl, "
        "a file of another build" in result.stderr
    ), result

    path.write_text(good.replace(cu130 + "\n", ""))
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    assert "cu130: torch 2.14.1+cu130 has no file" in result.stderr, result

    installed = project.run("install", env_extra={"POETRY_TORCH_CUDA_VARIANT": "cu130"})
    assert "locking cu130 first (cu130: torch 2.14.1+cu130 has no file" in (
        installed.stdout
    ), describe(installed)
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert run_inprocess(project, "torch-cuda", "lock", "--check").returncode == 0


def test_lock_check_refuses_a_file_over_plain_http_to_another_host(
    tmp_path: Path, index: IndexServer
) -> None:
    """A hand edit moved a file to plain http on another host: the index-url rule
    (https, or http only to this machine or with allow-insecure-http) holds for
    the files the lock names too, in the check and in the install."""
    project = Project.create(tmp_path, index, DEPS, TWO)
    assert run_inprocess(project, "lock").returncode == 0
    path = project.path / "torch-cuda.lock"
    moved = 'url = "http://example.org/torch/'
    path.write_text(path.read_text().replace('url = "torch/', moved, 1))
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    assert (
        "cu129: torch 2.14.1+cu129 is locked at http://example.org/torch/"
        "torch-2.14.1%2Bcu129-py3-none-any.whl: plain http to a host other than "
        "this machine" in result.stderr
    ), result

    installed = project.run("install")
    assert "locking cu129 first (cu129: torch 2.14.1+cu129 is locked at http://" in (
        installed.stdout
    ), describe(installed)
    assert "example.org" not in (project.path / "torch-cuda.lock").read_text()
    assert project.installed()["torch"] == "2.14.1+cu129"


def test_lock_check_refuses_a_package_nothing_in_its_entry_needs(
    tmp_path: Path, index: IndexServer
) -> None:
    """A merge lost the edge from torch to its cuDNN wheel but kept the wheel: no
    install would put it in, so the check names the package left hanging."""
    project = Project.create(tmp_path, index, DEPS, TWO)
    assert run_inprocess(project, "lock").returncode == 0
    path = project.path / "torch-cuda.lock"
    text = path.read_text()
    edge = text[text.index('    {name = "nvidia-cudnn-cu12"') :].split("\n")[0] + "\n"
    path.write_text(text.replace(edge, "", 1))
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    assert (
        "cu129 holds nvidia-cudnn-cu12 9.10.2.21, which nothing in it needs"
        in result.stderr
    ), result


def test_lock_check_passes_a_lock_from_an_index_url_with_credentials(
    tmp_path: Path, index: IndexServer
) -> None:
    """``index-url`` carries ``user:password@`` and no per-run mirror is set: the
    files on the configured index are not a mirror's, so the check passes."""
    secret = index.url.replace("http://", "http://robot:s3cret@", 1)
    table = f'index-url = "{secret}/whl/{{variant}}"\nvariant = "cu129"\n'
    project = Project.create(tmp_path, index, DEPS, table)
    assert run_inprocess(project, "lock").returncode == 0
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 0, result
    assert "matches poetry.lock" in result.stdout, result
    assert "s3cret" not in result.stdout + result.stderr, result


def test_lock_check_fails_when_the_index_moved(
    tmp_path: Path, index: IndexServer
) -> None:
    """``index-url`` names another index now: each entry records the index it was
    locked from, and the check names both. A trailing slash names the same one."""
    project = Project.create(tmp_path, index, DEPS, TWO)
    assert run_inprocess(project, "lock").returncode == 0
    before = f"{index.url}/whl/{{variant}}"
    project.write_pyproject(project.pyproject_text().replace(before, before + "/"))
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 0, result
    moved = f"{index.url}/mirror/{{variant}}"
    project.write_pyproject(project.pyproject_text().replace(before + "/", moved))
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    for name in ("cu129", "cu130"):
        assert (
            f"{name}'s index is now {index.url}/mirror/{name}, it was locked from "
            f"{index.url}/whl/{name}" in result.stderr
        ), result


def test_an_index_url_with_a_password_in_the_lock_is_never_shown(
    tmp_path: Path, index: IndexServer
) -> None:
    """A hand edit put a password into cu129's index-url in torch-cuda.lock (the
    plugin never writes one): lock --check masked it, but status --check and verify
    printed it in their words for the moved index. All three name the index masked."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    project.run("install")
    path = project.path / "torch-cuda.lock"
    host = index.url.removeprefix("http://")
    path.write_text(path.read_text().replace(host, f"robot:s3cret-LEAK@{host}"))
    for command in ("status --check", "verify", "lock --check"):
        result = run_inprocess(project, "torch-cuda", *command.split())
        assert result.returncode == 1, result
        shown = result.stdout + result.stderr
        assert f"it was locked from http://***@{host}/whl/cu129" in shown, result
        assert "s3cret" not in shown, result


def test_lock_check_refuses_a_torch_poetry_lock_no_longer_locks(
    tmp_path: Path, index: IndexServer
) -> None:
    """A merge kept both sides' torch (2.13.0 and 2.14.1) in cu129's entry while
    poetry.lock locks 2.14.1 only: the entry holds a build no install takes."""
    table = 'variant = "cu129"\n'
    project = Project.create(tmp_path, index, {"torch": "2.13.0"}, table)
    assert run_inprocess(project, "lock").returncode == 0
    path = project.path / "torch-cuda.lock"
    old = path.read_text()
    project.write_pyproject(project.pyproject_text().replace("2.13.0", "2.14.1"))
    assert run_inprocess(project, "lock").returncode == 0
    start = old.index('[[variant.package]]\nname = "torch"\nversion = "2.13.0+cu129"')
    block = old[start : old.index("\n\n", start)]
    path.write_text(path.read_text() + "\n" + block + "\n")
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    assert (
        "cu129 holds torch 2.13.0+cu129, which nothing in it needs" in result.stderr
    ), result


def test_lock_check_names_a_lock_it_cannot_read_once_with_its_own_fix(
    tmp_path: Path, index: IndexServer
) -> None:
    """A teammate's newer plugin wrote lock-version 2.0: the check says so with the
    reader's fix, not that the file "does not match this project" followed by a
    second fix (re-lock and commit: a downgrade of the teammate's file)."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    assert run_inprocess(project, "lock").returncode == 0
    path = project.path / "torch-cuda.lock"
    path.write_text(path.read_text().replace('"1.0"', '"2.0"', 1))
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    assert " ".join(result.stderr.split()) == (
        "torch-cuda.lock has lock-version 2.0; this poetry-torch-cuda reads 1.0. "
        "Upgrade the plugin, or run `poetry torch-cuda lock` to write it again."
    ), result


@pytest.mark.parametrize("version", ["0.9", "", "one"])
def test_a_lock_version_no_plugin_wrote_is_not_a_reason_to_upgrade(
    tmp_path: Path, index: IndexServer, version: str
) -> None:
    """lock-version 0.9 (there never was one), empty or not a number: the guards said
    "Upgrade the plugin", which reads no such file either. They refuse the file as
    unreadable, with the way to write it again."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    project.run("install")
    path = project.path / "torch-cuda.lock"
    path.write_text(path.read_text().replace('"1.0"', f'"{version}"', 1))
    for command in ("lock --check", "status --check", "verify"):
        result = run_inprocess(project, "torch-cuda", *command.split())
        assert result.returncode == 1, result
        shown = " ".join((result.stdout + result.stderr).split())
        assert "Upgrade the plugin" not in shown, result
        assert (
            "torch-cuda.lock is not a torch-cuda.lock this plugin can read ([metadata] "
            "lock-version is not as this plugin writes it); run `poetry torch-cuda "
            "lock` to write it again." in shown
        ), result


@pytest.mark.parametrize(
    "args",
    [("lock", "--check"), ("export",), ("sync",), ("switch", "cu126"), ("variants",)],
)
def test_a_command_without_poetry_lock_names_poetry_lock_alone(
    tmp_path: Path, index: IndexServer, args: tuple[str, ...]
) -> None:
    """No poetry.lock yet: every command says so in one wording whose fix is
    `poetry lock`, which writes both; not also "run `poetry torch-cuda lock` and
    commit", which fails for the same cause. `sync` and `switch` said it after
    "Creating virtualenv …": they refuse before Poetry makes one."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    result = run_inprocess(project, "torch-cuda", *args)
    assert result.returncode == 1, result
    said = " ".join(result.stderr.split())
    assert said == "poetry.lock does not exist; run `poetry lock` first.", said
    assert not project.venv.exists()


def test_no_wheel_for_this_platform_names_what_the_user_can_change(
    tmp_path: Path, own_index: IndexServer, own_universe: Universe
) -> None:
    """The index has torch 2.99.0 only for Windows: the install said to add this
    platform to "the project's supported ones" and re-lock, a setting that does
    not exist, and re-locking finds no more wheels; it says what the index lacks."""
    for index, version in (("pypi", "2.99.0"), ("cu129", "2.99.0+cu129")):
        own_universe.add_wheel(index, "torch", version, tag="py3-none-win_amd64")
    project = Project.create(
        tmp_path, own_index, {"torch": "2.99.0"}, 'variant = "cu129"'
    )
    assert run_inprocess(project, "lock").returncode == 0
    result = run_inprocess(project, "install")
    assert result.returncode == 1, result
    said = re.sub(r"\(Python [^)]*\)", "(…)", " ".join(result.stderr.split()))
    assert said == (
        "torch-cuda.lock has no wheel of torch 2.99.0+cu129 for this environment (…): "
        "the index offered none when it was locked, only py3-win_amd64. Use a Python "
        "those wheels are for (`poetry env use`), or a variant or a version of torch "
        "with a wheel for this platform. No torch build was installed."
    ), result


def test_lock_check_fails_when_an_entry_auto_locked_is_missing(
    tmp_path: Path, own_index: IndexServer
) -> None:
    """``variant = "auto"`` locks every variant whose index has the builds; a
    merge lost cu128's entry: the file records what auto locked, so the check
    names the entry, offline."""
    project = Project.create(tmp_path, own_index, DEPS, 'variant = "auto"\n')
    assert run_inprocess(project, "lock").returncode == 0
    path = project.path / "torch-cuda.lock"
    text = path.read_text()
    start = text.index('[[variant]]\nname = "cu128"')
    path.write_text(text[:start] + text[text.index("[[variant]]", start + 1) :])
    own_index.clear_requests()
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    assert "cu128 is not locked" in result.stderr, result
    assert own_index.requests == []


def test_a_relock_while_an_index_auto_locked_fails_keeps_its_entry(
    tmp_path: Path, index: IndexServer
) -> None:
    """``variant = "auto"``: a re-lock while cu128's index answers 503 dropped
    cu128's entry and its name from lock-variants, saying nothing, and the check
    passed; a machine auto gives cu128 then had no reviewed entry. The entry
    locked before stays."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "auto"\n')
    assert run_inprocess(project, "lock").returncode == 0
    before = lock_bytes(project)
    assert 'name = "cu128"' in before.decode()
    index.fail_retry_after = "0"
    index.fail_paths["/whl/cu128/"] = 503
    result = run_inprocess(project, "torch-cuda", "lock")
    assert result.returncode == 0, result
    assert lock_bytes(project) == before
    assert run_inprocess(project, "torch-cuda", "lock", "--check").returncode == 0


def test_auto_with_every_index_down_names_the_index_failure(
    tmp_path: Path, index: IndexServer
) -> None:
    """``variant = "auto"`` while every candidate's index answers 503: the lock
    said "No configured package is locked in poetry.lock.", a wrong cause; it
    names the index's failure and its way on."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "auto"\n')
    assert run_inprocess(project, "lock", env_extra=BOT).returncode == 0
    index.fail_retry_after = "0"
    index.fail_paths["/whl/"] = 503
    result = run_inprocess(project, "torch-cuda", "lock")
    assert result.returncode == 1, result
    assert "No configured package is locked" not in result.stderr, result
    assert (
        "the index failed with HTTP 503 (a server error). Run the command again later, or tell whoever runs the index."
    ) in result.stderr, result
    assert not (project.path / "torch-cuda.lock").exists()


def test_lock_check_fails_when_a_specifier_only_package_left_the_entry(
    tmp_path: Path, index: IndexServer
) -> None:
    """A merge dropped torchaudio (configured as ``torchaudio>=2.8``, which
    poetry.lock does not lock) from cu129's entry: the check passed, and the
    install then refused with "has no torchaudio>=2.8". The check names the hole,
    so an install locks it first."""
    project = Project.create(
        tmp_path,
        index,
        {"needs-torch": "*"},
        'variant = "cu129"\npackages = ["torch", "torchaudio>=2.8"]\n',
    )
    assert run_inprocess(project, "lock").returncode == 0
    path = project.path / "torch-cuda.lock"
    text = path.read_text()
    start = text.index('[[variant.package]]\nname = "torchaudio"')
    path.write_text(text[:start] + text[text.index("[[variant.package]]", start + 1) :])
    assert "torchaudio" not in path.read_text().replace("torchaudio>=2.8", "")

    result = run_inprocess(project, "torch-cuda", "lock", "--check")

    assert result.returncode == 1, result
    assert "cu129 entry lacks torchaudio." in result.stderr, result


def test_a_relock_while_an_index_auto_locked_fails_keeps_no_stale_entry(
    tmp_path: Path, index: IndexServer
) -> None:
    """``variant = "auto"``: poetry.lock moved torch to 2.13.0 while cu129's index
    answered 503. The re-lock kept cu129's entry for torch 2.14.1 and exited 0
    without a word; `lock --check` then failed, and re-locking "fixed" nothing
    while the index failed. An entry kept from before must still fit."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "auto"\n')
    assert run_inprocess(project, "lock").returncode == 0
    moved = run_inprocess(
        project, "add", "--lock", "torchvision==0.28.0", env_extra=BOT
    )
    assert moved.returncode == 0, moved
    before = lock_bytes(project)
    index.fail_retry_after = "0"
    index.fail_paths["/whl/cu129/"] = 503
    result = run_inprocess(project, "torch-cuda", "lock")
    assert result.returncode == 1, result
    assert "the index failed with HTTP 503 (a server error)" in result.stderr, result
    assert lock_bytes(project) == before
    result = run_inprocess(project, "lock")  # Poetry's: a warning, the file as it was
    assert result.returncode == 0, result
    assert "could not update torch-cuda.lock" in result.stderr, result
    assert lock_bytes(project) == before


def test_an_install_over_an_unreadable_lock_fails_before_poetry_installs(
    tmp_path: Path, index: IndexServer
) -> None:
    """A folder where torch-cuda.lock should be (the same for a file without read
    permission, which root reads all the same): Poetry installed needs-torch's
    dependencies, then the plugin failed on the file, with a fix (restore it, or
    --accept-drift) that cannot work on a folder. It fails before Poetry installs
    anything, naming the file and what to do with it."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    assert run_inprocess(project, "lock").returncode == 0
    before = project.installed()
    path = project.path / "torch-cuda.lock"
    path.unlink()
    path.mkdir()
    result = run_inprocess(project, "install")
    assert result.returncode == 1, result
    assert project.installed() == before, result
    assert " ".join(result.stderr.split()) == (
        f"torch-cuda.lock cannot be read (Is a directory): {path}. Make it a file "
        "you can read (its permissions, or remove what is in its place and run "
        "`poetry torch-cuda lock`), then run the command again."
    ), result


def test_a_first_auto_lock_while_a_candidates_index_fails_names_it(
    tmp_path: Path, index: IndexServer
) -> None:
    """``variant = "auto"``, no torch-cuda.lock yet, cu128's index answers 503: the
    lock left cu128 out without a word and `lock --check` passed, though `auto`
    takes cu128 where it runs best (it assumes an index it cannot ask has the
    build). It fails naming the index's failure, and writes nothing."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "auto"\n')
    assert run_inprocess(project, "lock", env_extra=BOT).returncode == 0
    index.fail_retry_after = "0"
    index.fail_paths["/whl/cu128/"] = 503
    result = run_inprocess(project, "torch-cuda", "lock")
    assert result.returncode == 1, result
    assert "the index failed with HTTP 503 (a server error)" in result.stderr, result
    assert "/whl/cu128/" in result.stderr, result
    assert not (project.path / "torch-cuda.lock").exists()


def test_an_auto_install_locking_first_while_a_candidates_index_fails_leaves_it_named(
    tmp_path: Path, index: IndexServer
) -> None:
    """The same during an install that locks first: the install goes on (cu128
    is not what it installs), and the file it writes records cu128 among the
    variants to lock, so `lock --check` names the entry left to lock."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "auto"\n')
    assert run_inprocess(project, "lock", env_extra=BOT).returncode == 0
    index.fail_retry_after = "0"
    index.fail_paths["/whl/cu128/"] = 503
    result = run_inprocess(project, "install")
    assert result.returncode == 0, result
    assert "cu128" not in project.installed()["torch"], result
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 1, check
    assert "cu128 is not locked" in check.stderr, check


@pytest.mark.parametrize("variant", ["cu129", "auto"])
def test_removing_torch_leaves_a_lock_the_check_passes(
    tmp_path: Path, index: IndexServer, variant: str
) -> None:
    """``poetry remove`` of what brought torch, the table kept: with ``auto``,
    torch-cuda.lock was left stale without a word and ``poetry torch-cuda lock``
    failed ("No configured package is locked in poetry.lock."), so the check
    stayed red; a fixed variant wrote an entry of 0 packages. Both do that, but
    auto, which wrote one such entry for each of its 18 candidates: it writes none,
    and says why in one line."""
    project = Project.create(tmp_path, index, DEPS, f'variant = "{variant}"\n')
    assert run_inprocess(project, "lock").returncode == 0
    removed = run_inprocess(project, "remove", "--lock", "needs-torch", "torchvision")
    assert removed.returncode == 0, removed
    said = "torch-cuda: wrote torch-cuda.lock (cu129: 0 packages, 0 files)\n"
    if variant == "auto":
        said = (
            "torch-cuda: wrote torch-cuda.lock (no variant: poetry.lock locks no "
            "configured package)\n"
        )
        assert "[[variant]]" not in lock_bytes(project).decode()
    assert removed.stdout.endswith(said), removed
    assert 'name = "torch"' not in lock_bytes(project).decode()
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 0, check
    relock = run_inprocess(project, "torch-cuda", "lock")
    assert relock.returncode == 0, relock


def test_an_install_locking_first_goes_on_past_another_variant_to_lock(
    tmp_path: Path, index: IndexServer
) -> None:
    """lock-variants names cu126, whose index lacks the locked torch 2.14.1: an
    install of cu129 that locked first failed on cu126's missing build, with the
    advice to switch to a variant that has it, which cu129 is. The install locks
    and installs its own variant; `lock --check` names the one left, and the
    lock's failure names lock-variants, where the fix is."""
    torch_cuda = 'variant = "cu129"\nlock-variants = ["cu126"]\n'
    project = Project.create(tmp_path, index, DEPS, torch_cuda)
    assert run_inprocess(project, "lock", env_extra=BOT).returncode == 0
    result = run_inprocess(project, "install")
    assert result.returncode == 0, result
    assert project.installed()["torch"] == "2.14.1+cu129"
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 1, check
    assert "cu126 is not locked" in check.stderr, check
    relock = run_inprocess(project, "torch-cuda", "lock")
    assert relock.returncode == 1, relock
    assert "cannot lock torch==2.14.1+cu126" in relock.stderr, relock
    assert "or in lock-variants)" in relock.stderr, relock


def test_lock_check_passes_packages_listed_in_another_order(
    tmp_path: Path, index: IndexServer
) -> None:
    """``packages`` reordered (a formatter, a merge): the lock holds the same
    builds and an install installs them, but `lock --check` failed ("packages is
    now ['torchvision', 'torch'], torch-cuda.lock was made for [...]")."""
    listed = 'variant = "cu129"\npackages = ["torch", "torchvision"]\n'
    project = Project.create(tmp_path, index, DEPS, listed)
    assert run_inprocess(project, "lock").returncode == 0
    text = project.pyproject_text()
    project.write_pyproject(
        text.replace('"torch", "torchvision"', '"torchvision", "torch"')
    )
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 0, check


@pytest.mark.parametrize("check", [["--check"], []], ids=["check", "relock"])
def test_lock_and_its_check_refuse_a_poetry_lock_pyproject_toml_left_behind(
    tmp_path: Path, index: IndexServer, check: list[str]
) -> None:
    """pyproject.toml changed and poetry.lock was not re-locked: `poetry install`
    and `export` refuse it in Poetry's words, but `lock --check` (the CI guard and
    the pre-commit hook on pyproject.toml) said "torch-cuda.lock matches
    poetry.lock" and passed, and `lock` (the re-locking hook) said "torch-cuda.lock
    is up to date" and passed where the check failed."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    assert run_inprocess(project, "lock").returncode == 0
    before = (project.path / "torch-cuda.lock").read_bytes()
    text = project.pyproject_text()
    project.write_pyproject(text.replace('"torchvision"', '"torchvision==0.28.0"'))
    check = run_inprocess(project, "torch-cuda", "lock", *check)
    assert (project.path / "torch-cuda.lock").read_bytes() == before
    assert check.returncode == 1, check
    assert " ".join(check.stderr.split()) == (
        "pyproject.toml changed significantly since poetry.lock was last generated. "
        "Run `poetry lock` to fix the lock file."
    ), check


def test_a_per_run_variant_not_locked_is_the_installs_to_lock_not_lock_s(
    tmp_path: Path, index: IndexServer
) -> None:
    """POETRY_TORCH_CUDA_VARIANT names cu130, which torch-cuda.lock lacks: status
    --check and verify said "cu130 is not locked. Run `poetry torch-cuda lock`",
    which keeps the file as it is (a per-run variable never changes the lock), so the
    fix never held. They say what the environment lacks and `sync`, which locks cu130
    first; lock --check passes throughout, as it does for the file."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    project.run("install")
    env = {"POETRY_TORCH_CUDA_VARIANT": "cu130"}
    for command in ("status --check", "verify"):
        result = run_inprocess(project, "torch-cuda", *command.split(), env_extra=env)
        assert result.returncode == 1, result
        shown = " ".join((result.stdout + result.stderr).split())
        assert "cu130 wants" in shown or "not the cu130 build" in shown, result
        assert "poetry torch-cuda lock" not in shown, result
    check = run_inprocess(project, "torch-cuda", "lock", "--check", env_extra=env)
    assert check.returncode == 0, check
    result = project.run("torch-cuda", "sync", env_extra=env)
    assert "locking cu130 first" in result.stdout, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    result = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert result.returncode == 0, result


def test_lock_check_fails_on_an_entry_lock_would_drop(
    tmp_path: Path, index: IndexServer
) -> None:
    """A cu130 entry no configuration asks for (added by hand, or a teammate's
    lock-variants since dropped), consistent in itself: lock --check passed, and
    `poetry torch-cuda lock` then dropped it. The check fails whenever lock would
    change the file: it names the entry and both ways on; after lock it passes."""
    project = Project.create(tmp_path, index, DEPS, TWO)
    assert run_inprocess(project, "lock").returncode == 0
    text = project.pyproject.read_text()
    project.pyproject.write_text(text.replace(TWO, 'variant = "cu129"\n'))
    path = project.path / "torch-cuda.lock"
    lock = path.read_text()
    path.write_text(lock.replace('["cu129", "cu130"]', '["cu129"]', 1))
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 1, result
    assert " ".join(result.stderr.split()) == (
        "torch-cuda.lock does not match this project: it holds cu130, a variant "
        "neither variant nor lock-variants names (add it to lock-variants to keep "
        "it). Run `poetry torch-cuda lock` and commit torch-cuda.lock."
    ), result
    assert run_inprocess(project, "torch-cuda", "lock").returncode == 0
    assert [v["name"] for v in read_lock(project)["variant"]] == ["cu129"]
    result = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert result.returncode == 0, result
