"""What a variant's index offers, asked of the local HTTP index."""

from __future__ import annotations

import zipfile
from typing import TYPE_CHECKING

import pytest
from packaging.utils import canonicalize_name

from poetry_torch_cuda.environment.installed import InstalledEnvironment
from poetry_torch_cuda.index.client import IndexClient
from poetry_torch_cuda.index.offers import OfferFinder
from poetry_torch_cuda.index.offers import wanted_versions
from poetry_torch_cuda.project.config import TorchCudaConfig
from poetry_torch_cuda.project.variants import parse_variant
from tests.support.client import LINUX_311
from tests.support.client import poetry_config
from tests.support.wheels import build_wheel


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.index import IndexServer

pytestmark = pytest.mark.e2e

TORCH = canonicalize_name("torch")
TORCHVISION = canonicalize_name("torchvision")


def finder(
    index: IndexServer,
    tmp_path: Path,
    locked: dict[str, str],
    installed: InstalledEnvironment | None = None,
) -> OfferFinder:
    config = poetry_config(tmp_path)
    torch_cuda = TorchCudaConfig(
        parse_variant("auto"), index_url_template=index.url + "/whl/{variant}"
    )
    wanted = wanted_versions(
        torch_cuda.package_names, {canonicalize_name(k): v for k, v in locked.items()}
    )
    return OfferFinder(IndexClient(config), torch_cuda, wanted, LINUX_311, installed)


def test_wanted_versions_put_torch_first() -> None:
    names = [TORCHVISION, TORCH, canonicalize_name("torchaudio")]
    locked = {TORCHVISION: "0.29.1", TORCH: "2.14.1+cu129"}
    assert list(wanted_versions(names, locked).items()) == [
        ("torch", "2.14.1"),
        ("torchvision", "0.29.1"),
    ]


def test_a_missing_torch_stops_the_questions(
    index: IndexServer, tmp_path: Path
) -> None:
    ask = finder(index, tmp_path, {"torch": "2.14.1", "torchvision": "0.29.1"})
    offer = ask(parse_variant("cu126"))
    assert offer.available is False
    assert offer.detail == (
        f"{index.whl_url('cu126')} has no torch 2.14.1+cu126 (it has 2.13.0)"
    )
    assert [p for p in index.requests if p.startswith("/whl/")] == ["/whl/cu126/torch/"]
    assert ask(parse_variant("cu129")).available is True


def test_an_installed_build_needs_no_question(
    index: IndexServer, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    for name, version in (("torch", "2.14.1+cu129"), ("torchvision", "0.29.1+cu129")):
        with zipfile.ZipFile(build_wheel(tmp_path / "w", name, version)) as archive:
            archive.extractall(site)
    installed = InstalledEnvironment([str(site)], LINUX_311)
    ask = finder(
        index, tmp_path, {"torch": "2.14.1", "torchvision": "0.29.1"}, installed
    )
    index.clear_requests()
    offer = ask(parse_variant("cu129"))
    assert offer.available is True
    assert "already installed from it" in offer.detail
    assert index.requests == []


def test_inspect_asks_the_rest_only_where_torch_is(
    index: IndexServer, tmp_path: Path
) -> None:
    """The one path of every question: the others than torch only where the
    index has torch's wanted build, as for one variant."""
    ask = finder(index, tmp_path, {"torch": "2.14.1", "torchvision": "0.29.1"})
    reports = ask.inspect([parse_variant(n) for n in ("cu129", "cu126", "cu124")])
    assert [r.available for r in reports] == [True, False, False]
    assert [r.listed for r in reports] == [True, True, False]
    assert sorted(p for p in index.requests if p.startswith("/whl/")) == [
        "/whl/cu124/torch/",
        "/whl/cu126/torch/",
        "/whl/cu129/torch/",
        "/whl/cu129/torchvision/",
    ]
    older = finder(index, tmp_path, {"torch": "2.13.0", "torchvision": "0.29.1"})
    (report,) = older.inspect([parse_variant("cu126")])
    assert report.packages[1].describe(parse_variant("cu126")) == (
        "no torchvision 0.29.1+cu126 (no torchvision page at all)"
    )


def test_without_a_lock_any_torch_build_counts(
    index: IndexServer, tmp_path: Path
) -> None:
    ask = finder(index, tmp_path, {})
    assert ask(parse_variant("cu126")).detail.endswith("has torch 2.13.0")
    assert ask(parse_variant("cu124")).available is False
