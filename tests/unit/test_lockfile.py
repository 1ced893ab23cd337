"""torch-cuda.lock's model, writer and reader: deterministic, fast, strict."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from poetry_torch_cuda.lockfile.model import LockedDependency
from poetry_torch_cuda.lockfile.model import LockedPackage
from poetry_torch_cuda.lockfile.model import LockFileError
from poetry_torch_cuda.lockfile.model import LockInputs
from poetry_torch_cuda.lockfile.model import TorchCudaLock
from poetry_torch_cuda.lockfile.model import VariantLock
from poetry_torch_cuda.lockfile.model import read_lock
from poetry_torch_cuda.lockfile.model import recorded_hashes
from poetry_torch_cuda.lockfile.model import write_lock
from poetry_torch_cuda.lockfile.service import differences


if TYPE_CHECKING:
    from pathlib import Path

LINUX = 'platform_system == "Linux"'
A, B, C = "a" * 64, "b" * 64, "c" * 64


def inputs(**changes: object) -> LockInputs:
    values: dict[str, object] = {
        "content_hash": "f" * 64,
        "locked": (("torch", ("2.14.1",)), ("torchvision", ("0.29.1",))),
        "packages": ("torch", "torchvision"),
        "lock_variants": ("cu129",),
    }
    values.update(changes)
    return LockInputs(**values)  # type: ignore[arg-type]


def sample(variants: int = 1, files: int = 1) -> TorchCudaLock:
    entries = []
    for number in range(variants):
        name = f"cu12{9 - number}"
        cublas = LockedPackage(
            "nvidia-cublas-cu12",  # type: ignore[arg-type]
            "12.9.1.4",
            LINUX,
            files=tuple(
                (
                    f"nvidia_cublas_cu12-12.9.1.4-py3-none-manylinux_{i}.whl",
                    f"n/{i}.whl",
                    A,
                    10,
                )
                for i in range(files)
            ),
        )
        torch = LockedPackage(
            "torch",  # type: ignore[arg-type]
            f"2.14.1+{name}",
            "",
            (LockedDependency("nvidia-cublas-cu12", "12.9.1.4", LINUX),),  # type: ignore[arg-type]
            tuple(
                (
                    f"torch-2.14.1+{name}-cp3{i}-cp3{i}-linux_x86_64.whl",
                    f"torch/t{i}.whl",
                    B,
                    None,
                )
                for i in range(files)
            ),
        )
        entries.append(
            VariantLock(
                name, f"https://download.pytorch.org/whl/{name}", (torch, cublas)
            )
        )
    return TorchCudaLock(inputs(), tuple(entries))


def test_writing_is_deterministic_and_reads_back(tmp_path: Path) -> None:
    lock = sample(2)
    shuffled = TorchCudaLock(lock.inputs, tuple(reversed(lock.variants)))
    path = tmp_path / "torch-cuda.lock"
    assert write_lock(path, lock) is True
    assert write_lock(path, shuffled) is False  # same bytes: not rewritten
    again = read_lock(path)
    assert again is not None
    assert again.inputs == lock.inputs

    def packages(lock: TorchCudaLock) -> dict[str, set[LockedPackage]]:
        return {v.name: set(v.packages) for v in lock.variants}

    assert packages(again) == packages(lock)


def test_missing_file_reads_as_none(tmp_path: Path) -> None:
    assert read_lock(tmp_path / "torch-cuda.lock") is None
    assert read_lock(tmp_path / "torch-cuda.lock") is None


@pytest.mark.parametrize(
    "text",
    ["<<<<<<< HEAD\n", "[metadata]\nlock-version = '9.0'\n", "[metadata]\nfoo = 1\n"],
)
def test_broken_file_is_one_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "torch-cuda.lock"
    path.write_text(text)
    with pytest.raises(LockFileError, match="torch-cuda lock"):
        read_lock(path)


def test_a_damaged_lock_names_the_way_on_that_works_for_it(tmp_path: Path) -> None:
    """With no sha256 left to read, re-locking refuses (nothing to compare the index
    with): the reader names the ways that work, not `poetry torch-cuda lock`."""
    path = tmp_path / "torch-cuda.lock"
    path.write_text("<<<<<<< HEAD\n")
    with pytest.raises(LockFileError) as raised:
        read_lock(path)
    assert "run `poetry torch-cuda lock` to write it again" not in str(raised.value)
    assert "`git checkout -- torch-cuda.lock`" in str(raised.value)
    assert "`poetry torch-cuda lock --accept-drift`" in str(raised.value)
    write_lock(path, sample())  # a hash to compare: re-locking works
    path.write_text("<<<<<<< HEAD\n" + path.read_text())
    with pytest.raises(LockFileError, match="run `poetry torch-cuda lock` to write"):
        read_lock(path)


def test_a_file_not_in_utf_8_is_one_clear_error(tmp_path: Path) -> None:
    """An editor that saved the lock as UTF-16 (PowerShell's ``>``) broke it."""
    path = tmp_path / "torch-cuda.lock"
    write_lock(path, sample())
    path.write_bytes(path.read_text().encode("utf-16"))
    with pytest.raises(LockFileError, match=r"not UTF-8.*torch-cuda lock"):
        read_lock(path)


@pytest.mark.parametrize(
    ("locked", "damaged"),
    [
        ('name = "cu129"\nindex-url', 'name = "cu12x"\nindex-url'),
        ('name = "cu129"\nindex-url', 'name = "auto"\nindex-url'),
        ("size = 10", 'size = "ten"'),
        ("size = 10", "size = -10"),
        ("size = 10", "size = 10.5"),
        ("size = 10", "size = true"),
        ('packages = ["torch", "torchvision"]', 'packages = "torch"'),
        ('lock-variants = ["cu129"]', 'lock-variants = "cu129"'),
        ('torch = ["2.14.1"]', 'torch = "2.14.1"'),
        ('hash = "sha256:a', 'hash = "sha256:z'),
        ('hash = "sha256:aaaa', 'hash = "sha256:'),
        ('markers = "platform_system', 'markers = "platform_system ~'),
        ('4"\nmarkers = "platform_system', '4"\nmarkers = "platform_system ~'),
    ],
)
def test_a_damaged_value_is_one_clear_error(
    tmp_path: Path, locked: str, damaged: str
) -> None:
    """A hand edit or a bad merge (a variant's name that is no variant, a sha256 that
    is not one, a size that is no size, a string for a list, a marker that does not
    parse): every command, ``lock --check``
    included, says how to get a good file instead of failing on the value later."""
    path = tmp_path / "torch-cuda.lock"
    write_lock(path, sample())
    path.write_text(path.read_text().replace(locked, damaged))
    with pytest.raises(LockFileError, match="torch-cuda lock"):
        read_lock(path)


def test_a_lock_saved_with_a_byte_order_mark_reads_as_without(tmp_path: Path) -> None:
    """Notepad saves UTF-8 with a BOM: the reader called that "not valid TOML (...; a
    merge conflict?)". A BOM is no part of the text (TOML is UTF-8): it reads."""
    path = tmp_path / "torch-cuda.lock"
    write_lock(path, sample())
    plain = read_lock(path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_lock(path) == plain


@pytest.mark.parametrize(
    ("locked", "damaged", "part"),
    [
        ("[metadata", "[metadatax", "the file has no metadata"),
        ("content-hash =", "contenthash =", "[metadata] has no content-hash"),
        (
            'packages = ["torch", "torchvision"]',
            'packages = "torch"',
            "[metadata] packages",
        ),
        ('torch = ["2.14.1"]', 'torch = "2.14.1"', "[metadata] locked"),
        ('lock-version = "1.0"', 'lock-version = "one"', "[metadata] lock-version"),
        ('name = "cu129"\nindex-url', 'name = "cu12x"\nindex-url', "[[variant]] cu12x"),
        ("size = 10", 'size = "ten"', "[[variant]] cu129"),
        ('index-url = "', 'index-urlx = "', "[[variant]] cu129 has no index-url"),
    ],
)
def test_an_unreadable_lock_names_the_part_that_is_bad(
    tmp_path: Path, locked: str, damaged: str, part: str
) -> None:
    """Its "not a torch-cuda.lock this plugin can read" said nothing of where: it names
    the table, entry or key, in the one wording."""
    path = tmp_path / "torch-cuda.lock"
    write_lock(path, sample())
    path.write_text(path.read_text().replace(locked, damaged))
    with pytest.raises(LockFileError) as raised:
        read_lock(path)
    said = str(raised.value)
    assert said.startswith(
        "torch-cuda.lock is not a torch-cuda.lock this plugin can read ("
    )
    assert f"({part}" in said, said


def test_an_entry_twice_is_one_clear_error(tmp_path: Path) -> None:
    """A merge that kept both sides' ``[[variant]]`` blocks is valid TOML, and
    which side an install would take is nobody's decision."""
    path = tmp_path / "torch-cuda.lock"
    write_lock(path, sample())
    text = path.read_text()
    entry = text[text.index("[[variant]]") :]
    path.write_text(text + "\n" + entry)
    with pytest.raises(LockFileError, match="torch-cuda lock"):
        read_lock(path)
    package = entry[entry.index("[[variant.package]]") :]
    path.write_text(text + "\n" + package)
    with pytest.raises(LockFileError, match="torch-cuda lock"):
        read_lock(path)
    # The same file twice in one package's files: which entry pip gets is nobody's decision.
    line = text[
        text.index("    {file = ") : text.index("\n", text.index("    {file = ")) + 1
    ]
    path.write_text(text.replace(line, line + line))
    with pytest.raises(LockFileError, match="torch-cuda lock"):
        read_lock(path)


def test_closure_follows_markers_and_resolves_urls() -> None:
    variant = sample().variants[0]
    linux = variant.closure([("torch", "2.14.1+cu129")], {"platform_system": "Linux"})
    assert [p.name for p in linux] == ["nvidia-cublas-cu12", "torch"]
    windows = variant.closure([("torch", None)], {"platform_system": "Windows"})
    assert [p.name for p in windows] == ["torch"]
    (file,) = variant.files(linux[1])
    assert file.url == "https://download.pytorch.org/whl/cu129/torch/t0.whl"
    assert file.sha256 == B
    with pytest.raises(KeyError):
        variant.closure([("torchaudio", None)], {})


def test_differences_name_what_moved() -> None:
    recorded = inputs()
    assert differences(recorded, inputs()) == []
    moved = inputs(content_hash="0" * 64, locked=(("torch", ("2.13.0",)),))
    reasons = differences(recorded, moved)
    assert "content-hash" in reasons[0]
    assert "torch 2.13.0" in reasons[1]
    more = inputs(lock_variants=("cu129", "cu130"))
    assert "the variants to lock are now" in differences(recorded, more, whole=True)[-1]
    # An install of cu129 does not care about lock-variants.
    assert differences(recorded, more) == []


def test_damage_after_the_head_is_an_error_and_hashes_are_recovered(
    tmp_path: Path,
) -> None:
    """One reader parses the whole file: damage in a variant's entries is an
    error everywhere; the drift sentinel still recovers what each line records."""
    path = tmp_path / "torch-cuda.lock"
    write_lock(path, sample())
    recorded = recorded_hashes(path)
    text = path.read_text()
    path.write_text(
        text.replace("[[variant.package]]", "<<<<<<< HEAD\n[[variant.package]]", 1)
    )
    with pytest.raises(LockFileError, match="not valid TOML"):
        read_lock(path)
    assert recorded and recorded_hashes(path) == recorded
    assert recorded[("cu129", "torch-2.14.1+cu129-cp30-cp30-linux_x86_64.whl")] == {B}


def table(**values: object) -> dict[str, object]:
    return {"tool": {"poetry-torch-cuda": {"variant": "cu129", **values}}}


def test_lock_variants_key() -> None:
    from poetry_torch_cuda.project.config import load_config

    config = load_config(table(**{"lock-variants": ["cu130", "cpu", "auto"]}), {})
    assert config is not None
    assert config.lock_variants == ("auto", "cpu", "cu130")
    default = load_config(table(), {})
    assert default is not None
    assert default.lock_variants == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cu129", "must be a non-empty list of variants"),
        ([], "must be a non-empty list of variants"),
        (["cu12x"], "lock-variants entry = 'cu12x' is not a variant"),
        (["cu129", "cu129"], "names 'cu129' twice"),
        ([129], "lock-variants entry must be a string, got an integer 129"),
        ([["cu129"]], "lock-variants entry must be a string, got an array"),
    ],
)
def test_lock_variants_rejects_bad_values(value: object, message: str) -> None:
    from poetry_torch_cuda.errors import ConfigError
    from poetry_torch_cuda.project.config import load_config

    with pytest.raises(ConfigError, match=message):
        load_config(table(**{"lock-variants": value}), {})


