"""README.md's and docs/*.md's console examples, run for real so they cannot drift.

Every ```` ```console ```` block in README.md and docs/*.md is bound to a *scenario* by an HTML
comment on the line before it (blank lines between are allowed); GitHub does
not render the comment::

    <!-- console: after -->
    ```console
    $ poetry install
    torch-cuda: cu130: installed torch 2.14.1+cu130, torchvision 0.29.1+cu130
    ```

``<!-- console: NAME -->`` runs the block: the scenario ``NAME`` (a function in
:data:`SCENARIOS`) prepares a project against this module's local indexes,
then each ``$ poetry …`` line of the block runs in it, in order, with the real
``poetry`` (stdout and stderr merged, as a terminal shows them). The lines the
README shows under a command must appear in what it printed, in the same order;
the README may leave lines out (pip's progress, Poetry's blank lines), but
every line it shows must be printed. Before comparing, both sides are
normalised: the local indexes' URLs become the real ones
(``https://download.pytorch.org/whl/…``, ``https://pypi.org/simple``), the
project's path becomes ``<project>``, version numbers become ``<version>``
(labels such as ``+cu130`` stay), runs of spaces become one, and a trailing
``  # comment`` (two spaces, ``#``, a space) is dropped from README lines.

``<!-- console: not run: REASON -->`` marks a block that only lists commands
to type and cannot run here (it needs PyPI, a password prompt or the whole
suite). Use it sparingly: a block with output lines should have a scenario.

A console block without a marker, or naming no known scenario, fails
:func:`test_every_console_block_has_a_marker` with the line number and what to
add.

Adding a scenario (for a new block):

1. Write ``def _my_scenario(ctx: Context) -> Stage`` below: create the project
   with ``ctx.project(["torch>=2.8", "torchvision"], 'variant = "cu130"\n')``
   (PEP 508 dependencies and the body of ``[tool.poetry-torch-cuda]``; the
   local variant index is filled in) or ``ctx.project_from_toml_above()``,
   run any setup (``project.run("lock")``), and return
   ``Stage(project, env, printed_as)``: ``env`` for the block's commands (a
   fake GPU: ``machine_env(...)`` from :mod:`tests.support.gpus`), and
   ``printed_as`` for output the scenario had to make different (a shorter
   timeout). Faults go on ``ctx.index`` (``delay_seconds``, ``fail_paths``…);
   the fixture resets them.
2. Register it in :data:`SCENARIOS` under the name the README's marker uses.
3. Run ``pytest tests/e2e/test_readme.py -k my-scenario``. CI runs it on Poetry
   2.0 and 2.5: show only lines that both print.

The indexes hold the builds PyTorch publishes today
(:mod:`tests.support.published`: torch 2.14.1 and torchvision 0.29.1 on cpu,
cu126, cu130 and cu132), so the README's examples name builds that exist; the
variants' builds answer ``verify`` as real ones do on a machine without a GPU
(:func:`tests.support.fake_torch.make_demo_builds`).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Callable

import pytest
import tomlkit

from tests.support.fake_torch import make_demo_builds
from tests.support.fixtures import reset_around
from tests.support.fixtures import served
from tests.support.gpus import A100
from tests.support.gpus import GTX_1080
from tests.support.gpus import machine_env
from tests.support.gpus import smi_line
from tests.support.poetry_project import VERIFY_ON
from tests.support.poetry_project import Project
from tests.support.poetry_project import poetry_executable
from tests.support.poetry_project import with_overrides
from tests.support.published import VARIANTS
from tests.support.published import build_published_universe


if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.index import IndexServer


pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: The documents whose console blocks are checked: the README and docs/*.md.
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!--\s*console:\s*(?P<value>.*?)\s*-->$")
NOT_RUN = re.compile(r"^not run:\s*(?P<reason>\S.*)$")
VERSION = re.compile(r"(?<![\w.])v?\d+(?:\.\d+)+(?![\w.]*\d)")
COMMENT = re.compile(r"\s{2,}#\s.*$")


# -- the README, parsed --------------------------------------------------------


@dataclass
class Command:
    """One ``$ …`` line of a console block and the lines shown under it."""

    line: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    """A ```` ```console ```` block: where it starts, its marker, its text."""

    lineno: int
    marker: str | None
    lines: list[str]
    #: The nearest ```` ```toml ```` block above it, if any.
    toml_above: str | None
    #: The file it is in, relative to the repository.
    source: str = "README.md"

    @property
    def commands(self) -> list[Command]:
        commands: list[Command] = []
        for line in self.lines:
            if line.startswith("$ "):
                commands.append(Command(_strip_comment(line[2:])))
            elif commands and line.strip():
                commands[-1].expected.append(_strip_comment(line))
        return commands

    @property
    def id(self) -> str:
        where = "" if self.source == "README.md" else f"{Path(self.source).stem}-"
        return f"{self.marker}-{where}line{self.lineno}"


