"""Hostile and malformed configuration: refused before anything runs or changes.

In-process (the point is the refusal and its wording); an audit hook records
every process the command starts."""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

from poetry_torch_cuda.project.locked import STALE_LOCK
from tests.support.inprocess import run_inprocess
from tests.support.kept import kept_install
from tests.support.untouched import untouched


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer
    from tests.support.kept import Kept

DEPS = {"needs-torch": "*"}
TABLE = "[tool.poetry-torch-cuda]"
kept_cu129 = kept_install(DEPS, 'variant = "cu129"')


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('variant = "../cu129"', "variant = '../cu129' is not a variant"),
        ('variant = "cu129; rm -rf /"', "variant = 'cu129; rm -rf /' is not a variant"),
        ('variant = "$(touch pwned)"', "is not a variant"),
        ("variant = 129", "variant must be a string, got an integer 129"),
        ('variant = ["cu129"]', "variant must be a string, got an array"),
        (
            'variant = "cu129"\nindex-url = "file:///etc/passwd"',
            "index-url = 'file:///etc/passwd' is not an http(s) URL with a host",
        ),
        (
            'variant = "cu129"\nindex-url = "ftp://mirror.example/{variant}"',
            "is not an http(s) URL with a host",
        ),
        (
            'variant = "cu129"\nindex-url = "https://x.example/{variant}/{os}"',
            "may contain only the placeholder {variant}",
        ),
        ('variant = "cu129"\npackages = "torch"', "must be a non-empty list"),
        ('variant = "cu129"\npackages = ["torch; rm -rf /"]', "is not a PEP 508"),
        (
            'variant = "cu129"\npackages = ["torch @ https://evil.example/t.whl"]',
            "is a direct URL reference",
        ),
        ('variant = "cu129"\nsource = 7', "sets both index-url and source"),
        ('variant = "cu129"\nallow-insecure-http = "yes"', "must be true or false"),
        ('variant = "cu129"\nshell = "rm -rf /"', "unknown key 'shell'"),
    ],
)
def test_bad_value_is_refused_before_anything_runs(
    project_factory: ProjectFactory, table: str, message: str
) -> None:
    project = project_factory(DEPS, table)
    assert not project.lockfile.exists() and not project.venv.exists()
    with untouched(project):
        for command in ("install", "lock", "update"):
            result = run_inprocess(project, command)
            assert result.returncode == 1
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            # one line: key, bad value, what is allowed
            assert len(lines) == 1, result.stderr
            assert message in lines[0]
            assert lines[0].startswith("[tool.poetry-torch-cuda]")
            assert result.started == []  # not even Poetry's own subprocesses ran
    assert not (project.path / "pwned").exists()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("POETRY_TORCH_CUDA_VARIANT", "cu129 && touch pwned", "is not a variant"),
        ("POETRY_TORCH_CUDA_INDEX_URL", "javascript:alert(1)", "is not an http(s) URL"),
        (
            "POETRY_TORCH_CUDA_INDEX_URL",
            "http://mirror.example/whl/{variant}",
            "uses plain http to mirror.example",
        ),
        ("POETRY_TORCH_CUDA_DISABLE", "y", "is not a switch: use 1 or 0"),
    ],
)
def test_bad_override_is_refused(
    project_factory: ProjectFactory, variable: str, value: str, message: str
) -> None:
    """`switch` made the virtualenv before it refused a bad POETRY_TORCH_CUDA_VARIANT
    (its argument wins over it, but torch-cuda.lock is locked with it)."""
    project = project_factory(DEPS, 'variant = "cu129"')
    for args in (("install",), ("torch-cuda", "switch", "cu130")):
        result = run_inprocess(project, *args, env_extra={variable: value})
        assert result.returncode == 1, (args, result)
        assert f"{variable} = " in result.stderr, (args, result)
        assert message in result.stderr, (args, result)
        assert not project.venv.exists(), args


