"""The two Poetries compared: one pinned Poetry, with the plugin and without it.

Both virtualenvs are made the same way, from the Python running the benchmark,
and get exactly the Poetry (and the versions of everything Poetry needs) that
this environment has. The plugin's venv then gets this checkout, built and
installed as a normal wheel (compiled bytecode, no editable ``.pth``), which
is what ``poetry self add`` gives a user. So the two differ by our
distribution alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


REPO = Path(__file__).resolve().parent.parent
STAMP = "bench-pins.txt"


@dataclass(frozen=True)
class PoetryVenv:
    """A virtualenv holding Poetry (``label`` says whether our plugin is in it)."""

    label: str
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def poetry(self) -> Path:
        return self.path / "bin" / "poetry"


def poetry_pins() -> list[str]:
    """``name==version`` of Poetry and all it needs, as installed here."""
    environment = {key: str(value) for key, value in default_environment().items()}
    pins: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    stack: list[tuple[str, frozenset[str]]] = [("poetry", frozenset())]
    while stack:
        name, extras = stack.pop()
        key = canonicalize_name(name)
        todo = {extra for extra in ("", *extras) if (key, extra) not in seen}
        if not todo:
            continue
        seen.update((key, extra) for extra in todo)
        distribution = metadata.distribution(key)
        pins[key] = distribution.version
        for line in distribution.requires or ():
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(
                marker.evaluate({**environment, "extra": extra}) for extra in todo
            ):
                stack.append((requirement.name, frozenset(requirement.extras)))
    return sorted(f"{name}=={version}" for name, version in pins.items())


def prepare(
    cache: Path, *, log: bool = True, source: Path = REPO, plain: bool = True
) -> tuple[PoetryVenv, PoetryVenv]:
    """The plugin's venv (the plugin rebuilt from ``source``, a checkout) and the plugin-free one.

    ``plain=False`` leaves the plugin-free venv unmade (the real-scale rows need none).
    """
    pins = poetry_pins()
    stamp = "\n".join([sys.version, *pins]) + "\n"
    without = PoetryVenv("without plugin", cache / "plain")
    if plain:
        without = _venv(without, pins, stamp, log)
    plugin = _venv(PoetryVenv("with plugin", cache / "plugin"), pins, stamp, log)
    _say(log, f"installing poetry-torch-cuda from {source} into the plugin's venv")
    _pip(plugin, "install", "--no-deps", "--force-reinstall", str(source))
    return plugin, without


def _venv(venv: PoetryVenv, pins: list[str], stamp: str, log: bool) -> PoetryVenv:
    stamp_file = venv.path / STAMP
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        return venv
    _say(log, f"creating the venv {venv.label} at {venv.path} ({len(pins)} pins)")
    shutil.rmtree(venv.path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv.path)], check=True)
    _pip(venv, "install", *pins)
    stamp_file.write_text(stamp)
    return venv


def _pip(venv: PoetryVenv, *args: str) -> None:
    # The machine's own pip configuration applies here, as for any nox session:
    # these are Poetry's packages, not the benchmark's index.
    command = [str(venv.python), "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}")


def _say(log: bool, message: str) -> None:
    if log:
        print(f"bench: {message}", file=sys.stderr, flush=True)