def parse_readme(text: str, source: str = "README.md") -> list[Block]:
    """Every console block of ``text`` (the file ``source``) with the marker before it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    toml_above: str | None = None
    index = 0
    while index < len(lines):
        fence = lines[index].strip()
        if fence.startswith("```") and fence != "```":
            kind = fence[3:].strip()
            end = index + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            body = lines[index + 1 : end]
            if kind == "toml":
                toml_above = "\n".join(body) + "\n"
            elif kind == "console":
                blocks.append(
                    Block(
                        index + 1,
                        _marker_before(lines, index),
                        body,
                        toml_above,
                        source,
                    )
                )
            index = end + 1
            continue
        index += 1
    return blocks


def _marker_before(lines: list[str], index: int) -> str | None:
    for previous in reversed(lines[:index]):
        if previous.strip():
            match = MARKER.match(previous.strip())
            return match.group("value") if match else None
    return None


def _strip_comment(line: str) -> str:
    return COMMENT.sub("", line)


BLOCKS = [
    block
    for document in DOCUMENTS
    for block in parse_readme(
        document.read_text(encoding="utf-8"), str(document.relative_to(ROOT))
    )
]


# -- scenarios -------------------------------------------------------------------


@dataclass
class Stage:
    """A prepared project the block's commands run in, plus environment overrides."""

    project: Project
    env: dict[str, str] = field(default_factory=dict)
    #: Text of the commands' output -> what the README shows instead (e.g. a
    #: timeout the scenario shortened to stay fast).
    printed_as: dict[str, str] = field(default_factory=dict)


@dataclass
class Context:
    """What a scenario gets: the block, the local indexes and a fresh directory."""

    block: Block
    index: IndexServer
    tmp_path: Path

    def project(
        self, dependencies: list[str], table: str | None, *, name: str = "demo"
    ) -> Project:
        """A project with PEP 508 ``dependencies`` and a ``[tool.poetry-torch-cuda]`` body."""
        split = {}
        for requirement in dependencies:
            match = re.match(r"^\s*([A-Za-z0-9._-]+)(.*)$", requirement)
            assert match, requirement
            split[match.group(1)] = match.group(2)
        return Project.create(self.tmp_path, self.index, split, table, name=name)

    def project_from_toml_above(self) -> Project:
        """A project made of the README's ```` ```toml ```` block above this one."""
        assert self.block.toml_above, "no ```toml block above this console block"
        document = tomlkit.parse(self.block.toml_above)
        dependencies = [str(d) for d in document["project"]["dependencies"]]  # type: ignore[index, union-attr]
        table = document["tool"]["poetry-torch-cuda"]  # type: ignore[index]
        return self.project(dependencies, tomlkit.dumps(table))


def _after(ctx: Context) -> Stage:
    """The "After" example: the project is the toml block above it, from scratch."""
    return Stage(ctx.project_from_toml_above())


def _bad_variant(ctx: Context) -> Stage:
    """A malformed variant stops `poetry install` before anything changes."""
    return Stage(ctx.project(["torch"], 'variant = "cu12x"\n'))


def _auto_on(ctx: Context, driver: str, gpu: tuple[str, str]) -> Stage:
    """An ``auto`` project of torch, locked on a machine with ``gpu`` under ``driver``."""
    project = ctx.project(["torch"], 'variant = "auto"\n')
    env = machine_env(ctx.tmp_path / "machine", nvidia_smi=smi_line(driver, *gpu))
    project.run("lock", env_extra=env)
    return Stage(project, env)


def _detect_gtx_1080(ctx: Context) -> Stage:
    """`detect` on a GTX 1080 whose driver (575.51.03) runs CUDA 12.9."""
    return _auto_on(ctx, "575.51.03", GTX_1080)


def _detect_a100_r535(ctx: Context) -> Stage:
    """`detect` on an A100 whose driver is on NVIDIA's R535 long-term-support branch."""
    return _auto_on(ctx, "535.104.05", A100)


