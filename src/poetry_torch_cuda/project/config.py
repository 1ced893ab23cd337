"""The ``[tool.poetry-torch-cuda]`` table, its environment overrides and its targets:
the machines a project must run on (``machine.resolution.check_project_fleet``)."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from dataclasses import replace
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
from poetry_torch_cuda.project.variants import ALLOWED_VARIANTS
from poetry_torch_cuda.project.variants import PLATFORMS
from poetry_torch_cuda.project.variants import Variant
from poetry_torch_cuda.project.variants import variant_argument
from poetry_torch_cuda.urls import mask_url
from poetry_torch_cuda.urls import plain_http_elsewhere


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Collection
    from collections.abc import Mapping
    from collections.abc import Sequence

    from poetry.utils.env import Env


TABLE = "poetry-torch-cuda"
DEFAULT_INDEX_URL = "https://download.pytorch.org/whl/{variant}"

ENV_VARIANT = "POETRY_TORCH_CUDA_VARIANT"
ENV_INDEX_URL = "POETRY_TORCH_CUDA_INDEX_URL"
ENV_DISABLE = "POETRY_TORCH_CUDA_DISABLE"
ENV_VERIFY = "POETRY_TORCH_CUDA_VERIFY"
#: The settings a variable overrides for one run: pyproject.toml records the others.
OVERRIDES = {"variant": ENV_VARIANT, "index-url": ENV_INDEX_URL}

_TARGETS = "[[tool.poetry-torch-cuda.targets]]"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DRIVER = re.compile(r"[1-9][0-9]{2,3}(?:\.[0-9]{1,3}){0,2}")
_CAPABILITY = re.compile(r"([1-9][0-9]?)\.([0-9])")
_EXAMPLE = (
    f'{_TARGETS}\nname = "training"\ndriver = "570.124.06"\ngpus = ["9.0"]\n'
    'platform = "linux-x86_64"'
)


@dataclass(frozen=True)
class FleetTarget:
    """One declared machine: its driver, GPUs (compute capabilities) and platform."""

    name: str
    driver: str
    gpus: tuple[tuple[int, int], ...]
    platform: str = "linux-x86_64"

    @property
    def markers(self) -> Mapping[str, str]:
        """Its OS and machine in PEP 508's markers (``sys_platform`` ``win32``, …)."""
        return PLATFORMS[self.platform]

    def describe(self) -> str:
        """``training (driver 570.124.06, sm_90, linux-x86_64)``."""
        sms = ", ".join(f"sm_{major}{minor}" for major, minor in self.gpus)
        return f"{self.name} (driver {self.driver}, {sms}, {self.platform})"


def find_target(targets: tuple[FleetTarget, ...], name: str) -> FleetTarget:
    """The target called ``name`` (any case), else a :class:`TorchCudaError`."""
    for target in targets:
        if target.name.lower() == name.strip().lower():
            return target
    declared = ", ".join(t.name for t in targets) or "none"
    raise TorchCudaError(
        f"no target named {name!r} in {_TARGETS}; declared: {declared}."
    )


def _targets(value: Any, _: str) -> tuple[FleetTarget, ...]:
    if not isinstance(value, list) or not value:  # [] declares no machine: omit it
        then = f"; leave the key out for none, or write each machine as:\n\n{_EXAMPLE}"
        raise _must(_TARGETS, "a non-empty array of tables", value, then)
    targets: dict[str, FleetTarget] = {}
    for number, entry in enumerate(value, start=1):
        target = _target(number, entry)
        if target.name.lower() in targets:
            raise ConfigError(f"{_TARGETS} names {target.name!r} twice.")
        targets[target.name.lower()] = target
    return tuple(targets.values())


def _target(number: int, entry: Any) -> FleetTarget:
    where = f"{_TARGETS} entry {number}"
    if not isinstance(entry, dict):
        raise _must(where, "a table", entry, f":\n\n{_EXAMPLE}")
    name = entry.get("name")
    if isinstance(name, str) and _NAME.fullmatch(name):
        where = f"{_TARGETS} {name!r}"
    _refuse_unknown(where, entry, ("name", "driver", "gpus", "platform"))
    if missing := [key for key in ("name", "driver", "gpus") if key not in entry]:
        raise ConfigError(f"{where} needs {missing[0]}; e.g.\n\n{_EXAMPLE}")
    wanted = (
        "letters, digits, '.', '_' or '-' (at most 64, the first a letter or digit)"
    )
    name = _matching(f"{where} name", name, _NAME, wanted, '; e.g. "training".')[0]
    wanted = 'an NVIDIA driver version as a string, such as "570.124.06"'
    driver = _matching(f"{where} driver", entry["driver"], _DRIVER, wanted)[0]
    gpus = entry["gpus"]
    if not isinstance(gpus, list) or not gpus:
        wanted = 'a non-empty array of compute capabilities, such as ["9.0"]'
        raise _must(f"{where} gpus", wanted, gpus)
    wanted = 'compute capabilities such as "8.6" (nvidia-smi --query-gpu=compute_cap)'
    found = [_matching(f"{where} gpus entries", g, _CAPABILITY, wanted) for g in gpus]
    capabilities = tuple((int(match[1]), int(match[2])) for match in found)
    platform = entry.get("platform", "linux-x86_64")
    if not isinstance(platform, str) or platform not in PLATFORMS:
        raise _must(f"{where} platform", f"one of {', '.join(PLATFORMS)}", platform)
    return FleetTarget(name, driver, capabilities, platform)


