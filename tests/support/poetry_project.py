"""Drive the real ``poetry`` executable against a local :class:`IndexServer`.

The ``poetry`` used is the one next to ``sys.executable`` (the venv nox or a
developer runs pytest in, where the plugin under test is installed). Every
command runs with :func:`isolated_env`, which keeps this machine's pip
configuration and the user's Poetry configuration out.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import TypedDict

from tests.support.wheels import canonical_name


if TYPE_CHECKING:
    from collections.abc import Mapping

    from typing_extensions import Unpack

    from tests.support.index import IndexServer
    from tests.support.inprocess import Result


__all__ = [
    "DEFAULT_TIMEOUT",
    "VERIFY_ON",
    "Project",
    "describe",
    "installed_distributions",
    "isolated_env",
    "pep508_dependencies",
    "poetry_executable",
    "render_pyproject",
    "stub_calls",
    "with_overrides",
    "write_stub_executable",
]

DEFAULT_TIMEOUT = 300.0
#: The overrides that turn verification back on (:func:`isolated_env` turns it off).
VERIFY_ON: dict[str, str | None] = {"POETRY_TORCH_CUDA_VERIFY": None}


class RunOptions(TypedDict, total=False):
    """How :meth:`Project.run` and :meth:`Project.pip` run their command."""

    #: A non-zero exit raises AssertionError with the output (default: True).
    check: bool
    #: Applied on top of the isolated env; a ``None`` value removes a variable.
    env_extra: Mapping[str, str | None] | None
    #: Seconds (default: the project's ``timeout``).
    timeout: float | None


#: Variables dropped from the environment besides every PIP_* and POETRY_* one:
#: an active venv would make Poetry use it instead of the project's .venv.
_DROPPED = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "NO_COLOR", "FORCE_COLOR")


def poetry_executable() -> Path:
    """``poetry`` next to ``sys.executable``."""
    return Path(sys.executable).parent / "poetry"


def isolated_env(
    tmp_path: Path, extra: Mapping[str, str | None] | None = None
) -> dict[str, str]:
    """A copy of ``os.environ`` fit for running pip or Poetry against local indexes.

    Drops every ``PIP_*`` and ``POETRY_*`` variable (this machine's pip config
    adds wheel folders and a torch cap; ``PIP_NO_INDEX`` would break
    everything) and any active virtualenv, then sets ``PIP_CONFIG_FILE`` to
    ``os.devnull`` (pip then reads no config file at all), Poetry's cache,
    config and data dirs under ``tmp_path/poetry-home``, an in-project
    ``.venv`` made with the Python Poetry runs on, no interaction, no
    keyring, no verification after changes. ``extra`` is applied last; a ``None`` value removes a variable.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "POETRY_")) and key not in _DROPPED
    }
    home = tmp_path / "poetry-home"
    dirs = {name: home / name for name in ("cache", "config", "data")}
    for directory in dirs.values():
        directory.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "POETRY_CACHE_DIR": str(dirs["cache"]),
            "POETRY_CONFIG_DIR": str(dirs["config"]),
            "POETRY_DATA_DIR": str(dirs["data"]),
            "POETRY_VIRTUALENVS_IN_PROJECT": "true",
            "POETRY_VIRTUALENVS_USE_POETRY_PYTHON": "true",
            "POETRY_NO_INTERACTION": "1",
            "POETRY_KEYRING_ENABLED": "false",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            "PYTHONDONTWRITEBYTECODE": "1",
            # The catalog's fake torch wheels are not importable builds; tests of
            # verification turn it on with VERIFY_ON.
            "POETRY_TORCH_CUDA_VERIFY": "0",
        }
    )
    return with_overrides(env, extra)


