from __future__ import annotations

from typing import Any

import pytest

from poetry_torch_cuda.errors import ConfigError
from poetry_torch_cuda.project.config import DEFAULT_INDEX_URL
from poetry_torch_cuda.project.config import TABLE
from poetry_torch_cuda.project.config import load_config


def pyproject(**table: Any) -> dict[str, Any]:
    return {"tool": {"poetry-torch-cuda": table}}


def test_no_table_means_plugin_does_nothing() -> None:
    assert load_config({"tool": {"poetry": {}}}, {}) is None
    assert load_config({}, {}) is None


def test_defaults() -> None:
    config = load_config(pyproject(variant="cu129"), {})
    assert config is not None
    assert config.variant.name == "cu129"
    assert config.variant.kind == "cuda"
    assert config.index_url(config.variant) == "https://download.pytorch.org/whl/cu129"
    assert config.index_url_template == DEFAULT_INDEX_URL
    assert sorted(config.package_names) == ["torch", "torchaudio", "torchvision"]


def test_custom_index_and_packages() -> None:
    config = load_config(
        pyproject(
            variant="rocm6.4",
            **{"index-url": "https://mirror.example/pt/{variant}/simple"},
            packages=["torch>=2.8", "torchvision; sys_platform == 'linux'"],
        ),
        {},
    )
    assert config is not None
    assert (
        config.index_url(config.variant) == "https://mirror.example/pt/rocm6.4/simple"
    )
    assert [str(req) for req in config.packages] == [
        "torch>=2.8",
        'torchvision; sys_platform == "linux"',
    ]


def test_environment_overrides_win() -> None:
    config = load_config(
        pyproject(variant="cu129"),
        {
            "POETRY_TORCH_CUDA_VARIANT": "cpu",
            "POETRY_TORCH_CUDA_INDEX_URL": "http://127.0.0.1:9/whl/{variant}",
        },
    )
    assert config is not None
    assert config.variant.name == "cpu"
    assert config.variant_origin == "POETRY_TORCH_CUDA_VARIANT"
    assert config.index_url(config.variant) == "http://127.0.0.1:9/whl/cpu"


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_disable_switch(value: str) -> None:
    assert (
        load_config(pyproject(variant="cu129"), {"POETRY_TORCH_CUDA_DISABLE": value})
        is None
    )


@pytest.mark.parametrize(
    "name", ["POETRY_TORCH_CUDA_DISABLE", "POETRY_TORCH_CUDA_VERIFY"]
)
def test_a_switch_set_to_no_switch_is_refused_not_ignored(name: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(pyproject(variant="cu129"), {name: " Disabled "})
    assert str(raised.value) == (
        f"{name} = 'Disabled' is not a switch: use 1 or 0 "
        "(or true/false, yes/no, on/off)."
    )


def test_disable_off_values_keep_plugin_on() -> None:
    assert (
        load_config(pyproject(variant="cu129"), {"POETRY_TORCH_CUDA_DISABLE": "0"})
        is not None
    )


@pytest.mark.parametrize(
    ("table", "env", "needle"),
    [
        ({"variant": "cu12x"}, {}, "variant = 'cu12x' is not a variant"),
        ({"variant": "../cu129"}, {}, "'../cu129' is not a variant"),
        ({"variant": "cu129; rm -rf /"}, {}, "is not a variant"),
        ({"variant": "CU129"}, {}, 'did you mean "cu129"'),
        ({"variant": 129}, {}, "variant must be a string, got an integer 129"),
        ({}, {}, "needs a variant"),
        ({"variant": "cu129", "extra": 1}, {}, "unknown key 'extra'"),
        (
            {"variant": "cu129", "index-url": "ftp://x/{variant}"},
            {},
            "is not an http(s) URL",
        ),
        (
            {"variant": "cu129", "index-url": "https://x/{arch}"},
            {},
            "only the placeholder",
        ),
        (
            {"variant": "cu129", "index-url": ["a"]},
            {},
            "must be a string URL, got an array",
        ),
        ({"variant": "cu129", "packages": "torch"}, {}, "non-empty list"),
        ({"variant": "cu129", "packages": []}, {}, "non-empty list"),
        (
            {"variant": "cu129", "packages": ["torch>>2"]},
            {},
            "not a PEP 508 requirement",
        ),
        (
            {"variant": "cu129", "packages": [3]},
            {},
            "must be PEP 508 strings, got an integer 3",
        ),
        (
            {"variant": "cu129", "packages": ["torch", "Torch"]},
            {},
            "names 'Torch' twice",
        ),
        (
            {"variant": "cu129", "packages": ["torch @ https://x/t.whl"]},
            {},
            "direct URL",
        ),
        (
            {"variant": "cu129"},
            {"POETRY_TORCH_CUDA_VARIANT": "gpu"},
            "POETRY_TORCH_CUDA_VARIANT = 'gpu'",
        ),
        (
            {"variant": "cu129"},
            {"POETRY_TORCH_CUDA_INDEX_URL": "file:///x"},
            "POETRY_TORCH_CUDA_INDEX_URL",
        ),
    ],
)
def test_invalid_input_names_key_value_and_allowed(
    table: dict[str, Any], env: dict[str, str], needle: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(pyproject(**table), env)
    assert needle in str(raised.value)


def test_table_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match="must be a table"):
        load_config({"tool": {"poetry-torch-cuda": "cu129"}}, {})


def test_credentials_in_a_bad_url_are_masked() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(
            pyproject(
                variant="cu129", **{"index-url": "ftp://user:s3cret@host/{variant}"}
            ),
            {},
        )
    assert "s3cret" not in str(raised.value)
    assert "***@host" in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "alice:s3cret@mirror.example/whl/{variant}",  # the scheme forgotten
        "alice:s3c@ret@mirror.example/whl/{variant}",
        "https:alice:s3cret@mirror.example/whl/{variant}",
    ],
)
def test_credentials_in_a_url_without_its_scheme_are_masked(url: str) -> None:
    for table, environ in (
        ({"index-url": url}, {}),
        ({}, {"POETRY_TORCH_CUDA_INDEX_URL": url}),
    ):
        with pytest.raises(ConfigError) as raised:
            load_config(pyproject(variant="cu129", **table), environ)
        assert "s3c" not in str(raised.value)
        assert "ret@" not in str(raised.value)
        assert "***@mirror.example/whl/{variant}" in str(raised.value)


@pytest.mark.parametrize("value", [0, -1, 65, "eight", 2.5, True])
def test_download_concurrency_must_be_a_sensible_whole_number(value: object) -> None:
    pyproject = {"tool": {TABLE: {"variant": "cu129", "download-concurrency": value}}}
    with pytest.raises(
        ConfigError, match="download-concurrency must be a whole number"
    ):
        load_config(pyproject, {})


def test_download_concurrency_defaults_to_sixteen_and_can_be_set() -> None:
    table = {"variant": "cu129"}
    config = load_config({"tool": {TABLE: table}}, {})
    assert config is not None
    assert config.download_concurrency == 16
    config = load_config({"tool": {TABLE: {**table, "download-concurrency": 4}}}, {})
    assert config is not None
    assert config.download_concurrency == 4
