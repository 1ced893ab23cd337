"""The environment the plugin's pip runs with: timeouts, prompts, trusted hosts."""

from __future__ import annotations

from poetry_torch_cuda.index.credentials import IndexAccess
from poetry_torch_cuda.install.pip import DEFAULT_RETRIES
from poetry_torch_cuda.install.pip import DEFAULT_TIMEOUT
from poetry_torch_cuda.install.pip import pip_environment
from poetry_torch_cuda.install.pip import pip_timeout


def test_pip_gets_the_index_timeouts_and_no_prompts() -> None:
    access = IndexAccess("https://mirror.example/whl", "u", "pw")
    env = pip_environment({"PATH": "/bin"}, access)
    assert env["PIP_INDEX_URL"] == "https://u:pw@mirror.example/whl"
    assert env["PIP_NO_INPUT"] == "1"
    assert env["PIP_TIMEOUT"] == str(DEFAULT_TIMEOUT)
    assert env["PIP_RETRIES"] == str(DEFAULT_RETRIES)
    assert "PIP_TRUSTED_HOST" not in env
    assert pip_timeout(env) == DEFAULT_TIMEOUT


def test_pips_own_variables_win_over_the_defaults() -> None:
    env = pip_environment({"PIP_DEFAULT_TIMEOUT": "180", "PIP_RETRIES": "7"})
    assert "PIP_TIMEOUT" not in env
    assert env["PIP_RETRIES"] == "7"
    assert pip_timeout(env) == 180


def test_opted_in_http_host_is_trusted_in_addition_to_the_users() -> None:
    access = IndexAccess.from_url("http://mirror.example/whl", allow_insecure_http=True)
    env = pip_environment({"PIP_TRUSTED_HOST": "other.example"}, access)
    assert env["PIP_TRUSTED_HOST"] == "other.example mirror.example"


# -- the environment lock ----------------------------------------------------