def _export(ctx: Context) -> Stage:
    """A locked cu130 project: poetry lock also wrote torch-cuda.lock."""
    project = ctx.project(["torch", "torchvision"], 'variant = "cu130"\n')
    project.run("lock")
    return Stage(project)


def _lock_view(ctx: Context) -> Stage:
    """cu126 with two declared targets: an H100 box on R570 and an A100 on R535."""
    table = (
        'variant = "cu126"\n'
        "[[tool.poetry-torch-cuda.targets]]\n"
        'name = "training"\ndriver = "570.124.06"\ngpus = ["9.0"]\n'
        "[[tool.poetry-torch-cuda.targets]]\n"
        'name = "lts"\ndriver = "535.104.05"\ngpus = ["8.0"]\n'
    )
    return Stage(ctx.project(["torch"], table))


def _slow_index(ctx: Context) -> Stage:
    """cu126 installed, pyproject moved to cu130, whose index does not answer in time.

    The page's timeout is 1 s instead of the plugin's 4 s to keep the test fast.
    """
    project = ctx.project(["torch", "torchvision"], 'variant = "cu126"\n')
    project.run("install")
    project.write_pyproject(project.pyproject_text().replace("cu126", "cu130"))
    ctx.index.delay_seconds["/whl/cu130/"] = 3
    return Stage(
        project,
        {"PIP_TIMEOUT": "1", "PIP_RETRIES": "0", "POETRY_REQUESTS_TIMEOUT": "1"},
        {"did not answer within 1 s": "did not answer within 4 s"},
    )


#: The CI recipe's project (README, "A CI job without a GPU"): cu130 and cpu
#: locked, one declared target, and what the CI job sets.
CI_TABLE = (
    'variant = "cu130"\n'
    'lock-variants = ["cu130", "cpu"]\n'
    "[[tool.poetry-torch-cuda.targets]]\n"
    'name = "training"\ndriver = "580.82.07"\ngpus = ["9.0"]\n'
)


def ci_project(tmp_path: Path, index: IndexServer) -> Project:
    """The CI recipe's project, locked, run as on a runner without a GPU."""
    project = Project.create(
        tmp_path, index, {"torch": ">=2.8", "torchvision": "*"}, CI_TABLE, name="demo"
    )
    project.run("lock")
    runner = machine_env(tmp_path / "runner")
    # Verification on, as in a real CI job.
    project.env = with_overrides({**project.env, **runner}, VERIFY_ON)
    return project


def _ci_job(ctx: Context) -> Stage:
    """A GPU-less CI runner, nothing installed yet: the checks of the fleet."""
    return Stage(ci_project(ctx.tmp_path, ctx.index))


def _ci_job_cpu(ctx: Context) -> Stage:
    """The same runner installing and verifying the cpu build."""
    project = ci_project(ctx.tmp_path, ctx.index)
    return Stage(project, {"POETRY_TORCH_CUDA_VARIANT": "cpu"})


def bot_locked(tmp_path: Path, index: IndexServer) -> Project:
    """A cu130 project locked with the plugin, then re-locked by a bot without it."""
    project = Project.create(
        tmp_path, index, {"torch": ">=2.8", "torchvision": "*"}, 'variant = "cu130"\n'
    )
    project.run("lock")
    assert project.run("torch-cuda", "lock", "--check").returncode == 0
    # The bot raises a constraint and locks with a Poetry that has no plugin.
    project.write_pyproject(
        project.pyproject_text().replace('"torch>=2.8"', '"torch>=2.14"')
    )
    project.run("--no-plugins", "lock")
    return project


def _bot_lock(ctx: Context) -> Stage:
    """A dependency bot re-locked poetry.lock without the plugin."""
    return Stage(bot_locked(ctx.tmp_path, ctx.index))


#: Marker name -> scenario. Keep each one small: CI runs them on 2 cores.
SCENARIOS: dict[str, Callable[[Context], Stage]] = {
    "after": _after,
    "bad-variant": _bad_variant,
    "bot-lock": _bot_lock,
    "ci-job": _ci_job,
    "ci-job-cpu": _ci_job_cpu,
    "detect-a100-r535": _detect_a100_r535,
    "detect-gtx-1080": _detect_gtx_1080,
    "export": _export,
    "lock-view": _lock_view,
    "slow-index": _slow_index,
}


# -- running and comparing -------------------------------------------------------