@dataclass(frozen=True)
class TorchCudaConfig:
    """The validated configuration of one project."""

    variant: Variant
    index_url_template: str = DEFAULT_INDEX_URL
    packages: tuple[Requirement, ...] = tuple(
        map(Requirement, ("torch", "torchvision", "torchaudio"))
    )
    variant_origin: str = "pyproject.toml"
    #: Where the index came from (``POETRY_TORCH_CUDA_INDEX_URL``: a per-run mirror).
    index_origin: str = ""
    #: The ``[[tool.poetry.source]]`` whose URL is the index, when ``source`` is set.
    source: str | None = None
    allow_insecure_http: bool = False
    #: The project's Poetry sources as ``(name, url)``, for their credentials.
    project_sources: tuple[tuple[str, str], ...] = ()
    #: The machines the project must run on (``[[...targets]]``).
    targets: tuple[FleetTarget, ...] = ()
    #: Verify the build after every change (``verify``, ``POETRY_TORCH_CUDA_VERIFY``).
    verify: bool = True
    #: Seconds the verification's child process may take (``verify-timeout``).
    verify_timeout: float = 120.0
    #: ``lock-variants``: the variants torch-cuda.lock holds (empty: the default).
    lock_variants: tuple[str, ...] = ()
    #: How many connections fetch the variant's files at once.
    download_concurrency: int = 16
    #: Keep the replaced build's files in the environment for a switch back.
    keep_previous_build: bool = True
    #: The ``packages`` entries whose marker excludes this environment (``here``).
    elsewhere: tuple[Requirement, ...] = ()

    @property
    def package_names(self) -> frozenset[NormalizedName]:
        """The configured packages' canonical names."""
        return frozenset(canonicalize_name(req.name) for req in self.packages)

    def here(self, env: Env) -> TorchCudaConfig:
        """The entries whose marker holds in ``env`` (the others are Poetry's there)."""
        if all(requirement.marker is None for requirement in self.packages):
            return self  # ``env.marker_env`` may start a process
        markers: dict[str, Any] = {**env.marker_env, "extra": ""}
        held = [r for r in self.packages if not r.marker or r.marker.evaluate(markers)]
        gone = tuple(r for r in self.packages if r not in held)
        return replace(self, packages=tuple(held), elsewhere=gone)

    def index_url(self, variant: Variant) -> str:
        """The index that serves ``variant``'s wheels."""
        return self.index_url_template.replace("{variant}", variant.name)

    def mirror(self, variant: Variant) -> str | None:
        """``variant``'s index if it is this run's mirror (:data:`ENV_INDEX_URL`)."""
        return self.index_url(variant) if self.index_origin == ENV_INDEX_URL else None


_SWITCH = dict.fromkeys(("0", "false", "no", "off"), False)
_SWITCH.update(dict.fromkeys(("1", "true", "yes", "on"), True))


def switch(name: str, environ: Mapping[str, str] = os.environ) -> bool | None:
    """The on/off variable ``name`` (``None``: unset); anything else is refused."""
    value = environ.get(name, "").strip()
    if value and value.lower() not in _SWITCH:
        why = "is not a switch: use 1 or 0 (or true/false, yes/no, on/off)"
        raise ConfigError(f"{name} = {value!r} {why}.")
    return _SWITCH.get(value.lower())


def refuse_if_disabled(environ: Mapping[str, str] = os.environ) -> None:
    """Every ``torch-cuda`` command's one refusal while it is disabled by a variable."""
    if switch(ENV_DISABLE, environ):
        raise TorchCudaError(
            f"poetry-torch-cuda is disabled by {ENV_DISABLE}={environ[ENV_DISABLE]}; "
            "unset it to use `poetry torch-cuda`."
        )


