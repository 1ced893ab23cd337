"""Read and validate the ``[tool.poetry-torch-cuda]`` table and its environment overrides."""

from __future__ import annotations

import difflib
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
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.errors import describe_value as _describe
from poetry_torch_cuda.project.targets import Target
from poetry_torch_cuda.project.targets import parse_targets
from poetry_torch_cuda.project.variants import ALLOWED_VARIANTS
from poetry_torch_cuda.project.variants import Variant
from poetry_torch_cuda.project.variants import not_a_variant
from poetry_torch_cuda.project.variants import parse_variant
from poetry_torch_cuda.urls import is_loopback
from poetry_torch_cuda.urls import mask_url


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Mapping
    from pathlib import Path


TABLE = "poetry-torch-cuda"
DEFAULT_INDEX_URL = "https://download.pytorch.org/whl/{variant}"
DEFAULT_PACKAGES = ("torch", "torchvision", "torchaudio")

ENV_VARIANT = "POETRY_TORCH_CUDA_VARIANT"
ENV_INDEX_URL = "POETRY_TORCH_CUDA_INDEX_URL"
ENV_DISABLE = "POETRY_TORCH_CUDA_DISABLE"
ENV_VERIFY = "POETRY_TORCH_CUDA_VERIFY"
DEFAULT_VERIFY_TIMEOUT = 120.0
#: The next steps when the variant's index cannot be reached from this machine.
UNREACHABLE_HINT = (
    f"If the index cannot be reached from here, use a mirror: index-url or source "
    f"in [tool.{TABLE}], or {ENV_INDEX_URL} for one run; behind a proxy, set "
    "HTTPS_PROXY (and NO_PROXY) as for pip."
)

_KEYS = (
    "variant",
    "index-url",
    "source",
    "packages",
    "allow-insecure-http",
    "targets",
    "verify",
    "verify-timeout",
    "lock-variants",
    "download-concurrency",
    "keep-previous-build",
)
#: Connections at once for the variant's files, unless download-concurrency says otherwise.
DEFAULT_DOWNLOAD_CONCURRENCY = 16
MAX_DOWNLOAD_CONCURRENCY = 64


@dataclass(frozen=True)
class TorchCudaConfig:
    """The validated configuration of one project."""

    variant: Variant
    index_url_template: str = DEFAULT_INDEX_URL
    packages: tuple[Requirement, ...] = field(
        default_factory=lambda: tuple(Requirement(name) for name in DEFAULT_PACKAGES)
    )
    variant_origin: str = "pyproject.toml"
    #: The ``[[tool.poetry.source]]`` whose URL is the index, when ``source`` is set.
    source: str | None = None
    allow_insecure_http: bool = False
    #: The project's Poetry sources as ``(name, url)``, for their credentials.
    project_sources: tuple[tuple[str, str], ...] = ()
    #: The machines the project must run on (``[[...targets]]``).
    targets: tuple[Target, ...] = ()
    #: Verify the build after every change (``verify``, ``POETRY_TORCH_CUDA_VERIFY``).
    verify: bool = True
    #: Seconds the verification's child process may take (``verify-timeout``).
    verify_timeout: float = DEFAULT_VERIFY_TIMEOUT
    #: ``lock-variants``: the variants torch-cuda.lock holds (empty: the default).
    lock_variants: tuple[str, ...] = ()
    #: How many connections fetch the variant's files at once.
    download_concurrency: int = DEFAULT_DOWNLOAD_CONCURRENCY
    #: Keep the replaced build's files in the environment for a switch back.
    keep_previous_build: bool = True

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


def refuse_if_disabled(environ: Mapping[str, str] = os.environ) -> None:
    """The one answer of every ``torch-cuda`` command while the plugin is disabled.

    Raises:
        TorchCudaError: ``POETRY_TORCH_CUDA_DISABLE`` is set.
    """
    if is_disabled(environ):
        raise TorchCudaError(
            f"poetry-torch-cuda is disabled by {ENV_DISABLE}={environ[ENV_DISABLE]}; "
            "unset it to use `poetry torch-cuda`."
        )


def current_config(
    path: Path, environ: Mapping[str, str] = os.environ
) -> TorchCudaConfig | None:
    """The configuration pyproject.toml at ``path`` gives now (another run may
    have changed it while this one waited for the environment lock).

    Raises:
        ConfigError: the table became invalid meanwhile.
    """
    return load_config(read_pyproject(path), environ)