def test_hostile_switch_argument_changes_nothing(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory(DEPS, 'variant = "cu129"')
    assert not project.venv.exists()
    with untouched(project):
        for value in ("cu129; touch pwned", "../cu129", "cu12x", "--help=1"):
            result = run_inprocess(project, "torch-cuda", "switch", "--", value)
            assert result.returncode == 1
            assert "is not a variant" in result.stderr
    assert not (project.path / "pwned").exists()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("", f"This project has no {TABLE} table, so no variant is configured."),
        (f'{TABLE}\npackages = ["torch"]\n', f"{TABLE} needs a variant, e.g."),
        (f'{TABLE}\nvariant = "cu12x"\n', "variant = 'cu12x' is not a variant"),
        (
            f'{TABLE}\nvariant = "cu129"\npackages = "torch"\n',
            f"{TABLE} packages must be a non-empty list of requirement strings",
        ),
        (f'{TABLE}\nvariant = "cu129"\nverfy = false\n', "did you mean 'verify'?"),
        ('[tool]\npoetry-torch-cuda = "cu129"\n', f"{TABLE} must be a table"),
        (  # the example printed as the message says, its blank line kept
            '[[tool.poetry-torch-cuda]]\nvariant = "cu129"\n',
            f"{TABLE} must be a table, got an array. Write it as:\n\n{TABLE}\nvariant",
        ),
    ],
)
@pytest.mark.parametrize("args", [("switch", "cu130"), ("sync",)])
def test_switch_refuses_a_bad_table_before_poetry_makes_a_virtualenv(
    project_factory: ProjectFactory, table: str, message: str, args: tuple[str, ...]
) -> None:
    """Without the table, without a variant or with a bad one (switch writes the
    argument, but locks torch-cuda.lock from the table as it is), `switch` and
    `sync` made the virtualenv, then refused."""
    project = project_factory(DEPS)
    project.write_pyproject(project.pyproject_text() + "\n" + table)
    with untouched(project):
        result = run_inprocess(project, "torch-cuda", *args)
    assert result.returncode == 1, result
    assert message in result.stderr, result
    assert "Creating virtualenv" not in result.stderr + result.stdout


def test_a_stale_poetry_lock_is_refused_before_poetry_makes_a_virtualenv(
    project_factory: ProjectFactory,
) -> None:
    """A dependency added without `poetry lock`: `switch` and `sync` made the
    virtualenv, then refused the stale poetry.lock."""
    project = project_factory(DEPS, 'variant = "cu129"')
    off = {"POETRY_TORCH_CUDA_DISABLE": "1"}  # Poetry's lock alone
    assert run_inprocess(project, "lock", env_extra=off).returncode == 0
    shutil.rmtree(project.venv, ignore_errors=True)  # `poetry lock` may make one
    stale = project.pyproject_text().replace('"needs-torch",', '"needs-torch", "x",')
    project.write_pyproject(stale)
    with untouched(project):
        for args in (("switch", "cu130"), ("sync",)):
            result = run_inprocess(project, "torch-cuda", *args)
            assert result.returncode == 1, (args, result)
            assert result.stderr.strip() == STALE_LOCK, (args, result)


@pytest.mark.parametrize("protection", [("chmod", "444"), ("chattr", "+i")])
@pytest.mark.parametrize("name", ["pyproject.toml", "torch-cuda.lock"])
def test_switch_leaves_a_read_only_project_file_and_the_environment_alone(
    kept_cu129: Kept, index: IndexServer, protection: tuple[str, str], name: str
) -> None:
    """A read-only torch-cuda.lock (chattr +i stops root too) failed the switch
    after pip had run, with a bare "[Errno 1] Operation not permitted": the
    environment on cu130, torch-cuda.lock on cu129. Refused before, as for
    pyproject.toml; a switch with nothing to write runs."""
    project = kept_cu129.fresh()
    files = [project.pyproject, project.lockfile, project.path / "torch-cuda.lock"]
    before = [path.read_bytes() for path in files]
    if subprocess.run([*protection, str(project.path / name)], check=False).returncode:
        pytest.skip(f"{' '.join(protection)} is not allowed here")
    try:
        same = run_inprocess(project, "torch-cuda", "switch", "cu129")
        dry = run_inprocess(project, "torch-cuda", "switch", "cu130", "--dry-run")
        result = run_inprocess(project, "torch-cuda", "switch", "cu130")
    finally:
        undo = ("chattr", "-i") if protection[0] == "chattr" else ("chmod", "644")
        subprocess.run([*undo, str(project.path / name)], check=True)
    assert same.returncode == 0, same  # nothing to write
    said = {  # torch-cuda.lock's: the one wording, the lock's (as `lock` says it)
        "pyproject.toml": "nothing was changed. Free space or fix permissions",
        "torch-cuda.lock": "it was not changed. Make it writable",
    }
    for refused in (result, dry):  # the dry run said it would write it
        assert refused.returncode == 1, refused
        assert refused.stderr.strip() == (
            f"could not write {name} (it is read-only); {said[name]}, then run the "
            "command again."
        )
    assert project.installed()["torch"] == "2.14.1+cu129"
    assert [path.read_bytes() for path in files] == before


