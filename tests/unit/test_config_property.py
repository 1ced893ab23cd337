"""Property: the config parser returns a valid config, ``None``, or raises ConfigError.

Never anything else, whatever the pyproject.toml data and the environment hold.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlsplit

from hypothesis import event
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from poetry_torch_cuda.errors import ConfigError
from poetry_torch_cuda.project.config import ENV_DISABLE
from poetry_torch_cuda.project.config import ENV_INDEX_URL
from poetry_torch_cuda.project.config import ENV_VARIANT
from poetry_torch_cuda.project.config import TorchCudaConfig
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.variants import parse_variant
from poetry_torch_cuda.urls import is_loopback


KEYS = ["variant", "index-url", "source", "packages", "allow-insecure-http"]

scalars = (
    st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.datetimes()
    | st.dates()
    | st.times()
    | st.none()
)
anything = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
variants = st.sampled_from(
    [
        "cu129",
        "cu130",
        "cu118",
        "cpu",
        "xpu",
        "auto",
        "rocm6.4",
        "rocm6.4.1",
        "CU129",
        " cu129",
        "cu12x",
        "../cu129",
        "cu129; rm -rf /",
        "$(reboot)",
        "cu1290",
        "rocm",
        "",
    ]
)
urls = st.sampled_from(
    [
        "https://download.pytorch.org/whl/{variant}",
        "https://user:p%40ss@mirror.example/{variant}/simple",
        "http://127.0.0.1:8080/whl/{variant}",
        "http://localhost/{variant}",
        "http://[::1]:9/{variant}",
        "http://mirror.example/{variant}",
        "http://[::1",
        "https://mirror.example:99999/x",
        "file:///etc/passwd",
        "ftp://mirror.example/{variant}",
        "javascript:alert(1)",
        "https://x.example/{variant}/{os}",
        "https://x.example/{",
        "https:///nohost",
        "https://mirror.example/a b",
        "https://mirror.example/\x00",
        "",
    ]
) | st.text(max_size=40)
requirements = st.sampled_from(
    [
        "torch",
        "torch>=2.8",
        "torchvision; sys_platform == 'linux'",
        "torch[opt]==2.8.0",
        "torch>>1",
        "torch; rm -rf /",
        "torch @ https://example.com/t.whl",
        "",
        "Torch",
    ]
) | st.text(max_size=20)
sources = st.lists(
    st.fixed_dictionaries({}, optional={"name": st.text(max_size=12), "url": urls})
    | st.fixed_dictionaries(
        {"name": st.sampled_from(["mirror", "Mirror"]), "url": urls}
    )
    | anything,
    max_size=3,
)


@st.composite
def tables(draw: st.DrawFn) -> Any:
    """Mostly tables with known keys and plausible or hostile values, sometimes junk."""
    if draw(st.integers(0, 9)) == 0:
        return draw(anything)
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True))
    if draw(st.integers(0, 3)):
        keys = ["variant", *[key for key in keys if key != "variant"]]
    table: dict[str, Any] = {}
    for key in keys:
        plausible = {
            "variant": variants,
            "index-url": urls,
            "source": st.sampled_from(["mirror", "MIRROR", "nope", ""]),
            "packages": st.lists(requirements, max_size=3),
            "allow-insecure-http": st.booleans(),
        }[key]
        table[key] = draw(anything) if draw(st.integers(0, 5)) == 0 else draw(plausible)
    if draw(st.integers(0, 5)) == 0:
        table[draw(st.text(max_size=8))] = draw(anything)
    return table


@st.composite
def pyprojects(draw: st.DrawFn) -> Any:
    """A parsed TOML document (always a table); anything may be inside it."""
    shape = draw(st.integers(0, 9))
    if shape == 0:
        return draw(st.dictionaries(st.text(max_size=8), anything, max_size=3))
    if shape == 1:
        return {"tool": draw(anything)}
    tool: dict[str, Any] = {"poetry-torch-cuda": draw(tables())}
    if draw(st.booleans()):
        tool["poetry"] = {"source": draw(sources | anything)}
    return {"tool": tool}


environs = st.fixed_dictionaries(
    {},
    optional={
        ENV_VARIANT: variants | st.text(max_size=12),
        ENV_INDEX_URL: urls,
        ENV_DISABLE: st.sampled_from(["", "0", "1", "yes", "no"]),
    },
)


@settings(max_examples=1500)
@given(pyproject=pyprojects(), environ=environs)
def test_parser_returns_a_valid_config_or_raises_config_error(
    pyproject: Any, environ: dict[str, str]
) -> None:
    try:
        config = load_config(pyproject, environ)
    except ConfigError as error:
        event("ConfigError")
        message = str(error)
        assert message.strip()
        assert "\x00" not in message
        return
    event("no table" if config is None else "valid config")
    if config is not None:
        assert_valid(config)


def assert_valid(config: TorchCudaConfig) -> None:
    """What every returned config guarantees to the rest of the plugin."""
    assert parse_variant(config.variant.name) == config.variant
    url = config.index_url(config.variant)
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https")
    assert parts.hostname
    assert "{" not in url and "}" not in url
    assert not any(char.isspace() for char in url)
    if parts.scheme == "http" and not config.allow_insecure_http:
        assert is_loopback(parts.hostname)
    assert config.packages
    names = [Requirement(str(req)).name.lower() for req in config.packages]
    assert len(set(names)) == len(names)
    assert all(req.url is None for req in config.packages)
    if config.source is not None:
        assert config.source in dict(config.project_sources)
    assert isinstance(config.allow_insecure_http, bool)


def test_dates_are_described_not_crashed_on() -> None:
    table = {"variant": datetime.date(2026, 1, 1)}
    try:
        load_config({"tool": {"poetry-torch-cuda": table}}, {})
    except ConfigError as error:
        assert "a date/time" in str(error)
