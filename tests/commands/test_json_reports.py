"""What scripts and bots read: ``detect --json`` and ``variants --json`` say what
the project configures and locks, in-process (the point is the report)."""

from __future__ import annotations

import json
import shutil
import sys
import venv
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from poetry_torch_cuda.machine.resolution import failures
from poetry_torch_cuda.machine.resolution import remember
from poetry_torch_cuda.project.locked import STALE_LOCK
from poetry_torch_cuda.project.variants import parse_variant
from tests.support.gpus import RTX_4090
from tests.support.gpus import gpu
from tests.support.inprocess import run_inprocess
from tests.support.machines import nvidia_machine


if TYPE_CHECKING:
    import pytest

    from tests.support.fixtures import ProjectFactory
    from tests.support.poetry_project import Project

DEPS = {"needs-torch": "*", "torchvision": "*"}


def report(project: Project, tmp_path: Path, *args: str) -> dict[str, Any]:
    """``poetry torch-cuda *args --json`` on an RTX 4090: exit 0, JSON alone on stdout."""
    env = gpu(tmp_path, RTX_4090)
    result = run_inprocess(project, "torch-cuda", *args, "--json", env_extra=env)
    assert result.returncode == 0, result
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_variants_lists_the_configured_variant_whose_index_has_no_torch(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """cu132's index has no torch at all: its row was hidden, so the JSON had no
    row for the variant the project configures (the text did not mark it either)."""
    project = project_factory(DEPS, 'variant = "cu132"')
    locked = run_inprocess(
        project, "lock", env_extra={"POETRY_TORCH_CUDA_DISABLE": "1"}
    )
    assert locked.returncode == 0, locked
    data = report(project, tmp_path, "variants")
    assert data["configured"] == "cu132"
    [row] = [row for row in data["variants"] if row["configured"]]
    assert (row["variant"], row["offered"]) == ("cu132", False)
    assert row["packages"][0]["versions"] == []
    assert "cu118" not in [row["variant"] for row in data["variants"]]
    shown = run_inprocess(
        project, "torch-cuda", "variants", env_extra=gpu(tmp_path, RTX_4090)
    )
    assert "  cu132    missing  does not run here  (configured)" in shown.stdout


def test_detect_says_nothing_is_configured_without_the_table(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """Without [tool.poetry-torch-cuda] no install changes torch; detect --json said
    ``"configured": "auto"``."""
    project = project_factory(DEPS)
    data = report(project, tmp_path, "detect")
    assert data["variant"] == "cu129"
    assert data["configured"] is None


def _torch_behind_an_extra(factory: ProjectFactory, table: str) -> Project:
    """A locked project whose torch 2.13.0 is only behind extra ``gpu``."""
    project = factory({"filelock": "*"}, table)
    gpu_extra = '[project.optional-dependencies]\ngpu = ["torch==2.13.0"]\n\n'
    text = project.pyproject_text().replace(
        "[tool.poetry]\n", gpu_extra + "[tool.poetry]\n"
    )
    project.write_pyproject(text)
    off = {"POETRY_TORCH_CUDA_DISABLE": "1"}  # Poetry's lock alone
    locked = run_inprocess(project, "lock", env_extra=off)
    assert locked.returncode == 0, locked
    return project


def test_detect_and_variants_read_torch_locked_behind_an_extra(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """torch only in an extra (`poetry install -E gpu`): detect said "no lock yet:
    any torch" (`"torch": null`) and variants listed nothing for it
    (`"packages": {}`), though poetry.lock locks it."""
    project = _torch_behind_an_extra(project_factory, 'variant = "auto"')
    assert report(project, tmp_path, "detect")["torch"] == "2.13.0"
    assert report(project, tmp_path, "variants")["packages"] == {"torch": "2.13.0"}


def test_status_checks_targets_on_torch_locked_behind_an_extra(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """torch 2.13.0 only behind an extra; cu128's index has torch 2.14.1 only. The
    target was checked for any torch and passed, though cu128 cannot install the
    locked one there."""
    target = (
        '[[tool.poetry-torch-cuda.targets]]\nname = "lab"\ndriver = "600.10"\n'
        'gpus = ["9.0"]'
    )
    project = _torch_behind_an_extra(project_factory, f'variant = "cu128"\n{target}')
    (lab,) = report(project, tmp_path, "status")["targets"]
    assert lab["ok"] is False, lab
    assert "has no torch 2.13.0+cu128" in lab["reasons"][0], lab


def test_detect_without_a_venv_reads_and_forgets_no_memory(
    project_factory: ProjectFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No virtualenv yet: detect read, and --forget deleted, the failures remembered
    for Poetry's own Python (a project with ``virtualenvs.create = false`` keeps
    them there), as if they were this project's."""
    project = project_factory(DEPS, 'variant = "auto"')
    assert run_inprocess(project, "lock").returncode == 0
    shutil.rmtree(project.venv)  # `poetry lock` makes one
    monkeypatch.setenv("POETRY_CACHE_DIR", project.env["POETRY_CACHE_DIR"])
    system = Path(sys.base_prefix)  # the env Poetry reports without a venv
    machine = nvidia_machine("575.51.03", (RTX_4090[1], (8, 9)))
    assert remember(system, machine, parse_variant("cu129"), "2.14.1", "no kernel")
    data = report(project, tmp_path, "detect")
    assert (data["remembered"], data["remembered_elsewhere"]) == ([], []), data
    assert data["variant"] == "cu129", data
    env = gpu(tmp_path, RTX_4090)
    forgot = run_inprocess(project, "torch-cuda", "detect", "--forget", env_extra=env)
    assert forgot.returncode == 0, forgot
    assert "No virtualenv yet: no failed build is remembered" in forgot.stderr, forgot
    assert len(failures(system)) == 1
    assert not project.venv.exists()


def test_json_is_stdout_alone_at_every_verbosity(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """``--json -vvv``: Poetry's debug lines ("Adding repository …") came first on
    stdout, and the JSON did not parse; ``--json -q`` printed nothing. stdout is
    the document at every verbosity (-q silences words, not the asked-for
    document), the diagnostics go to stderr."""
    project = project_factory(DEPS, 'variant = "cu129"')
    assert run_inprocess(project, "lock").returncode == 0
    env = gpu(tmp_path, RTX_4090)
    for command in ("status", "detect", "variants", "verify"):
        for verbosity in ("-vvv", "-q"):
            args = ("torch-cuda", command, "--json", verbosity)
            result = run_inprocess(project, *args, env_extra=env)
            assert isinstance(json.loads(result.stdout), dict), (args, result)
            debug = "Adding repository fakepypi" in result.stderr
            assert debug == (verbosity == "-vvv"), (args, result)


def test_an_unreachable_index_is_said_once_and_auto_stops_at_its_pick(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """An index on a closed port: detect repeated the failure and its advice at every
    variant (later ones "noted 0 s ago"), and said a step after choosing cu126;
    variants --json gave each package's error with the advice twice over."""
    project = project_factory(DEPS, 'variant = "cu129"')
    env = gpu(tmp_path, RTX_4090)
    assert run_inprocess(project, "lock", env_extra=env).returncode == 0
    dead = {**env, "POETRY_TORCH_CUDA_INDEX_URL": "http://127.0.0.1:9/whl/{variant}"}
    shown = run_inprocess(project, "torch-cuda", "detect", env_extra=dead)
    assert shown.returncode == 0, shown
    steps = [line for line in shown.stdout.splitlines() if line[2:3].isdigit()]
    assert steps[-1].startswith("  7. cu126: chosen by full support"), shown.stdout
    assert steps[-1].endswith(
        "could not ask the index: 127.0.0.1:9 refused the connection; "
        "assuming it has it"
    ), shown.stdout
    # the variable names the dead index: its advice is the variable's, not index-url's
    mine = "Check the network and POETRY_TORCH_CUDA_INDEX_URL (this run's mirror)"
    assert shown.stdout.count(mine) == 1, shown
    # the failure once in the steps: cu129 and cu128 repeated it as they were skipped
    assert "".join(steps).count("refused the connection") == 1, shown.stdout
    assert steps[-3].startswith("  5. cu129: skipped, torch 2.14 does not publish it")
    assert steps[-3].endswith(
        "and the index could not be asked; it would run by full support"
    ), shown.stdout
    assert "noted" not in shown.stdout, shown.stdout
    args = ("torch-cuda", "detect", "--json")
    decided = json.loads(run_inprocess(project, *args, env_extra=dead).stdout)
    [chosen] = [c for c in decided["candidates"] if c["variant"] == "cu126"]
    assert chosen["advice"].startswith("127.0.0.1:9 refused the connection. Check")
    result = run_inprocess(
        project, "torch-cuda", "variants", "cu129", "--json", env_extra=dead
    )
    [package] = json.loads(result.stdout)["variants"][0]["packages"]
    assert package["error"] == "127.0.0.1:9 refused the connection", package
    assert json.dumps(package).count("Check the network") == 1, package


def test_status_and_verify_report_a_pyproject_changed_since_poetry_lock(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """pyproject.toml changed since poetry.lock: `status` and `status --json` printed
    Poetry's one line instead of the report (whose warning it is), `verify --json`
    no JSON; each says it once, in its report."""
    project = project_factory(DEPS, 'variant = "cpu"')
    assert run_inprocess(project, "lock").returncode == 0
    text = project.pyproject_text()
    project.write_pyproject(text.replace('"torchvision', '"filelock", "torchvision'))
    stale = "pyproject.toml changed significantly since poetry.lock"
    data = report(project, tmp_path, "status")
    assert [w for w in data["warnings"] if stale in w] == [STALE_LOCK], data
    env = gpu(tmp_path, RTX_4090)
    verify = run_inprocess(project, "torch-cuda", "verify", "--json", env_extra=env)
    assert verify.returncode == 1, verify
    checks = json.loads(verify.stdout)["checks"]
    assert [c["message"] for c in checks if stale in c["message"]] == [STALE_LOCK]


def test_verify_fails_without_poetry_lock_as_status_check_does(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """poetry.lock deleted: `status --check` failed ("poetry.lock does not exist"),
    `verify` proved the installed build and passed, whatever torch-cuda.lock held."""
    project = project_factory(DEPS, 'variant = "cpu"')
    venv.create(project.venv)  # an environment, without poetry.lock
    env = gpu(tmp_path, RTX_4090)
    verify = run_inprocess(project, "torch-cuda", "verify", "--json", env_extra=env)
    assert verify.returncode == 1, verify
    checks = json.loads(verify.stdout)["checks"]
    missing = "poetry.lock does not exist; run `poetry lock` first."
    assert [c["message"] for c in checks if c["status"] == "fail"] == [missing]