def load_config(
    pyproject: Mapping[str, Any],
    environ: Mapping[str, str] = os.environ,
    overrides: Collection[str] = tuple(OVERRIDES),
) -> TorchCudaConfig | None:
    """The parsed pyproject.toml's configuration; ``None`` without the table or if
    disabled. ``overrides``: the keys this run's variables may set (none: recorded)."""
    tool = pyproject.get("tool")
    if switch(ENV_DISABLE, environ) or not isinstance(tool, dict):
        return None
    for key in tool:  # a misspelled table would leave the plugin off unsaid
        if key != TABLE and str(key).lower().replace("_", "-") in (TABLE, "torch-cuda"):
            raise ConfigError(
                f"[tool.{key}] looks like a misspelling of [tool.{TABLE}], the "
                "table poetry-torch-cuda reads; rename it."
            )
    if TABLE not in tool:
        return None
    unwrap = getattr(tool, "unwrap", None)  # tomlkit's items to plain values
    tool = unwrap() if callable(unwrap) else tool
    table = tool[TABLE]
    if not isinstance(table, dict):
        example = f'. Write it as:\n\n[tool.{TABLE}]\nvariant = "cu129"'
        raise _must(f"[tool.{TABLE}]", "a table", table, example)
    _refuse_unknown(f"[tool.{TABLE}]", table, list(_KEYS))
    sources = _project_sources(tool)
    source = _source_name(table, sources)
    origins = {key: f"[tool.{TABLE}] {key}" for key in _KEYS}
    if source is not None:
        table = {**table, "index-url": sources[source]}
        origins["index-url"] = f"[[tool.poetry.source]] {source!r} url"
    for key in overrides:
        if value := per_run(key, environ):
            table = {**table, key: value}
            origins[key] = OVERRIDES[key]
    if "variant" not in table:
        raise ConfigError(
            f'[tool.{TABLE}] needs a variant, e.g. variant = "cu129"; '
            f"allowed: {ALLOWED_VARIANTS}."
        )
    values: dict[str, Any] = {
        key.replace("-", "_"): parse(table[key], origins[key])
        for key, parse in _KEYS.items()
        if parse is not None and key in table
    }
    override = switch(ENV_VERIFY, environ)
    values["verify"] = values.get("verify", True) if override is None else override
    if "index-url" in table:
        insecure = values.get("allow_insecure_http", False)
        _check_index_url(table["index-url"], origins["index-url"], insecure)
    return TorchCudaConfig(
        index_url_template=table.get("index-url", DEFAULT_INDEX_URL),
        variant_origin=origins["variant"],
        index_origin=origins["index-url"],
        source=None if origins["index-url"] == ENV_INDEX_URL else source,
        project_sources=tuple(sources.items()),
        **values,
    )


def per_run(key: str, environ: Mapping[str, str] = os.environ) -> str:
    """The value this run's variable sets for ``key`` (blank: none, ``""``)."""
    return environ.get(OVERRIDES[key], "").strip()


def require_config(
    pyproject: Mapping[str, Any], overrides: Collection[str] = tuple(OVERRIDES)
) -> TorchCudaConfig:
    """:func:`load_config` for a command that needs the table (else the one refusal)."""
    if (config := load_config(pyproject, overrides=overrides)) is None:
        raise TorchCudaError(
            f"This project has no [tool.{TABLE}] table, so no variant is "
            f'configured. Add one, e.g.\n\n[tool.{TABLE}]\nvariant = "auto"'
        )
    return config


def _project_sources(tool: Mapping[str, Any]) -> dict[str, str]:
    poetry = tool.get("poetry")
    entries = poetry.get("source") if isinstance(poetry, dict) else None
    sources: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict):
            name, url = entry.get("name"), entry.get("url")
            if isinstance(name, str) and isinstance(url, str):
                sources.setdefault(name, url)
    return sources


def _source_name(table: Mapping[str, Any], sources: Mapping[str, str]) -> str | None:
    if "source" not in table:
        return None
    value, origin = table["source"], f"[tool.{TABLE}] source"
    if "index-url" in table:
        raise ConfigError(
            f"[tool.{TABLE}] sets both index-url and source; keep one: source "
            "names a [[tool.poetry.source]] whose url is the index, index-url "
            "gives the URL itself."
        )
    none = "none (the project has no [[tool.poetry.source]] with a url)"
    known = ", ".join(repr(name) for name in sources) or none
    if not isinstance(value, str) or not value.strip():
        wanted = "the name of a [[tool.poetry.source]]"
        raise _must(origin, wanted, value, f"; known sources: {known}.")
    for name in sources:
        if name.lower() == value.strip().lower():
            return name
    raise ConfigError(
        f"{origin} = {value!r} names no [[tool.poetry.source]] with a url; "
        f"known sources: {known}."
    )