def read_pyproject(path: Path) -> dict[str, Any]:
    """pyproject.toml at ``path``, parsed afresh."""
    from poetry.core.pyproject.toml import PyProjectTOML

    return dict(PyProjectTOML(path).data)


def load_config(
    pyproject: Mapping[str, Any], environ: Mapping[str, str] = os.environ
) -> TorchCudaConfig | None:
    """Return the project's configuration, or ``None`` when the plugin has nothing to do.

    ``pyproject`` is the parsed pyproject.toml (plain or tomlkit); every value
    in the result is a plain Python value. Nothing is returned when the project
    has no ``[tool.poetry-torch-cuda]`` table or the plugin is disabled.

    Raises:
        ConfigError: a key, a value or an override is invalid.
    """
    tool = pyproject.get("tool")
    if is_disabled(environ) or not isinstance(tool, dict) or TABLE not in tool:
        return None
    tool = _plain(tool)
    table = tool[TABLE]
    if not isinstance(table, dict):
        raise ConfigError(
            f"[tool.{TABLE}] must be a table, got {_describe(table)}. "
            f'Write it as:\n\n[tool.{TABLE}]\nvariant = "cu129"'
        )
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], _KEYS, n=1, cutoff=0.6)
        hint = f": did you mean {close[0]!r}? A" if close else "; a"
        raise ConfigError(
            f"[tool.{TABLE}] has unknown key {unknown[0]!r}{hint}llowed keys are "
            f"{', '.join(_KEYS)}."
        )

    variant_value, variant_origin = _override(table, "variant", environ, ENV_VARIANT)
    if variant_value is None:
        raise ConfigError(
            f'[tool.{TABLE}] needs a variant, e.g. variant = "cu129"; '
            f"allowed: {ALLOWED_VARIANTS}."
        )
    variant = _variant(variant_value, variant_origin)

    allow_insecure = _checked(table, "allow-insecure-http", False, _is_bool, _BOOL)
    sources = _project_sources(tool)
    source = _source_name(table, sources)
    index_value, index_origin = _override(table, "index-url", environ, ENV_INDEX_URL)
    if index_origin == ENV_INDEX_URL:
        source = None  # the override names the index itself
    elif source is not None:
        index_value = sources[source]
        index_origin = f"[[tool.poetry.source]] {source!r} url"
    index_url = (
        DEFAULT_INDEX_URL
        if index_value is None
        else _index_url(index_value, index_origin, allow_insecure=allow_insecure)
    )
    packages = _packages(table.get("packages", list(DEFAULT_PACKAGES)))
    verify, verify_timeout = _verify_settings(table, environ)
    return TorchCudaConfig(
        variant,
        index_url,
        packages,
        variant_origin,
        source=source,
        allow_insecure_http=allow_insecure,
        project_sources=tuple(sources.items()),
        targets=parse_targets(table.get("targets", [])),
        verify=verify,
        verify_timeout=verify_timeout,
        lock_variants=_lock_variants(table.get("lock-variants")),
        download_concurrency=_checked(
            table,
            "download-concurrency",
            DEFAULT_DOWNLOAD_CONCURRENCY,
            lambda v: _is_number(v, int) and 1 <= v <= MAX_DOWNLOAD_CONCURRENCY,
            f"a whole number from 1 to {MAX_DOWNLOAD_CONCURRENCY} (files fetched at once)",
        ),
        keep_previous_build=_checked(
            table, "keep-previous-build", True, _is_bool, _BOOL
        ),
    )


_BOOL = "true or false"


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_number(value: Any, kinds: type | tuple[type, ...] = (int, float)) -> bool:
    return isinstance(value, kinds) and not isinstance(value, bool)


def _checked(
    table: Mapping[str, Any],
    key: str,
    default: Any,
    valid: Callable[[Any], bool],
    wanted: str,
) -> Any:
    """``table[key]`` (or ``default``) when ``valid``, else the one wording of the error."""
    value = table.get(key, default)
    if not valid(value):
        raise ConfigError(
            f"[tool.{TABLE}] {key} must be {wanted}, got {_describe(value)}."
        )
    return value