def test_poetry_export_warns_once_in_a_project_with_the_table() -> None:
    from types import SimpleNamespace

    from cleo.io.buffered_io import BufferedIO

    from poetry_torch_cuda.plugins import TorchCudaPlugin

    def event(name: str, data: dict[str, object]) -> SimpleNamespace:
        pyproject = SimpleNamespace(data=data)
        command = SimpleNamespace(
            name=name, poetry=SimpleNamespace(pyproject=pyproject)
        )
        return SimpleNamespace(command=command, io=BufferedIO())

    warned = event("export", table())
    TorchCudaPlugin()._on_command(warned)  # type: ignore[arg-type]
    text = warned.io.fetch_error()
    assert text.count("\n") == 1
    assert "poetry torch-cuda export --variant" in text
    for quiet in (event("export", {"tool": {}}), event("install", table())):
        TorchCudaPlugin()._on_command(quiet)  # type: ignore[arg-type]
        assert quiet.io.fetch_error() == ""


def test_a_sha256_written_in_uppercase_reads_lowercase(tmp_path: Path) -> None:
    """A hash in any case (a hand edit, another tool) is the same hash: the reader
    and the drift sentinel give it lowercase, as the index client and pip do."""
    path = tmp_path / "torch-cuda.lock"
    write_lock(path, sample())
    path.write_text(path.read_text().replace(B, B.upper()))
    lock = read_lock(path)
    assert lock is not None
    assert {f[2] for p in lock.variants[0].packages for f in p.files} == {A, B}
    name = "torch-2.14.1+cu129-cp30-cp30-linux_x86_64.whl"
    assert recorded_hashes(path)[("cu129", name)] == {B}


def test_a_newer_lock_version_is_said_before_what_the_newer_format_lacks(
    tmp_path: Path,
) -> None:
    """A newer plugin's lock may lack keys this one reads: its lock-version is said."""
    path = tmp_path / "torch-cuda.lock"
    write_lock(path, sample())
    text = path.read_text().replace('"1.0"', '"2.0"', 1)
    path.write_text(text.replace("content-hash =", "digest ="))
    with pytest.raises(
        LockFileError, match=r"lock-version 2\.0; .* Upgrade the plugin"
    ):
        read_lock(path)