def normalise(line: str, stage: Stage) -> str:
    """The comparable form of one line (see the module docstring)."""
    index = stage.project.index
    line = line.replace(index.url + "/whl", "https://download.pytorch.org/whl")
    line = line.replace(index.pypi_url.rstrip("/"), "https://pypi.org/simple")
    line = line.replace(f"127.0.0.1:{index.port}", "download.pytorch.org")
    line = line.replace(str(stage.project.path), "<project>")
    line = VERSION.sub("<version>", line)
    return " ".join(line.split())


def run_command(command: str, stage: Stage) -> tuple[int, str]:
    """Run one README command line in the stage's project: exit code, stdout+stderr."""
    args = shlex.split(command)
    assert args and args[0] == "poetry", (
        f"README command {command!r}: only `poetry …` commands can run in a scenario"
    )
    env = {**stage.project.env, **stage.env}
    result = subprocess.run(
        [str(poetry_executable()), "--no-ansi", *args[1:]],
        cwd=stage.project.path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout


def missing_lines(expected: list[str], printed: list[str]) -> list[str]:
    """Lines of ``expected`` not found in ``printed`` in order (empty: all found)."""
    position = 0
    for number, line in enumerate(expected):
        while position < len(printed) and printed[position] != line:
            position += 1
        if position == len(printed):
            return expected[number:]
        position += 1
    return []


@pytest.fixture(scope="module")
def published_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[IndexServer]:
    universe = build_published_universe(tmp_path_factory.mktemp("published"))
    make_demo_builds(universe, VARIANTS)
    yield from served(universe.root)


@pytest.fixture
def published_index(published_server: IndexServer) -> Iterator[IndexServer]:
    yield from reset_around(published_server)


def test_every_console_block_has_a_marker() -> None:
    problems = []
    for block in BLOCKS:
        if block.marker is None:
            problems.append(
                f"{block.source} line {block.lineno}: this ```console block has no marker. "
                "Put `<!-- console: SCENARIO -->` on the line before it and add "
                "SCENARIO to SCENARIOS in tests/e2e/test_readme.py (see its "
                "docstring), or `<!-- console: not run: REASON -->` for commands "
                "that cannot run here."
            )
        elif NOT_RUN.match(block.marker) is None and block.marker not in SCENARIOS:
            problems.append(
                f"{block.source} line {block.lineno}: marker {block.marker!r} names no "
                f"scenario; known: {', '.join(sorted(SCENARIOS))}. Add it to "
                "SCENARIOS in tests/e2e/test_readme.py, or write "
                "`not run: REASON`."
            )
    assert not problems, "\n".join(problems)


def test_markers_are_found() -> None:
    sample = "x\n<!-- console: after -->\n\n```console\n$ poetry install\nok\n```\n"
    (block,) = parse_readme(sample)
    assert block.marker == "after"
    assert [(c.line, c.expected) for c in block.commands] == [
        ("poetry install", ["ok"])
    ]
    (bare,) = parse_readme("text\n```console\n$ poetry lock\n```\n")
    assert bare.marker is None


def test_a_line_the_program_no_longer_prints_is_caught() -> None:
    printed = ["Package operations: 1 install", "torch-cuda: cu130: installed torch"]
    assert missing_lines(["torch-cuda: cu130: installed torch"], printed) == []
    assert missing_lines(["torch-cuda: cu129: installed torch"], printed) == [
        "torch-cuda: cu129: installed torch"
    ]
    # Order matters too.
    assert missing_lines(list(reversed(printed)), printed) == [printed[0]]


RUNNABLE = [block for block in BLOCKS if block.marker in SCENARIOS]


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.id for block in RUNNABLE])
def test_readme_example_prints_what_the_readme_shows(
    block: Block, published_index: IndexServer, tmp_path: Path
) -> None:
    assert block.marker is not None
    stage = SCENARIOS[block.marker](Context(block, published_index, tmp_path))
    for command in block.commands:
        code, printed = run_command(command.line, stage)
        # A command the README shows without output is one that just works.
        assert command.expected or code == 0, (
            f"{block.source} line {block.lineno}, `$ {command.line}` exited {code}:\n"
            + printed
        )
        for text, shown in stage.printed_as.items():
            printed = printed.replace(text, shown)
        got = [normalise(line, stage) for line in printed.splitlines()]
        want = [normalise(line, stage) for line in command.expected]
        missing = missing_lines(want, [line for line in got if line])
        assert not missing, (
            f"{block.source} line {block.lineno}, `$ {command.line}`: the README shows\n"
            f"    {missing[0]!r}\n"
            "but the command printed no such line (in that order). It printed:\n"
            + printed
        )
