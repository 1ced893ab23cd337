"""Where the index's credentials come from, and where they may go."""

from __future__ import annotations

from typing import Any

from poetry.config.config import Config

from poetry_torch_cuda.index.client import IndexAuthenticator
from poetry_torch_cuda.index.client import variant_authenticator
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.urls import mask_url
from poetry_torch_cuda.urls import scrub


def test_credentials_are_split_off_the_url_and_never_shown() -> None:
    given = "https://bob:p%40ss%3Aw@mirror.example/whl/cu129"
    auth = IndexAuthenticator(Config())
    url = auth.take_off(given)
    assert url == "https://mirror.example/whl/cu129"
    assert pair(auth, url) == ("bob", "p@ss:w")
    assert "p@ss" not in scrub("pip said: p@ss:w")
    assert mask_url(given) == "https://***@mirror.example/whl/cu129"


def test_url_credentials_follow_poetrys_rules() -> None:
    """Credentials written in an index URL go where Poetry sends a source's:
    the same host (any path, as PEP 503 lets an index put files anywhere),
    never plain http, never another host."""
    known = IndexAuthenticator(Config())
    assert known.take_off("https://mirror.example/whl/cu130") == (
        "https://mirror.example/whl/cu130"
    )
    bare = known.take_off("https://bob:p%40ss@mirror.example/whl/cu129/")
    assert bare == "https://mirror.example/whl/cu129/"
    assert pair(known, "https://mirror.example/whl/cu129/torch/") == ("bob", "p@ss")
    assert pair(known, "https://mirror.example/files/torch.whl") == ("bob", "p@ss")
    assert pair(known, "http://mirror.example/whl/cu129/torch/") == (None, None)
    assert pair(known, "https://other.example/whl/cu129/torch/") == (None, None)
    assert not known.sends_credentials("http://mirror.example/whl/cu129/torch/")
    assert known.withheld("http://mirror.example/whl/cu129/torch/")
    assert not known.withheld("https://mirror.example/whl/cu129/torch/")
    assert not known.withheld("http://other.example/whl/cu129/torch/")


def pair(auth: IndexAuthenticator, url: str) -> tuple[str | None, str | None]:
    found = auth.get_credentials_for_url(url)
    return found.username, found.password


def index_credentials(config: Any, poetry_config: Config) -> tuple[str | None, ...]:
    """The credentials a request to ``config``'s variant index carries."""
    auth = variant_authenticator(config, config.variant, poetry_config)
    url = auth.take_off(config.index_url(config.variant))
    return pair(auth, f"{url}/torch/")


def _config(table: dict[str, Any], sources: list[dict[str, str]]) -> Any:
    pyproject = {"tool": {"poetry-torch-cuda": table, "poetry": {"source": sources}}}
    config = load_config(pyproject, {})
    assert config is not None
    return config


def _poetry_config(auth: dict[str, Any]) -> Config:
    config = Config()
    config.merge({"keyring": {"enabled": False}, "http-basic": auth})
    return config


def test_source_credentials_come_from_poetrys_config() -> None:
    config = _config(
        {"variant": "cu129", "source": "Mirror"},
        [{"name": "mirror", "url": "https://mirror.example/whl/{variant}"}],
    )
    poetry_config = _poetry_config({"mirror": {"username": "u", "password": "pw1"}})
    assert config.index_url(config.variant) == "https://mirror.example/whl/cu129"
    assert config.source == "mirror"
    assert index_credentials(config, poetry_config) == ("u", "pw1")


def test_index_url_borrows_credentials_of_a_source_on_the_same_host() -> None:
    config = _config(
        {"variant": "cpu", "index-url": "https://corp.example/torch/{variant}"},
        [{"name": "corp", "url": "https://corp.example/simple/"}],
    )
    poetry_config = _poetry_config({"corp": {"username": "u", "password": "pw2"}})
    assert index_credentials(config, poetry_config) == ("u", "pw2")


def test_https_credentials_never_go_to_an_http_url() -> None:
    config = _config(
        {
            "variant": "cpu",
            "index-url": "http://corp.example/torch/{variant}",
            "allow-insecure-http": True,
        },
        [{"name": "corp", "url": "https://corp.example/simple/"}],
    )
    poetry_config = _poetry_config({"corp": {"username": "u", "password": "pw3"}})
    assert index_credentials(config, poetry_config) == (None, None)


def test_other_hosts_get_no_credentials() -> None:
    config = _config(
        {"variant": "cpu"}, [{"name": "corp", "url": "https://corp.example/simple/"}]
    )
    poetry_config = _poetry_config({"corp": {"username": "u", "password": "pw4"}})
    assert index_credentials(config, poetry_config) == (None, None)


# -- pip's environment -------------------------------------------------------


def test_a_source_url_with_the_variant_placeholder_keeps_its_own_credentials() -> None:
    """Two sources on one host (Artifactory's repositories): the torch source's
    URL has ``{variant}``, and its pages get its credentials, not those of the
    source declared before it, whichever client asks (checks, ``lock``, installs)."""
    sources = [
        {"name": "pypi-mirror", "url": "https://host.example/api/pypi/pypi/simple"},
        {
            "name": "torch-mirror",
            "url": "https://host.example/api/pypi/pytorch-{variant}/simple",
        },
    ]
    config = _config({"variant": "cu129", "source": "torch-mirror"}, sources)
    poetry_config = _poetry_config(
        {
            "pypi-mirror": {"username": "p", "password": "pw5"},
            "torch-mirror": {"username": "t", "password": "pw6"},
        }
    )
    checks = IndexAuthenticator(poetry_config, config.project_sources)
    install = variant_authenticator(config, config.variant, poetry_config)
    page = "https://host.example/api/pypi/pytorch-cu129/simple/torch/"
    for auth in (checks, install):
        assert pair(auth, page) == ("t", "pw6")
        assert pair(auth, "https://host.example/api/pypi/pypi/simple/x/") == (
            "p",
            "pw5",
        )