def _refuse_unknown(where: str, table: Mapping[Any, Any], keys: Sequence[str]) -> None:
    if unknown := sorted(str(key) for key in set(table) - set(keys)):
        close = difflib.get_close_matches(unknown[0], keys, n=1, cutoff=0.6)
        hint = f": did you mean {close[0]!r}? A" if close else "; a"
        raise ConfigError(
            f"{where} has unknown key {unknown[0]!r}{hint}llowed keys are "
            f"{', '.join(keys)}."
        )


def _matching(
    origin: str, value: Any, pattern: re.Pattern[str], wanted: str, then: str = "."
) -> re.Match[str]:
    if isinstance(value, str) and (match := pattern.fullmatch(value.strip())):
        return match
    raise _must(origin, wanted, value, then)


def _must(origin: str, wanted: str, value: Any, then: str = ".") -> ConfigError:
    return ConfigError(f"{origin} must be {wanted}, got {_describe(value)}{then}")


def _boolean(value: Any, origin: str) -> bool:
    if not isinstance(value, bool):
        raise _must(origin, "true or false", value)
    return value


def _seconds(value: Any, origin: str) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and 0 < value <= 3600:
        return float(value)
    raise _must(origin, "a number of seconds above 0 and at most 3600", value)


def _concurrency(value: Any, origin: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 64:
        return value
    raise _must(origin, "a whole number from 1 to 64 (files fetched at once)", value)


def _variant(value: Any, origin: str) -> Variant:
    if not isinstance(value, str):
        raise _must(origin, "a string", value, f"; allowed: {ALLOWED_VARIANTS}.")
    return variant_argument(value, origin)


def _check_index_url(value: Any, origin: str, allow_insecure: bool) -> None:
    example = f'e.g. "{DEFAULT_INDEX_URL}".'
    if not isinstance(value, str):
        raise _must(origin, "a string URL", value, f"; {example}")
    shown = f"{origin} = {mask_url(value)!r}"
    if {"{", "}"} & set(value.replace("{variant}", "")):
        raise ConfigError(f"{shown} may contain only the placeholder {{variant}}.")
    if any(char.isspace() or ord(char) < 32 for char in value):
        raise ConfigError(f"{shown} contains white space.")
    concrete = value.replace("{variant}", "cpu")
    try:
        parts = urlsplit(concrete)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ConfigError(f"{shown} is not a valid URL; {example}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"{shown} is not an http(s) URL with a host; {example}")
    if not allow_insecure and plain_http_elsewhere(concrete):
        raise ConfigError(
            f"{shown} uses plain http to {host}, which is not this "
            "machine: packages and credentials would travel unencrypted. Use "
            f"https, or set allow-insecure-http = true in [tool.{TABLE}]."
        )


def _items(origin: str, value: Any, what: str, example: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _must(origin, f"a non-empty list of {what}", value, f"; e.g. {example}.")
    return value


def _lock_variants(value: Any, origin: str) -> tuple[str, ...]:
    names: list[str] = []
    for item in _items(origin, value, "variants", '["cu129", "cu130"]'):
        variant = _variant(item, f"{origin} entry")
        if variant.name in names:
            raise ConfigError(f"{origin} names {variant.name!r} twice.")
        names.append(variant.name)
    return tuple(sorted(names))


def _packages(value: Any, origin: str) -> tuple[Requirement, ...]:
    requirements: dict[str, Requirement] = {}
    example = '["torch", "torchvision>=0.20"]'
    for item in _items(origin, value, "requirement strings", example):
        if not isinstance(item, str):
            raise _must(f"{origin} entries", "PEP 508 strings", item)
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
        if canonicalize_name(requirement.name) in requirements:
            raise ConfigError(f"{origin} names {requirement.name!r} twice.")
        requirement.name = canonicalize_name(requirement.name)  # Torch is torch
        requirements[requirement.name] = requirement
    return tuple(requirements.values())


#: Every key of the table, in the order the unknown-key error lists them, with how
#: its value is read (``None``: read with the others it depends on); an absent key
#: takes :class:`TorchCudaConfig`'s default.
_KEYS: dict[str, Callable[[Any, str], Any] | None] = {
    "variant": _variant,
    "index-url": None,
    "source": None,
    "packages": _packages,
    "allow-insecure-http": _boolean,
    "targets": _targets,
    "verify": _boolean,
    "verify-timeout": _seconds,
    "lock-variants": _lock_variants,
    "download-concurrency": _concurrency,
    "keep-previous-build": _boolean,
}
