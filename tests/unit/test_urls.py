"""URL hygiene: credentials scrubbed from text, loopback hosts."""

from __future__ import annotations

import pytest

from poetry_torch_cuda.urls import is_loopback
from poetry_torch_cuda.urls import register_secret
from poetry_torch_cuda.urls import scrub


def test_scrub_hides_url_credentials_and_registered_secrets() -> None:
    register_secret("hunter2/%")
    text = (
        "Looking in indexes: https://bob:hunter2%2F%25@mirror.example/x\n"
        "ERROR: token hunter2/% rejected; see ftp://anon@host/"
    )
    assert scrub(text) == (
        "Looking in indexes: https://***@mirror.example/x\n"
        "ERROR: token *** rejected; see ftp://***@host/"
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("mirror.localhost", True),
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
        ("mirror.example", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, expected: bool) -> None:
    assert is_loopback(host) is expected


# -- credentials ---------------------------------------------------------------
