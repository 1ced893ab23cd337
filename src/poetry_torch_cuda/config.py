"""Read and validate the ``[tool.poetry-torch-cuda]`` table and its environment overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name

from poetry_torch_cuda.errors import ConfigError
from poetry_torch_cuda.urls import mask_url
from poetry_torch_cuda.variants import ALLOWED_VARIANTS
from poetry_torch_cuda.variants import Variant
from poetry_torch_cuda.variants import parse_variant


if TYPE_CHECKING:
    from collections.abc import Mapping


TABLE = "poetry-torch-cuda"
DEFAULT_INDEX_URL = "https://download.pytorch.org/whl/{variant}"
DEFAULT_PACKAGES = ("torch", "torchvision", "torchaudio")

ENV_VARIANT = "POETRY_TORCH_CUDA_VARIANT"
ENV_INDEX_URL = "POETRY_TORCH_CUDA_INDEX_URL"
ENV_DISABLE = "POETRY_TORCH_CUDA_DISABLE"

_KEYS = ("variant", "index-url", "packages")


@dataclass(frozen=True)
class TorchCudaConfig:
    """The validated configuration of one project."""

    variant: Variant
    index_url_template: str = DEFAULT_INDEX_URL
    packages: tuple[Requirement, ...] = field(
        default_factory=lambda: tuple(Requirement(name) for name in DEFAULT_PACKAGES)
    )
    variant_origin: str = "pyproject.toml"

    @property
    def package_names(self) -> frozenset[NormalizedName]:
        """The configured packages' canonical names."""
        return frozenset(canonicalize_name(req.name) for req in self.packages)

    def index_url(self, variant: Variant) -> str:
        """The index that serves ``variant``'s wheels."""
        return self.index_url_template.replace("{variant}", variant.name)


def is_disabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``POETRY_TORCH_CUDA_DISABLE`` turns the plugin off for this run."""
    return environ.get(ENV_DISABLE, "").strip().lower() in ("1", "true", "yes", "on")


def load_config(
    pyproject: Mapping[str, Any], environ: Mapping[str, str] = os.environ
) -> TorchCudaConfig | None:
    """Return the project's configuration, or ``None`` when the plugin has nothing to do.

    ``pyproject`` is the parsed pyproject.toml. Nothing is returned when the
    project has no ``[tool.poetry-torch-cuda]`` table or the plugin is disabled.

    Raises:
        ConfigError: a key, a value or an override is invalid.
    """
    if is_disabled(environ):
        return None
    tool = pyproject.get("tool")
    if not isinstance(tool, dict) or TABLE not in tool:
        return None
    table = tool[TABLE]
    if not isinstance(table, dict):
        raise ConfigError(
            f"[tool.{TABLE}] must be a table, got {_describe(table)}. "
            f'Write it as:\n\n[tool.{TABLE}]\nvariant = "cu129"'
        )
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"[tool.{TABLE}] has unknown key {unknown[0]!r}; "
            f"allowed keys are {', '.join(_KEYS)}."
        )

    variant_value, variant_origin = _override(table, "variant", environ, ENV_VARIANT)
    if variant_value is None:
        raise ConfigError(
            f'[tool.{TABLE}] needs a variant, e.g. variant = "cu129"; '
            f"allowed: {ALLOWED_VARIANTS}."
        )
    variant = _variant(variant_value, variant_origin)

    index_value, index_origin = _override(table, "index-url", environ, ENV_INDEX_URL)
    index_url = (
        DEFAULT_INDEX_URL
        if index_value is None
        else _index_url(index_value, index_origin)
    )
    packages = _packages(table.get("packages", list(DEFAULT_PACKAGES)))
    return TorchCudaConfig(variant, index_url, packages, variant_origin)


def _override(
    table: Mapping[str, Any], key: str, environ: Mapping[str, str], env_name: str
) -> tuple[Any, str]:
    value = environ.get(env_name)
    if value is not None and value.strip():
        return value.strip(), env_name
    return table.get(key), f"[tool.{TABLE}] {key}"


def _variant(value: Any, origin: str) -> Variant:
    if not isinstance(value, str):
        raise ConfigError(
            f"{origin} must be a string, got {_describe(value)}; allowed: {ALLOWED_VARIANTS}."
        )
    try:
        return parse_variant(value)
    except ValueError as error:
        raise ConfigError(f"{origin} = {value!r} is not a variant: {error}.") from None


def _index_url(value: Any, origin: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(
            f"{origin} must be a string URL, got {_describe(value)}; "
            f'e.g. "{DEFAULT_INDEX_URL}".'
        )
    shown = mask_url(value)
    leftover = value.replace("{variant}", "")
    if "{" in leftover or "}" in leftover:
        raise ConfigError(
            f"{origin} = {shown!r} may contain only the placeholder {{variant}}."
        )
    parts = urlsplit(value.replace("{variant}", "cpu"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{origin} = {shown!r} is not an http(s) URL with a host; "
            f'e.g. "{DEFAULT_INDEX_URL}".'
        )
    if any(char.isspace() for char in value):
        raise ConfigError(f"{origin} = {shown!r} contains white space.")
    return value


def _packages(value: Any) -> tuple[Requirement, ...]:
    origin = f"[tool.{TABLE}] packages"
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"{origin} must be a non-empty list of requirement strings, "
            f'got {_describe(value)}; e.g. ["torch", "torchvision>=0.20"].'
        )
    requirements: list[Requirement] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(
                f"{origin} entries must be PEP 508 strings, got {_describe(item)}."
            )
        try:
            requirement = Requirement(item)
        except InvalidRequirement as error:
            raise ConfigError(
                f"{origin} entry {item!r} is not a PEP 508 requirement: {error}."
            ) from None
        if requirement.url:
            raise ConfigError(
                f"{origin} entry {item!r} is a direct URL reference; name a "
                "package and an optional version specifier instead."
            )
        name = canonicalize_name(requirement.name)
        if name in seen:
            raise ConfigError(f"{origin} names {requirement.name!r} twice.")
        seen.add(name)
        requirements.append(requirement)
    return tuple(requirements)


def _describe(value: Any) -> str:
    kind = {dict: "a table", list: "an array", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
    if isinstance(value, (dict, list)):
        return kind
    return f"{kind} {value!r}"
