"""The probe run *inside* the project's environment (``<env python> -I child.py``).

Standard library only, never imported by the plugin. It imports each
configured package, describes torch's build and devices, computes on the CPU
and every visible GPU (and runs a torchvision operator), and prints
:data:`MARKER` + the report as JSON last on stdout. Every failure is reported.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from importlib import import_module
from importlib import metadata
from typing import Any


MARKER = "@@poetry-torch-cuda-proof@@"
#: (1 + 2 + 3 + 4)^2 computed the long way: sum of x*x for x in 1..4.
EXPECTED_SUM = 30.0
#: What hides GPUs from a build (the user's choice, not a fault of the machine).
MASKS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")
#: Two overlapping boxes and a separate one: nms keeps the first and the third.
EXPECTED_NMS = [0, 2]


def _error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()


def _attempt(function: Any) -> tuple[Any, str | None]:
    try:
        return function(), None
    except Exception as error:  # noqa: BLE001 - every failure is a finding
        return None, _error(error)


def import_package(name: str) -> tuple[dict[str, Any], Any]:
    """Version (from metadata) and import of one distribution; the module or ``None``."""
    entry: dict[str, Any] = {
        "installed": False,
        "version": None,
        "imports": None,
        "error": None,
        "traceback": None,
    }
    try:
        entry["version"] = metadata.version(name)
    except metadata.PackageNotFoundError:
        return entry, None
    entry["installed"] = True
    try:
        module = import_module(name.replace("-", "_"))
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            raise
        entry["imports"] = False
        entry["error"] = _error(error)
        entry["traceback"] = traceback.format_exc()
        return entry, None
    entry["imports"] = True
    return entry, module


def describe_torch(torch: Any) -> dict[str, Any]:
    """What the torch build says about itself and the devices it sees."""
    errors: dict[str, str] = {}

    def get(key: str, function: Any) -> Any:
        value, error = _attempt(function)
        if error is not None:
            errors[key] = error
        return value

    info: dict[str, Any] = {
        "version": get("version", lambda: str(torch.__version__)),
        "cuda": get("cuda", lambda: torch.version.cuda),
        "hip": get("hip", lambda: getattr(torch.version, "hip", None)),
        "cudnn": get("cudnn", lambda: torch.backends.cudnn.version()),
        "arch_list": get("arch_list", lambda: list(torch.cuda.get_arch_list())),
        "is_available": get("is_available", lambda: bool(torch.cuda.is_available())),
        "device_count": 0,
        "devices": [],
    }
    if not info["arch_list"] and info["cuda"]:
        # Older releases list architectures only with a GPU; the flags need none.
        flags = get("arch_flags", lambda: str(torch._C._cuda_getArchFlags()))
        info["arch_list"] = (flags or "").split()
    if info["is_available"]:
        count = get("device_count", lambda: int(torch.cuda.device_count())) or 0
        info["device_count"] = count
        for index in range(count):
            name = get(f"name:{index}", lambda i=index: torch.cuda.get_device_name(i))
            capability = get(
                f"capability:{index}",
                lambda i=index: list(torch.cuda.get_device_capability(i)),
            )
            info["devices"].append(
                {"index": index, "name": name, "capability": capability}
            )
    info["errors"] = errors
    return info


def compute(torch: Any, device: str) -> dict[str, Any]:
    """A tiny computation on ``device``: sum of x*x for x in 1..4 (30)."""

    def work() -> float:
        x = torch.arange(1, 5, dtype=torch.float32, device=device)
        return float((x * x).sum().item())

    value, error = _attempt(work)
    if error is None and value != EXPECTED_SUM:
        error = f"computed {value} where {EXPECTED_SUM} was expected"
    return {"device": device, "ok": error is None, "error": error}


def torchvision_operator(torch: Any, torchvision: Any) -> dict[str, Any]:
    """``torchvision.ops.nms`` on the CPU: its C++ operator must match this torch."""

    def work() -> list[int]:
        boxes = torch.tensor(
            [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]
        )
        scores = torch.tensor([0.9, 0.8, 0.7])
        return [int(i) for i in torchvision.ops.nms(boxes, scores, 0.5).tolist()]

    value, error = _attempt(work)
    if error is None and value != EXPECTED_NMS:
        error = f"kept boxes {value} where {EXPECTED_NMS} was expected"
    return {"name": "torchvision.ops.nms", "ok": error is None, "error": error}


def probe(packages: list[str]) -> dict[str, Any]:
    """The whole report for the configured ``packages`` (torch first)."""
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "packages": {},
        "torch": None,
        "compute": [],
        "torchvision_op": None,
        "masks": {name: os.environ[name] for name in MASKS if name in os.environ},
    }
    modules: dict[str, Any] = {}
    ordered = sorted(packages, key=lambda name: name != "torch")
    for name in ordered:
        entry, module = import_package(name)
        report["packages"][name] = entry
        if module is not None:
            modules[name] = module
    torch = modules.get("torch")
    if torch is None:
        return report
    report["torch"] = info = describe_torch(torch)
    devices = ["cpu"] + [f"cuda:{device['index']}" for device in info["devices"]]
    report["compute"] = [compute(torch, device) for device in devices]
    if "torchvision" in modules:
        report["torchvision_op"] = torchvision_operator(torch, modules["torchvision"])
    return report


def main(argv: list[str]) -> int:
    """``argv[1]`` is ``{"packages": [...]}``; the report goes to stdout."""
    request = json.loads(argv[1])
    report = probe([str(name) for name in request["packages"]])
    sys.stdout.flush()
    sys.stdout.write("\n" + MARKER + json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