def _verify_settings(
    table: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[bool, float]:
    """``verify`` (with its environment override) and ``verify-timeout``."""
    verify = _checked(table, "verify", True, _is_bool, _BOOL)
    override = environ.get(ENV_VERIFY, "").strip().lower()
    if override in ("0", "false", "no", "off", "1", "true", "yes", "on"):
        verify = override in ("1", "true", "yes", "on")
    elif override:
        raise ConfigError(
            f"{ENV_VERIFY}={override!r} is not a switch; use 0 (off) or 1 (on)."
        )
    timeout = _checked(
        table,
        "verify-timeout",
        DEFAULT_VERIFY_TIMEOUT,
        lambda v: _is_number(v) and 0 < v <= 3600,
        "a number of seconds above 0 and at most 3600",
    )
    return verify, float(timeout)


def _plain(value: Any) -> Any:
    """``value`` with tomlkit's items (``String``…) turned into plain Python values."""
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def _project_sources(tool: Mapping[str, Any]) -> dict[str, str]:
    """Name -> URL of the project's ``[[tool.poetry.source]]`` entries that have both.

    Poetry validates the sources itself; what it would reject is skipped here.
    """
    poetry = tool.get("poetry")
    entries = poetry.get("source") if isinstance(poetry, dict) else None
    sources: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        name, url = entry.get("name"), entry.get("url")
        if isinstance(name, str) and isinstance(url, str) and name not in sources:
            sources[name] = url
    return sources


def _source_name(table: Mapping[str, Any], sources: Mapping[str, str]) -> str | None:
    """The declared name of the source ``source`` refers to, or ``None``."""
    if "source" not in table:
        return None
    value = table["source"]
    origin = f"[tool.{TABLE}] source"
    if "index-url" in table:
        raise ConfigError(
            f"[tool.{TABLE}] sets both index-url and source; keep one: source "
            "names a [[tool.poetry.source]] whose url is the index, index-url "
            "gives the URL itself."
        )
    known = (
        ", ".join(repr(name) for name in sources)
        or "none (the project has no [[tool.poetry.source]] with a url)"
    )
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{origin} must be the name of a [[tool.poetry.source]], got "
            f"{_describe(value)}; known sources: {known}."
        )
    for name in sources:
        if name.lower() == value.strip().lower():
            return name
    raise ConfigError(
        f"{origin} = {value!r} names no [[tool.poetry.source]] with a url; "
        f"known sources: {known}."
    )


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
        raise ConfigError(f"{origin} = {not_a_variant(value, error)}") from None


def _index_url(value: Any, origin: str, *, allow_insecure: bool) -> str:
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
    if any(char.isspace() or ord(char) < 32 for char in value):
        raise ConfigError(f"{origin} = {shown!r} contains white space.")
    try:
        parts = urlsplit(value.replace("{variant}", "cpu"))
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ConfigError(
            f'{origin} = {shown!r} is not a valid URL; e.g. "{DEFAULT_INDEX_URL}".'
        ) from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(
            f"{origin} = {shown!r} is not an http(s) URL with a host; "
            f'e.g. "{DEFAULT_INDEX_URL}".'
        )
    if parts.scheme == "http" and not allow_insecure and not is_loopback(host):
        raise ConfigError(
            f"{origin} = {shown!r} uses plain http to {host}, which is not this "
            "machine: packages and credentials would travel unencrypted. Use "
            f"https, or set allow-insecure-http = true in [tool.{TABLE}]."
        )
    return value


def _lock_variants(value: Any) -> tuple[str, ...]:
    """``lock-variants``: a non-empty list of distinct variant names (``auto`` too)."""
    origin = f"[tool.{TABLE}] lock-variants"
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"{origin} must be a non-empty list of variants, got "
            f'{_describe(value)}; e.g. ["cu129", "cu130"].'
        )
    names: list[str] = []
    for item in value:
        variant = _variant(item, origin)
        if variant.name in names:
            raise ConfigError(f"{origin} names {variant.name!r} twice.")
        names.append(variant.name)
    return tuple(sorted(names))


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
            reason = str(error).splitlines()[0].rstrip(".") if str(error) else "invalid"
            raise ConfigError(
                f"{origin} entry {item!r} is not a PEP 508 requirement: {reason}."
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
