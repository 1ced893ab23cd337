"""The parallel downloader against the local index: concurrency, Range, hashes, failures."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

import pytest
from packaging.utils import canonicalize_name
from poetry.config.config import Config
from poetry.core.packages.utils.link import Link
from poetry.utils.cache import ArtifactCache

from poetry_torch_cuda.install.download import DownloadError
from poetry_torch_cuda.install.download import HashMismatchError
from poetry_torch_cuda.install.download import download_files
from poetry_torch_cuda.install.download import new_authenticator
from poetry_torch_cuda.lockfile.model import LockedFile
from tests.support.index import IndexServer
from tests.support.wheels import build_wheel


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NAMES = ("nvidia-cublas-cu12", "nvidia-cudnn-cu12", "nvidia-nccl-cu12", "torch")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[IndexServer, list[LockedFile]]]:
    root = tmp_path / "universe"
    (root / "pypi").mkdir(parents=True)
    items = []
    with IndexServer(root) as index:
        for number, name in enumerate(NAMES):
            size = 200_000 * (number + 1)
            path = build_wheel(
                root / "whl" / "cu129" / name,
                name,
                "1.0+cu129",
                payload={f"{name.replace('-', '_')}/blob.bin": os.urandom(size)},
            )
            data = path.read_bytes()
            items.append(
                LockedFile(
                    canonicalize_name(name),
                    "1.0+cu129",
                    path.name,
                    f"{index.whl_url('cu129')}/{name}/{path.name}",
                    hashlib.sha256(data).hexdigest(),
                    len(data),
                )
            )
        yield index, items


def fetch(items: list[LockedFile], cache: Path, **options: object) -> list[Path]:
    authenticator = new_authenticator(Config(), (), pool_size=8)
    return download_files(items, cache, authenticator, **options)  # type: ignore[arg-type]


def leftovers(cache: Path) -> list[str]:
    return sorted(path.name for path in cache.rglob("*") if path.is_file())


def test_files_arrive_verified_in_poetrys_artifact_cache_concurrently(
    served: tuple[IndexServer, list[LockedFile]], tmp_path: Path
) -> None:
    index, items = served
    index.latency_seconds = 0.2  # every request waits: sequential would never overlap
    cache = tmp_path / "artifacts"
    paths = fetch(items, cache, concurrency=4)
    assert index.max_overlap("/whl/") == len(items)
    for item, path in zip(items, paths):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == item.sha256
        link = Link(f"{item.url}#sha256={item.sha256}")
        found = ArtifactCache(cache_dir=cache).get_cached_archive_for_link(
            link, strict=True
        )
        assert found == path
    index.clear_requests()
    assert fetch(items, cache) == paths
    assert index.requests == []  # cached files are not fetched again


def test_large_files_are_split_over_ranges_when_the_server_honours_them(
    served: tuple[IndexServer, list[LockedFile]], tmp_path: Path
) -> None:
    index, items = served
    paths = fetch(items, tmp_path / "a", concurrency=8, min_part_bytes=100_000)
    ranged = [r for r in index.records if r.status == 206]
    assert {r.path.rsplit("/", 1)[-1] for r in ranged} >= {items[-1].filename}
    assert all(
        hashlib.sha256(p.read_bytes()).hexdigest() == i.sha256
        for i, p in zip(items, paths)
    )
    index.serve_ranges = False
    index.clear_requests()
    fetch(items, tmp_path / "b", concurrency=8, min_part_bytes=100_000)
    assert len(index.requests) == len(items)  # one whole-file answer each


def test_corrupted_transfer_is_refused_and_leaves_nothing(
    served: tuple[IndexServer, list[LockedFile]], tmp_path: Path
) -> None:
    index, items = served
    index.corrupt_paths.add("/whl/cu129/torch/")
    cache = tmp_path / "artifacts"
    with pytest.raises(HashMismatchError) as raised:
        fetch(items, cache, min_part_bytes=0)
    message = str(raised.value)
    torch = items[-1]
    assert torch.filename in message
    assert (
        f"expected sha256 {torch.sha256} (torch-cuda.lock), received sha256" in message
    )
    assert "the index or mirror now serves different bytes for the same file" in message
    assert torch.filename not in leftovers(cache)
    assert not [name for name in leftovers(cache) if name.endswith(".part")]


def test_a_missing_file_names_the_file_and_the_cause(
    served: tuple[IndexServer, list[LockedFile]], tmp_path: Path
) -> None:
    index, items = served
    index.fail_paths["/whl/cu129/nvidia-nccl-cu12/"] = 404
    with pytest.raises(DownloadError) as raised:
        fetch(items, tmp_path / "artifacts")
    assert items[2].filename in str(raised.value)
    assert "HTTP 404" in str(raised.value)
    assert not [n for n in leftovers(tmp_path / "artifacts") if n.endswith(".part")]


def test_split_files_are_hashed_as_their_parts_land_and_a_corrupt_part_is_refused(
    served: tuple[IndexServer, list[LockedFile]], tmp_path: Path
) -> None:
    index, items = served
    paths = fetch(items, tmp_path / "good", concurrency=8, min_part_bytes=60_000)
    split = {r.path for r in index.records if r.status == 206}
    assert len(split) >= 3  # several files arrived in parts
    for item, path in zip(items, paths):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == item.sha256
    index.corrupt_paths.add("/whl/cu129/torch/")
    cache = tmp_path / "bad"
    with pytest.raises(HashMismatchError) as raised:
        fetch(items, cache, concurrency=8, min_part_bytes=60_000)
    assert items[-1].filename in str(raised.value)
    assert items[-1].filename not in leftovers(cache)
    assert not [name for name in leftovers(cache) if name.endswith(".part")]


def test_parts_are_cut_finer_than_one_per_connection(
    served: tuple[IndexServer, list[LockedFile]], tmp_path: Path
) -> None:
    index, items = served
    fetch(items, tmp_path / "a", concurrency=2, min_part_bytes=1)
    torch = [r for r in index.records if r.path.endswith(items[-1].filename)]
    # Two connections, two parts each: parts of a quarter of all bytes, so the
    # largest file (0.4 of them) is split; one part per connection would not.
    assert len(torch) == 2
    assert all(r.status == 206 for r in torch)
