"""``diagnose`` over pip's output: pip installs local, verified files (``--no-index
--no-deps``), so what fails is a damaged file, the disk, or pip's own words."""

from __future__ import annotations

from poetry_torch_cuda.install.pip import diagnose
from poetry_torch_cuda.install.pip import pip_reason


def test_a_damaged_local_file_is_named_not_the_mirror() -> None:
    """pip checked a file of Poetry's artifact cache: the cause is local."""
    lines = [
        "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.",
        (
            "    torch==2.14.1+cu130 from file:///cache/artifacts/ab/"
            "torch-2.14.1%2Bcu130-py3-none-any.whl (from -r /dev/stdin (line 1)):"
        ),
        "        Expected sha256 00",
        "             Got        11",
    ]
    what, fix = diagnose(lines)
    assert "/cache/artifacts/ab/torch-2.14.1+cu130-py3-none-any.whl" in what
    assert "does not match its sha256" in what
    assert "(1)))" not in what
    assert "mirror" not in what + fix
    assert "remove it" in fix


def test_full_disk_quotes_the_os_error() -> None:
    lines = [
        (
            "ERROR: Could not install packages due to an OSError: [Errno 28] "
            "No space left on device"
        )
    ]
    what, fix = diagnose(lines)
    assert what.startswith("pip could not write to disk (Could not install")
    assert "Free space" in fix


def test_other_failures_quote_pips_error_lines() -> None:
    lines = ["Processing /tmp/x/torch.whl", "ERROR: something odd happened"]
    what, fix = diagnose(lines)
    assert what == "ERROR: something odd happened"
    assert "-v to see all of pip's output" in fix
    assert pip_reason([]) == "pip gave no reason"
