"""`poetry torch-cuda export` for the project shapes teams have (issue 20 #5, #7,
#8, #9): extras select the family as they select Poetry's packages, pylock.toml
installs with pip from a legacy source with an sdist, path dependencies are
refused, plain-http indexes get what pip needs.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.test_torch_cuda_lock import fresh_venv
from tests.e2e.test_torch_cuda_lock import pip_version
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.poetry_project import installed_distributions
from tests.support.poetry_project import isolated_env
from tests.support.processes import captured


if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.catalog import Universe
    from tests.support.index import IndexServer

pytestmark = pytest.mark.e2e

#: A PEP 517 backend in the sdist itself: pip builds it offline (no requirements).
BACKEND = """
import base64, hashlib, os, zipfile

NAME, VERSION = "mysdist", "1.0.0"
META = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist = f"{NAME}-{VERSION}.dist-info"
    files = {
        f"{NAME}.py": b"VALUE = 1\\n",
        f"{dist}/METADATA": META.encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return name
"""


def make_sdist(directory: Path) -> Path:
    """``mysdist-1.0.0.tar.gz`` with PKG-INFO and its in-tree backend."""
    members = {
        "PKG-INFO": "Metadata-Version: 2.2\nName: mysdist\nVersion: 1.0.0\n",
        "pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
            'backend-path = ["."]\n'
        ),
        "backend.py": BACKEND,
    }
    path = directory / "mysdist-1.0.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"mysdist-1.0.0/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def legacy_source(tmp_path: Path) -> Iterator[str]:
    """A PEP 503 source whose page links its files from elsewhere (/files/...),
    as devpi, Nexus, Artifactory and PyPI do."""
    root = tmp_path / "legacy"
    files = root / "files" / "ab" / "cd"
    files.mkdir(parents=True)
    sdist = make_sdist(files)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    page = root / "simple" / "mysdist"
    page.mkdir(parents=True)
    (page / "index.html").write_text(
        f'<html><body><a href="/files/ab/cd/{sdist.name}#sha256={digest}">'
        f"{sdist.name}</a></body></html>"
    )
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


def with_lines(project: Project, *tables: str) -> None:
    project.write_pyproject(project.pyproject_text() + "\n" + "\n".join(tables))


def export(project: Project, *args: str, check: bool = True) -> str:
    result = project.run(
        "torch-cuda", "export", "--variant", "cu129", *args, check=check
    )
    return result.stdout if check else describe(result)


def test_extras_select_the_family_as_they_select_poetrys_packages(
    tmp_path: Path, index: IndexServer
) -> None:
    project = Project.create(tmp_path, index, {"tinyutil": "*"}, 'variant = "cu129"\n')
    with_lines(project, '[project.optional-dependencies]\ngpu = ["torchvision"]\n')
    project.run("lock")
    without = export(project)
    assert "tinyutil==" in without
    assert "torch==" not in without  # the extra is not asked for
    text = export(project, "-E", "gpu")
    assert "torch==2.14.1+cu129" in text
    assert "torchvision==0.29.1+cu129" in text
    assert "extra ==" not in text
    target = tmp_path / "requirements.txt"
    target.write_text(text)
    python = fresh_venv(tmp_path / "venv")
    result = captured(
        [str(python), "-m", "pip", "install", "--require-hashes", "-r", str(target)],
        env=isolated_env(tmp_path),
    )
    assert result.returncode == 0, describe(result)
    installed = installed_distributions(python.parent.parent)
    assert installed["torch"] == "2.14.1+cu129"
    assert installed["nvidia-cublas-cu12"] == "12.9.1.4"


def test_pylock_installs_from_a_legacy_source_with_an_sdist_and_a_caret_python(
    tmp_path: Path, index: IndexServer, legacy_source: str
) -> None:
    deps = {"tinyutil": "*", "mysdist": "*", "torch": "*"}
    project = Project.create(tmp_path, index, deps, 'variant = "cu129"\n')
    with_lines(
        project,
        '[tool.poetry.dependencies]\npython = "^3.9"\n',
        '[[tool.poetry.source]]\nname = "legacy"\n'
        f"url = {json.dumps(legacy_source)}\n"
        'priority = "supplemental"\n',
    )
    project.run("lock")
    target = tmp_path / "pylock.toml"
    export(project, "--format", "pylock.toml", "-o", str(target))
    text = target.read_text()
    assert 'requires-python = ">=3.9,<4.0"' in text
    assert "/files/ab/cd/mysdist-1.0.0.tar.gz" in text
    python = fresh_venv(tmp_path / "venv")
    env = isolated_env(tmp_path)
    if pip_version(python) < (26, 1):
        pytest.skip("this machine's virtualenv seeds a pip older than 26.1")
    result = captured([str(python), "-m", "pip", "install", "-r", str(target)], env=env)
    assert result.returncode == 0, describe(result)
    installed = installed_distributions(python.parent.parent)
    assert installed["mysdist"] == "1.0.0"
    assert installed["torch"] == "2.14.1+cu129"
    assert installed["tinyutil"] == "1.1.0"


def test_pylock_names_the_file_url_its_source_does_not_give(
    tmp_path: Path, index: IndexServer, legacy_source: str
) -> None:
    """pylock.toml reads the file URLs as Poetry does; when the source fails or no
    longer lists a locked file, the export fails naming it and the offline format."""
    deps = {"tinyutil": "*", "mysdist": "*"}
    project = Project.create(tmp_path, index, deps, 'variant = "cu129"\n')
    with_lines(
        project,
        '[[tool.poetry.source]]\nname = "legacy"\n'
        f"url = {json.dumps(legacy_source)}\n"
        'priority = "supplemental"\n',
    )
    project.run("lock")
    args = ("torch-cuda", "export", "--variant", "cu129", "-f", "pylock.toml")
    index.fail_paths["/simple/tinyutil/"] = 500
    failed = run_inprocess(project, *args)
    assert failed.returncode == 1, failed
    assert "pylock.toml needs its files' URLs" in failed.stderr, failed
    assert "the index failed with HTTP 500" in failed.stderr, failed
    assert "export requirements.txt, which needs no URL" in failed.stderr, failed
    assert failed.stdout == "", failed
    index.fail_paths.clear()
    page = tmp_path / "legacy" / "simple" / "mysdist" / "index.html"
    page.write_text("<html><body></body></html>")
    gone = run_inprocess(project, *args)
    assert gone.returncode == 1, gone
    assert "pylock.toml needs the URL of mysdist-1.0.0.tar.gz" in gone.stderr, gone
    assert "does not list it (any more)" in gone.stderr, gone
    assert run_inprocess(project, *args[:4]).returncode == 0  # requirements.txt


def test_a_path_dependency_is_refused_not_written_as_an_index(
    tmp_path: Path, index: IndexServer
) -> None:
    project = Project.create(tmp_path, index, {"torch": "*"}, 'variant = "cu129"\n')
    library = project.path / "mylib"
    (library / "mylib").mkdir(parents=True)
    (library / "mylib" / "__init__.py").write_text("")
    (library / "pyproject.toml").write_text(
        '[project]\nname = "mylib"\nversion = "0.1.0"\n\n[build-system]\n'
        'requires = ["poetry-core>=2.0,<3"]\nbuild-backend = "poetry.core.masonry.api"\n'
    )
    project.write_pyproject(
        project.pyproject_text().replace('"torch",', '"torch",\n    "mylib",')
    )
    with_lines(project, '[tool.poetry.dependencies]\nmylib = { path = "mylib" }\n')
    project.run("lock")
    for fmt in ("requirements.txt", "pylock.toml"):
        result = project.run(
            "torch-cuda", "export", "--variant", "cu129", "-f", fmt, check=False
        )
        assert result.returncode == 1, describe(result)
        assert "cannot export mylib (directory dependency" in result.stderr
        assert "--index-url" not in result.stdout


def test_a_plain_http_index_gets_trusted_host_and_a_password_a_comment(
    tmp_path: Path, index: IndexServer
) -> None:
    host = index.url.split("://", 1)[1].rstrip("/")
    table = (
        f'index-url = "http://ci:s3cret@{host}/whl/{{variant}}"\n'
        'allow-insecure-http = true\nvariant = "cu129"\n'
    )
    project = Project.create(tmp_path, index, {"torch": "*"}, table)
    project.run("lock")
    text = export(project)
    assert f"--trusted-host {host}" in text
    assert f"# {index.whl_url('cu129')} needs credentials" in text
    assert "s3cret" not in text


def test_a_password_protected_index_installs_the_way_its_comment_says(
    tmp_path: Path, index: IndexServer
) -> None:
    """Each way the comment offers to give pip the credentials works: the file's own
    --index-url replaces pip's index URLs, PIP_INDEX_URL / PIP_EXTRA_INDEX_URL and
    the credentials in them included, so pip asked for a password instead."""
    host = index.url.split("://", 1)[1].rstrip("/")
    table = f'index-url = "http://ci:s3cret@{host}/whl/{{variant}}"\nvariant = "cu129"'
    project = Project.create(tmp_path, index, {"torch": "*"}, table + "\n")
    project.run("lock")
    text = export(project)
    (comment,) = [line for line in text.splitlines() if "needs credentials" in line]
    index.require_auth, index.auth_paths = ("ci", "s3cret"), ("/whl/",)
    (tmp_path / "netrc").write_text("machine 127.0.0.1 login ci password s3cret\n")
    secret = index.whl_url("cu129").replace("http://", "http://ci:s3cret@")
    ways = {
        "~/.netrc": {"NETRC": str(tmp_path / "netrc")},
        "PIP_EXTRA_INDEX_URL": {"PIP_EXTRA_INDEX_URL": secret},
    }
    offered = [way for way in ways if way in comment]
    assert offered, comment
    target = tmp_path / "requirements.txt"
    target.write_text(text)
    install = ["-m", "pip", "install", "--require-hashes", "-r", str(target)]
    for way in offered:
        python = fresh_venv(tmp_path / f"venv-{way.strip('~/.')}")
        result = captured(
            [str(python), *install],
            env={**isolated_env(tmp_path), **ways[way], "PIP_NO_INPUT": "1"},
        )
        assert result.returncode == 0, f"{comment}\n{way}: {describe(result)}"


def test_credentials_poetry_takes_from_the_environment_get_the_comment_too(
    tmp_path: Path, index: IndexServer
) -> None:
    """Which index needs credentials is Poetry's decision, the one every request of
    the plugin follows (here ``POETRY_HTTP_BASIC_<SOURCE>_*``, as CI jobs set them),
    not only an ``http-basic`` table in Poetry's config file."""
    project = Project.create(tmp_path, index, {"torch": "*"}, 'variant = "cu129"\n')
    project.run("lock")
    result = run_inprocess(
        project,
        *("torch-cuda", "export", "--variant", "cu129"),
        env_extra={
            "POETRY_HTTP_BASIC_FAKEPYPI_USERNAME": "ci",
            "POETRY_HTTP_BASIC_FAKEPYPI_PASSWORD": "s3cret",
        },
    )
    assert result.returncode == 0, result.stderr
    assert f"# {index.pypi_url.rstrip('/')} needs credentials" in result.stdout
    # Poetry sends a source's credentials to any URL on its host: the variant's too
    assert f"# {index.whl_url('cu129')} needs credentials" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr


def test_credentials_in_a_url_dependency_are_not_written(
    tmp_path: Path, index: IndexServer
) -> None:
    """Poetry keeps a url dependency's URL as written, password and all, in
    poetry.lock; the export writes it without them and says so in a comment."""
    host = index.url.split("://", 1)[1].rstrip("/")
    wheel = "tinyutil/tinyutil-1.0.0-py3-none-any.whl"
    project = Project.create(tmp_path, index, {"torch": "*"}, 'variant = "cu129"\n')
    project.write_pyproject(
        project.pyproject_text().replace('"torch",', '"torch",\n    "tinyutil",')
    )
    with_lines(
        project,
        "[tool.poetry.dependencies]\n"
        f'tinyutil = {{ url = "http://ci:s3cret@{host}/simple/{wheel}" }}\n',
    )
    project.run("lock")
    assert "s3cret" in (project.path / "poetry.lock").read_text()  # Poetry's doing
    for fmt in ("requirements.txt", "pylock.toml"):
        text = export(project, "-f", fmt)
        assert "s3cret" not in text, text
        assert f"http://{host}/simple/{wheel}" in text, text
        assert f"http://{host}/simple/{wheel} needs credentials" in text, text


def pip_installs(
    tmp_path: Path, text: str, fmt: str = "requirements.txt"
) -> dict[str, str]:
    """What ``pip install`` of the exported ``text`` puts into a fresh venv."""
    target = tmp_path / "out" / fmt
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    python = fresh_venv(tmp_path / f"venv-{fmt}")
    args = ["--require-hashes", "-r"] if fmt == "requirements.txt" else ["-r"]
    if fmt == "pylock.toml" and pip_version(python) < (26, 1):
        pytest.skip("this machine's virtualenv seeds a pip older than 26.1")
    result = captured(
        [str(python), "-m", "pip", "install", *args, str(target)],
        env=isolated_env(tmp_path),
    )
    assert result.returncode == 0, describe(result)
    return installed_distributions(python.parent.parent)


def test_torch_locked_at_two_versions_exports_each_under_its_own_marker(
    tmp_path: Path, index: IndexServer
) -> None:
    """poetry.lock locks torch twice under exclusive markers: each build keeps its
    own marker (one shared marker made the other ``<empty>``, which pip refuses)."""
    deps = {
        "torch": "==2.13.0; sys_platform == 'win32'",
        "torch ": "==2.14.1; sys_platform != 'win32'",
    }
    project = Project.create(tmp_path, index, deps, 'variant = "cu129"\n')
    project.run("lock")
    for fmt in ("requirements.txt", "pylock.toml"):
        installed = pip_installs(tmp_path, export(project, "-f", fmt), fmt)
        assert installed["torch"] == "2.14.1+cu129", fmt
        assert installed["nvidia-cublas-cu12"] == "12.9.1.4", fmt


def test_an_unselected_extra_leaves_the_rest_of_a_marker_in_place(
    tmp_path: Path, index: IndexServer
) -> None:
    """torch on Windows, or with extra vision: without -E vision, poetry install
    installs no torch here; the export kept torch everywhere (the marker lost its
    ``sys_platform`` part with the undecided extra)."""
    deps = {"torch": "==2.14.1; sys_platform == 'win32'", "tinyutil": "*"}
    project = Project.create(tmp_path, index, deps, 'variant = "cu129"\n')
    with_lines(project, '[project.optional-dependencies]\nvision = ["torchvision"]\n')
    project.run("lock")
    installed = pip_installs(tmp_path, export(project))
    assert "tinyutil" in installed
    assert "torch" not in installed, installed
    with_vision = pip_installs(tmp_path / "vision", export(project, "-E", "vision"))
    assert with_vision["torchvision"] == "0.29.1+cu129"


def test_the_family_follows_the_selected_markers_of_what_needs_it(
    tmp_path: Path, index: IndexServer
) -> None:
    """torch on Windows in main, everywhere through needs-torch in an optional
    group: the default export leaves torch out here, and so its CUDA wheels (it
    wrote them under torch-cuda.lock's marker, of every group); --with gpu brings
    them all."""
    deps = {"torch": "==2.14.1; sys_platform == 'win32'", "tinyutil": "*"}
    project = Project.create(tmp_path, index, deps, 'variant = "cu129"\n')
    with_lines(
        project,
        "[tool.poetry.group.gpu]\noptional = true\n\n"
        '[tool.poetry.group.gpu.dependencies]\nneeds-torch = "*"\n',
    )
    project.run("lock")
    installed = pip_installs(tmp_path, export(project))
    assert "tinyutil" in installed
    assert not {"torch", "nvidia-cublas-cu12", "nvidia-cudnn-cu12", "triton"} & set(
        installed
    ), installed
    everything = pip_installs(tmp_path / "gpu", export(project, "--with", "gpu"))
    assert everything["torch"] == "2.14.1+cu129"
    assert everything["nvidia-cublas-cu12"] == "12.9.1.4"


def test_a_file_dependency_is_written_as_a_file_url_pip_installs(
    tmp_path: Path, index: IndexServer, universe: Universe
) -> None:
    project = Project.create(tmp_path, index, {"torch": "*"}, 'variant = "cu129"\n')
    libs = project.path / "libs@2"
    libs.mkdir()
    wheel = shutil.copy(universe.wheel("tinyutil", "1.0.0"), libs)
    project.write_pyproject(
        project.pyproject_text().replace('"torch",', '"torch",\n    "tinyutil",')
    )
    relative = f"libs@2/{Path(wheel).name}"
    with_lines(
        project, f'[tool.poetry.dependencies]\ntinyutil = {{ path = "{relative}" }}\n'
    )
    project.run("lock")
    text = export(project)
    installed = pip_installs(tmp_path, text)
    assert installed["tinyutil"] == "1.0.0"
    assert installed["torch"] == "2.14.1+cu129"
    assert f"tinyutil @ {Path(wheel).as_uri()} " in text, text


def test_a_stale_poetry_lock_is_refused_as_poetry_install_refuses_it(
    tmp_path: Path, index: IndexServer
) -> None:
    """pyproject.toml gained a dependency since poetry.lock: poetry install (and
    poetry export) refuse; the export wrote the old lock without it."""
    project = Project.create(tmp_path, index, {"torch": "*"}, 'variant = "cu129"\n')
    project.run("lock")
    project.write_pyproject(
        project.pyproject_text().replace('"torch",', '"torch",\n    "tinyutil",')
    )
    result = run_inprocess(project, "torch-cuda", "export", "--variant", "cu129")
    assert result.returncode == 1, result
    assert "pyproject.toml changed significantly" in result.stderr, result
    assert "Run `poetry lock`" in result.stderr, result
    assert result.stdout == "", result


def test_without_variant_the_export_takes_the_variant_an_install_would(
    tmp_path: Path, index: IndexServer
) -> None:
    """POETRY_TORCH_CUDA_VARIANT=cpu makes poetry install install the CPU build; an
    export without --variant in the same job exported the configured cu129."""
    table = 'variant = "cu129"\nlock-variants = ["cpu"]\n'
    project = Project.create(tmp_path, index, {"torch": "*"}, table)
    project.run("lock")
    cpu = {"POETRY_TORCH_CUDA_VARIANT": "cpu"}
    result = project.run("torch-cuda", "export", env_extra=cpu)
    installed = pip_installs(tmp_path, result.stdout)
    assert installed["torch"] == "2.14.1+cpu", installed
    assert "nvidia-cublas-cu12" not in installed


def test_a_cuda_wheel_the_project_depends_on_itself_is_exported(
    tmp_path: Path, index: IndexServer
) -> None:
    """nvidia-cuda-runtime, a dependency of the project and of PyPI's torch: poetry
    install installs it (the project's own stays Poetry's); the export left it out
    with the rest of the torch family."""
    deps = {"torch": "*", "nvidia-cuda-runtime": "*"}
    project = Project.create(tmp_path, index, deps, 'variant = "cu129"\n')
    project.run("lock")
    installed = pip_installs(tmp_path, export(project))
    assert installed["nvidia-cuda-runtime"] == "13.0.96", installed
    assert installed["torch"] == "2.14.1+cu129"
    assert "nvidia-cublas" not in installed  # PyPI's torch's, not the project's


def test_a_cuda_wheel_the_project_and_the_variants_torch_both_need_is_one_line(
    tmp_path: Path, index: IndexServer
) -> None:
    """nvidia-cudnn-cu12, a dependency of the project and of the cu129 torch: the
    export wrote it (and its nvidia-cublas-cu12) twice, from poetry.lock and from
    torch-cuda.lock (same name, version and hash); once now, as the project's own."""
    deps = {"torch": "*", "nvidia-cudnn-cu12": "*"}
    project = Project.create(tmp_path, index, deps, 'variant = "cu129"\n')
    project.run("lock")
    text = export(project)
    assert text.count("nvidia-cudnn-cu12==") == 1, text
    assert text.count("nvidia-cublas-cu12==") == 1, text  # cudnn's, Poetry's too
    installed = pip_installs(tmp_path, text)
    assert installed["nvidia-cudnn-cu12"] == "9.10.2.21", installed
    assert installed["torch"] == "2.14.1+cu129"


def test_output_into_a_new_folder_is_written_and_an_unwritable_one_is_named(
    tmp_path: Path, index: IndexServer
) -> None:
    """``-o build/requirements.txt`` without build/ said only "[Errno 2] No such
    file or directory"; it is written there (at once, as torch-cuda.lock: a killed
    export leaves no half file pip would half-install). A path that cannot be a
    file fails with one line naming it and the way on, nothing written."""
    project = Project.create(tmp_path, index, {"torch": "*"}, 'variant = "cu129"\n')
    project.run("lock")
    target = tmp_path / "build" / "requirements.txt"
    result = run_inprocess(project, "torch-cuda", "export", "-o", str(target))
    assert result.returncode == 0, result
    assert "torch==2.14.1+cu129" in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["requirements.txt"]
    result = run_inprocess(project, "torch-cuda", "export", "-o", str(tmp_path))
    assert result.returncode == 1, result
    assert f"could not write {tmp_path} (Is a directory)" in result.stderr, result
    assert "Errno" not in result.stderr, result
    target.write_text("kept")  # a read-only file: refused, not renamed over
    target.chmod(0o444)
    result = run_inprocess(project, "torch-cuda", "export", "-o", str(target))
    assert result.returncode == 1, result
    assert f"could not write {target} (it is read-only); nothing was written." in (
        result.stderr
    )
    assert target.read_text() == "kept"


def test_the_written_line_counts_one_package_in_the_singular(
    tmp_path: Path, index: IndexServer
) -> None:
    """``-o`` says how many packages it wrote: "1 package", not "1 packages"."""
    project = Project.create(tmp_path, index, {"tinyutil": "*"}, 'variant = "cpu"\n')
    project.run("lock")
    target = tmp_path / "requirements.txt"
    result = run_inprocess(project, "torch-cuda", "export", "-o", str(target))
    assert result.returncode == 0, result
    assert f"wrote {target} (cpu, 1 package)\n" in result.stderr, result


def test_an_entry_whose_marker_excludes_a_platform_exports_poetrys_build_there(
    tmp_path: Path, index: IndexServer
) -> None:
    """``"torchvision; sys_platform == 'win32'"``: the variant's torchvision on
    Windows, Poetry's elsewhere, as `poetry install` installs it (it left
    torchvision out everywhere but Windows)."""
    entry = 'packages = ["torch", "torchvision; sys_platform == \'win32\'"]'
    deps = {"needs-torch": "*", "torchvision": "*"}
    project = Project.create(tmp_path, index, deps, f'variant = "cu129"\n{entry}\n')
    project.run("lock")
    text = export(project)
    assert 'torchvision==0.29.1+cu129 ; sys_platform == "win32"' in text, text
    installed = pip_installs(tmp_path, text)
    assert installed["torch"] == "2.14.1+cu129"
    assert installed.get("torchvision") == "0.29.1", installed


def test_where_the_torch_entry_excludes_a_platform_poetrys_torch_gets_its_wheels(
    tmp_path: Path, index: IndexServer
) -> None:
    """``"torch; sys_platform == 'win32'"`` (PyPI's Linux torch is a CUDA build
    already): the variant's torch on Windows, Poetry's here, and Poetry's torch
    needs its CUDA wheels from poetry.lock, which the export left out with the
    family: pip refused the file (unpinned nvidia-*) or left torch without them."""
    entry = "packages = [\"torch; sys_platform == 'win32'\"]"
    project = Project.create(
        tmp_path, index, {"torch": "*"}, f'variant = "cu129"\n{entry}\n'
    )
    project.run("lock")
    text = export(project)
    assert 'torch==2.14.1+cu129 ; sys_platform == "win32"' in text, text
    installed = pip_installs(tmp_path, text)
    assert installed["torch"] == "2.14.1", installed
    assert installed["nvidia-cublas"] == "13.0.2.14", installed
    assert installed["nvidia-cudnn-cu13"] == "9.13.0.50", installed
    assert "nvidia-cublas-cu12" not in installed, installed


def test_a_torch_pinned_for_macos_alone_is_exported_as_pypis_there(
    tmp_path: Path, index: IndexServer
) -> None:
    """torch 2.13.0 for darwin beside 2.14.1 elsewhere: the lock leaves the Mac's
    torch to PyPI (the variant has no builds there), so the export writes PyPI's
    with its marker and poetry.lock's hashes; it wrote no torch for darwin at all."""
    deps = {
        "torch": "==2.13.0; sys_platform == 'darwin'",
        "torch ": "==2.14.1; sys_platform != 'darwin'",
    }
    project = Project.create(tmp_path, index, deps, 'variant = "cu129"\n')
    project.run("lock")
    result = run_inprocess(project, "torch-cuda", "export", "--variant", "cu129")
    assert result.returncode == 0, result
    mac = 'torch==2.13.0 ; sys_platform == "darwin" \\\n    --hash=sha256:'
    assert mac in result.stdout, result.stdout
    assert 'torch==2.14.1+cu129 ; sys_platform != "darwin"' in result.stdout
    assert pip_installs(tmp_path, result.stdout)["torch"] == "2.14.1+cu129"


def test_a_sys_platform_marker_gets_no_platform_system_beside_it(
    tmp_path: Path, index: IndexServer
) -> None:
    """torch for ``sys_platform == 'linux'``: the export wrote the variant's torch
    under ``sys_platform == "linux" and platform_system != "Darwin"`` (Linux is no
    Mac) and PyPI's under ``sys_platform == "linux" and platform_system == "Darwin"``,
    a platform that does not exist. The marker is the dependency's, no more."""
    from packaging.markers import default_environment
    from packaging.pylock import Pylock

    deps = {"torch": "==2.14.1; sys_platform == 'linux'", "tinyutil": "*"}
    project = Project.create(tmp_path, index, deps, 'variant = "cu129"\n')
    project.run("lock")
    text = export(project)
    assert 'torch==2.14.1+cu129 ; sys_platform == "linux" \\\n' in text, text
    assert "torch==2.14.1 ;" not in text, text  # no PyPI torch for a Linux Mac
    assert pip_installs(tmp_path, text)["torch"] == "2.14.1+cu129"
    pylock = export(project, "-f", "pylock.toml")
    lock = Pylock.from_dict(tomllib.loads(pylock))
    torch = next(p for p in lock.packages if p.name == "torch")
    assert (str(torch.version), str(torch.marker)) == (
        "2.14.1+cu129",
        'sys_platform == "linux"',
    )
    for system in (("linux", "Linux"), ("darwin", "Darwin"), ("win32", "Windows")):
        env = {
            **default_environment(),
            **dict(zip(("sys_platform", "platform_system"), system)),
        }
        chosen = {p.name: str(p.version) for p, _ in lock.select(environment=env)}
        assert chosen.get("torch") == ("2.14.1+cu129" if system[0] == "linux" else None)
    assert pip_installs(tmp_path / "pylock", pylock, "pylock.toml")["torch"] == (
        "2.14.1+cu129"
    )