@pytest.mark.parametrize("args", [("switch", "cu130"), ("sync",)])
def test_an_install_that_locks_first_refuses_a_read_only_torch_cuda_lock(
    kept_cu129: Kept, index: IndexServer, args: tuple[str, ...]
) -> None:
    """pyproject.toml says cu130 (set by hand), the environment holds cu129 and
    torch-cuda.lock (chmod 444) has no cu130: `switch cu130` skipped its guard (no
    pyproject.toml to write), installed cu130 and exited 0 with torch-cuda.lock on
    cu129 (a warning); `sync` installed cu130, then failed. Refused before."""
    project = kept_cu129.fresh()
    project.write_pyproject(project.pyproject_text().replace("cu129", "cu130"))
    files = [project.pyproject, project.lockfile, project.path / "torch-cuda.lock"]
    before = [path.read_bytes() for path in files]
    files[-1].chmod(0o444)
    result = run_inprocess(project, "torch-cuda", *args)
    assert result.returncode == 1, result
    assert result.stderr.startswith(
        "could not write torch-cuda.lock (it is read-only); it was not changed. "
        "Make it writable, then run the command again."
    ), result
    assert "installed" not in result.stdout, result
    assert project.installed()["torch"] == "2.14.1+cu129"
    assert [path.read_bytes() for path in files] == before


def test_a_switch_that_installs_nothing_refuses_a_variant_it_cannot_lock(
    project_factory: ProjectFactory,
) -> None:
    """cu126's index lacks the locked torch 2.14.1. With torch installed, `switch
    cu126` fails and changes nothing; in an environment without it (a clone before
    `poetry install`) it wrote variant = "cu126", exited 0 with a warning, and every
    `poetry install` then failed. Refused alike."""
    project = project_factory(DEPS, 'variant = "cu129"')
    assert run_inprocess(project, "lock").returncode == 0
    files = [project.pyproject, project.lockfile, project.path / "torch-cuda.lock"]
    before = [path.read_bytes() for path in files]
    result = run_inprocess(project, "torch-cuda", "switch", "cu126")
    assert result.returncode == 1, result
    assert "cannot lock torch==2.14.1+cu126 from http://127.0.0.1:" in result.stderr
    assert "now says" not in result.stdout, result
    assert [path.read_bytes() for path in files] == before


def test_a_read_only_torch_cuda_lock_is_refused_in_words(
    kept_cu129: Kept, index: IndexServer
) -> None:
    """A chmod 444 torch-cuda.lock was replaced by the rename; now refused, and
    `poetry torch-cuda lock` says so instead of a bare PermissionError."""
    project = kept_cu129.fresh()
    lock = project.path / "torch-cuda.lock"
    project.write_pyproject(
        project.pyproject_text() + 'lock-variants = ["cu129", "cu130"]\n'
    )
    before = lock.read_bytes()
    lock.chmod(0o444)
    result = run_inprocess(project, "torch-cuda", "lock")
    assert result.returncode == 1, result
    assert result.stderr.strip() == (
        "could not write torch-cuda.lock (it is read-only); it was not changed. "
        "Make it writable, then run the command again."
    )
    assert lock.read_bytes() == before
    relocked = run_inprocess(project, "lock")  # a failure to lock is a warning there
    assert relocked.returncode == 0, relocked
    assert (
        "could not update torch-cuda.lock: could not write torch-cuda.lock (it is "
        in (relocked.stderr)
    )
    assert lock.read_bytes() == before