def with_overrides(
    env: Mapping[str, str], extra: Mapping[str, str | None] | None
) -> dict[str, str]:
    """A copy of ``env`` with ``extra`` applied; a ``None`` value removes a variable."""
    merged = dict(env)
    for key, value in (extra or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def pep508_dependencies(dependencies: Mapping[str, str]) -> list[str]:
    """``{"torch": ">=2.13", "tinyutil": "*", "filelock": "3.20.0"}`` -> PEP 508 list.

    ``""``/``"*"`` mean any version, a bare version means ``==``, anything
    else (operators, ``; markers``, ``[extras]>=1``) is appended verbatim.
    """
    result: list[str] = []
    for name, constraint in dependencies.items():
        constraint = constraint.strip()
        if constraint in ("", "*"):
            result.append(name)
        elif constraint[0].isdigit():
            result.append(f"{name}=={constraint}")
        else:
            result.append(f"{name}{constraint}")
    return result


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


@dataclass
class Project:
    """A throw-away Poetry project in ``path`` whose only source is the fake PyPI."""

    path: Path
    index: IndexServer
    env: dict[str, str]
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def create(
        cls,
        tmp_path: Path,
        index: IndexServer,
        dependencies: Mapping[str, str],
        torch_cuda: str | None = None,
        package_mode: bool = False,
        *,
        name: str = "e2e-project",
    ) -> Project:
        """Write ``tmp_path/<name>/pyproject.toml`` and return the project.

        ``dependencies`` go through :func:`pep508_dependencies`.
        ``torch_cuda`` is the body of the ``[tool.poetry-torch-cuda]`` table
        (TOML text) or ``None`` for no table; unless it sets ``index-url``,
        ``index-url = "<index.url>/whl/{variant}"`` is put first in it.
        ``package_mode=True`` makes an installable package (with a module).
        """
        path = tmp_path / name
        path.mkdir(parents=True, exist_ok=True)
        project = cls(path=path, index=index, env=isolated_env(tmp_path))
        project.write_pyproject(
            render_pyproject(
                index,
                dependencies,
                torch_cuda=torch_cuda,
                package_mode=package_mode,
                name=name,
            )
        )
        if package_mode:
            module = path / canonical_name(name).replace("-", "_")
            module.mkdir(exist_ok=True)
            (module / "__init__.py").write_text("")
            (path / "README.md").write_text(f"# {name}\n")
        return project

    # -- files ---------------------------------------------------------------

    @property
    def pyproject(self) -> Path:
        return self.path / "pyproject.toml"

    @property
    def lockfile(self) -> Path:
        return self.path / "poetry.lock"

    def pyproject_text(self) -> str:
        return self.pyproject.read_text()

    def write_pyproject(self, text: str) -> None:
        self.pyproject.write_text(text)

    def lock_text(self) -> str:
        return self.lockfile.read_text()

    def locked(self) -> dict[str, str]:
        """Canonical name -> version of every package in ``poetry.lock``."""
        versions: dict[str, str] = {}
        for block in re.split(
            r"^\[\[package\]\]$", self.lock_text(), flags=re.MULTILINE
        )[1:]:
            name = re.search(r'^name = "([^"]+)"$', block, flags=re.MULTILINE)
            version = re.search(r'^version = "([^"]+)"$', block, flags=re.MULTILINE)
            if name and version:
                versions[canonical_name(name.group(1))] = version.group(1)
        return versions

    # -- the project's virtualenv -------------------------------------------

    @property
    def venv(self) -> Path:
        return self.path / ".venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def site_packages(self) -> Path:
        """The venv's purelib directory (``.venv/lib/pythonX.Y/site-packages``)."""
        candidates = sorted(self.venv.glob("lib/python*/site-packages"))
        if not candidates:
            raise AssertionError(f"no virtualenv with site-packages at {self.venv}")
        return candidates[0]

    def installed(self) -> dict[str, str]:
        """Canonical name -> version of every distribution in the project's .venv.

        See :func:`installed_distributions`; empty if there is no venv yet.
        """
        return installed_distributions(self.venv)

    # -- running commands ----------------------------------------------------

    def run(
        self, *args: str, **options: Unpack[RunOptions]
    ) -> subprocess.CompletedProcess[str]:
        """Run ``poetry --no-ansi *args`` in the project directory (see :class:`RunOptions`)."""
        return self._run([str(poetry_executable()), "--no-ansi", *args], **options)

    def pip(
        self, *args: str, **options: Unpack[RunOptions]
    ) -> subprocess.CompletedProcess[str]:
        """Run ``.venv/bin/python -m pip *args`` with the isolated env."""
        return self._run([str(self.python), "-m", "pip", *args], **options)

    def _run(
        self,
        command: list[str],
        *,
        check: bool = True,
        env_extra: Mapping[str, str | None] | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            command,
            cwd=self.path,
            env=with_overrides(self.env, env_extra),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout or self.timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(describe(result))
        return result


def installed_distributions(venv: Path) -> dict[str, str]:
    """Canonical name -> version of every distribution installed in ``venv``.

    Read from ``*.dist-info/METADATA`` under ``lib*/python*/site-packages``
    directly, so it works with or without pip in the venv; like pip, not a killed
    pip's ``~orch-….dist-info``. Empty if ``venv`` does not exist.
    """
    parser = email.parser.Parser()
    result: dict[str, str] = {}
    for site in sorted(venv.glob("lib*/python*/site-packages")):
        for metadata in site.glob("[!~]*.dist-info/METADATA"):
            headers = parser.parsestr(metadata.read_text("utf-8"), headersonly=True)
            if headers["Name"] and headers["Version"]:
                result[canonical_name(headers["Name"])] = headers["Version"]
    return result


def normalised(
    result: subprocess.CompletedProcess[str] | Result, *paths: Path
) -> tuple[object, ...]:
    """Exit code and output lines, sorted (Poetry installs in parallel), with the
    given paths replaced by placeholders: a run with the plugin against one without."""
    texts = []
    for text in (result.stdout, result.stderr):
        for number, path in enumerate(paths):
            text = text.replace(str(path), f"<path{number}>")
        texts.append(sorted(text.splitlines()))
    return (result.returncode, *texts)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """Command, exit code, stdout and stderr of a finished process, for messages."""
    args = result.args if isinstance(result.args, list) else [str(result.args)]
    return (
        f"$ {shlex.join(str(a) for a in args)}\n"
        f"exit code {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}"
        f"--- stderr ---\n{result.stderr}"
    )


def render_pyproject(
    index: IndexServer,
    dependencies: Mapping[str, str],
    *,
    torch_cuda: str | None = None,
    package_mode: bool = False,
    name: str = "e2e-project",
) -> str:
    """The pyproject.toml text :meth:`Project.create` writes."""
    deps = "".join(
        f"    {_toml_str(dep)},\n" for dep in pep508_dependencies(dependencies)
    )
    lines = [
        "[project]",
        f"name = {_toml_str(name)}",
        'version = "0.1.0"',
        'requires-python = ">=3.9"',
        f"dependencies = [\n{deps}]",
    ]
    if package_mode:
        lines.append('readme = "README.md"')
    lines += [
        "",
        "[tool.poetry]",
        f"package-mode = {'true' if package_mode else 'false'}",
        "",
        "[[tool.poetry.source]]",
        'name = "fakepypi"',
        f"url = {_toml_str(index.pypi_url)}",
        'priority = "primary"',
    ]
    if package_mode:
        lines += [
            "",
            "[build-system]",
            'requires = ["poetry-core>=2.0,<3"]',
            'build-backend = "poetry.core.masonry.api"',
        ]
    if torch_cuda is not None:
        body = torch_cuda.strip("\n")
        if not re.search(r"^\s*index-url\s*=", body, flags=re.MULTILINE):
            default = _toml_str(index.url + "/whl/{variant}")
            body = f"index-url = {default}\n{body}"
        lines += ["", "[tool.poetry-torch-cuda]", body]
    return "\n".join(lines) + "\n"


def write_stub_executable(
    directory: Path,
    name: str,
    stdout: str,
    exit_code: int = 0,
    *,
    stderr: str = "",
) -> Path:
    """Write an executable ``directory/name`` (e.g. a fake ``nvidia-smi``).

    It prints ``stdout`` and ``stderr`` verbatim and exits with ``exit_code``.
    Each call's arguments are appended as one line to ``directory/name.calls``
    (read them with :func:`stub_calls`). Put ``directory`` first on PATH.
    """
    directory.mkdir(parents=True, exist_ok=True)
    out_file = directory / f"{name}.stdout"
    err_file = directory / f"{name}.stderr"
    calls_file = directory / f"{name}.calls"
    out_file.write_text(stdout)
    err_file.write_text(stderr)
    script = directory / name
    script.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> {shlex.quote(str(calls_file))}\n"
        f"cat {shlex.quote(str(out_file))}\n"
        f"cat {shlex.quote(str(err_file))} >&2\n"
        f"exit {int(exit_code)}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def stub_calls(script: Path) -> list[str]:
    """Argument lines the stub at ``script`` was called with, oldest first."""
    calls = script.with_name(f"{script.name}.calls")
    return calls.read_text().splitlines() if calls.exists() else []
