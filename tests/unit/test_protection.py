from __future__ import annotations

import pytest
from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name

from poetry_torch_cuda.project.protection import dependency_closure
from poetry_torch_cuda.project.protection import is_cuda_bound
from poetry_torch_cuda.project.protection import protected_names


def n(*names: str) -> set[NormalizedName]:
    return {canonicalize_name(name) for name in names}


@pytest.mark.parametrize(
    "name",
    [
        "nvidia-cublas-cu12",
        "nvidia-cublas",
        "nvidia_cudnn_cu13",
        "cuda-toolkit",
        "cuda-bindings",
        "cuda-pathfinder",
        "triton",
        "pytorch-triton-rocm",
        "pytorch-triton-xpu",
    ],
)
def test_cuda_bound(name: str) -> None:
    assert is_cuda_bound(name)


@pytest.mark.parametrize(
    "name", ["torch", "filelock", "tritonclient", "cuda-python-extras", "numpy"]
)
def test_not_cuda_bound(name: str) -> None:
    assert not is_cuda_bound(name)


GRAPH = {
    canonicalize_name(k): [canonicalize_name(v) for v in vs]
    for k, vs in {
        "torch": ["filelock", "nvidia-cublas-cu12", "triton"],
        "torchvision": ["torch", "numpy"],
        "nvidia-cudnn-cu12": ["nvidia-cublas-cu12"],
        "jax-cuda12": ["nvidia-cusparse-cu12"],
        "app": ["torchvision", "jax-cuda12"],
    }.items()
}


def test_closure() -> None:
    assert dependency_closure(n("torchvision"), GRAPH) == n(
        "torchvision", "torch", "numpy", "filelock", "nvidia-cublas-cu12", "triton"
    )


def test_protected_are_configured_plus_cuda_wheels_they_reach() -> None:
    protected = protected_names(n("torch", "torchvision"), [GRAPH])
    assert protected == n("torch", "torchvision", "nvidia-cublas-cu12", "triton")
    # a CUDA wheel another framework needs stays Poetry's
    assert canonicalize_name("nvidia-cusparse-cu12") not in protected


def test_protected_merges_graphs() -> None:
    installed = {canonicalize_name("torch"): [canonicalize_name("nvidia-cudnn-cu12")]}
    protected = protected_names(n("torch"), [GRAPH, installed])
    assert n("nvidia-cudnn-cu12", "nvidia-cublas-cu12") <= protected


def test_what_nothing_kept_reaches_is_unneeded() -> None:
    graph = {canonicalize_name("torch"): [canonicalize_name("nvidia-cublas")]}
    candidates = n("nvidia-cublas", "nvidia-cublas-cu12")
    assert candidates - dependency_closure(n("torch"), graph) == n("nvidia-cublas-cu12")
