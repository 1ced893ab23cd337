"""The probe run *inside* the project's environment (``<env python> -I child.py``),
standard library only: imports each configured package, describes torch's build and
devices, computes on the CPU and every visible GPU (and runs a torchvision operator);
every failure is in the report, printed as :data:`MARKER` + JSON last on stdout."""

from __future__ import annotations

import json
import os
import sys
import traceback
from importlib import import_module
from importlib import metadata
from typing import Any


MARKER = "@@poetry-torch-cuda-proof@@"
#: What hides GPUs from a build (the user's choice, not a fault of the machine).
MASKS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")
BROKEN = "a broken install"  # ends a bare or emptied package's import


def attempt(function: Any) -> tuple[Any, str | None]:
    """``function()`` and ``None``, or ``None`` and its failure."""
    try:
        return function(), None
    except Exception as error:  # noqa: BLE001 - every failure is a finding
        return None, f"{type(error).__name__}: {error}".strip()


def import_package(name: str) -> tuple[dict[str, Any], Any]:
    """Version (from metadata) and import of one distribution: its module, else the first
    its RECORD lists (pytorch-triton-rocm's triton; none); the module or ``None``."""
    entry: dict[str, Any] = {"installed": False}  # the rest: null in verify --json
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return entry, None
    entry["installed"], entry["version"], module = True, dist.version, None
    own, paths = name.replace("-", "_"), dist.files or ()  # RECORD; none: by its name
    # A module: a folder named as one (not auditwheel's <name>.libs, not __pycache__)
    # or a top-level .py, .so or .pyd file (not a LICENSE).
    found = {
        p.parts[0] if p.parts[1:] else p.name.split(".")[0]
        for p in paths
        if p.parts[1:] or p.suffix in (".py", ".so", ".pyd")
    }
    tops = sorted(filter(str.isidentifier, found - {"__pycache__"}))
    try:
        for top in [own] if own in tops or not paths else tops[:1]:
            module = import_module(top)
            if top == own and getattr(module, "__file__", None) is None:  # bare folder
                init = f"{next(iter(module.__path__), '')}{os.sep}__init__.py"
                raise ImportError(f"{init} is missing: {name} imports empty, {BROKEN}")
            if top == "torch" and not hasattr(module, "__version__"):  # emptied
                raise ImportError(f"torch imported but has no __version__: {BROKEN}")
    except (Exception, SystemExit) as error:  # noqa: BLE001 - its exit() too
        entry["imports"] = False
        entry["error"] = f"{type(error).__name__}: {error}".strip()
        entry["traceback"] = None if module else traceback.format_exc()
        return entry, None
    entry["imports"] = True
    return entry, module


def describe_torch(torch: Any) -> dict[str, Any]:
    """What the torch build says about itself and the devices it sees."""
    info: dict[str, Any] = {
        "version": attempt(lambda: str(torch.__version__))[0],
        "cuda": attempt(lambda: torch.version.cuda)[0],
        "hip": attempt(lambda: getattr(torch.version, "hip", None))[0],
        "cudnn": attempt(lambda: torch.backends.cudnn.version())[0],
        "arch_list": attempt(lambda: list(torch.cuda.get_arch_list()))[0],
        "is_available": attempt(lambda: bool(torch.cuda.is_available()))[0],
    }
    if not info["arch_list"] and info["cuda"]:  # [] without a usable GPU
        flags = attempt(lambda: torch._C._cuda_getArchFlags())[0]  # needs none
        info["arch_list"] = str(flags or "").split()
    count = info["is_available"] and attempt(lambda: int(torch.cuda.device_count()))[0]
    info["devices"] = [
        {
            "index": i,
            "name": attempt(lambda i=i: torch.cuda.get_device_name(i))[0],
            "capability": attempt(  # as "8.9"
                lambda i=i: "{}.{}".format(*torch.cuda.get_device_capability(i))
            )[0],
        }
        for i in range(count or 0)
    ]
    return info


def check(work: Any, expected: Any, got: str) -> dict[str, Any]:
    """Run ``work``; its failure, or a result other than ``expected``, is the error."""
    value, error = attempt(work)
    if error is None and value != expected:
        error = f"{got} {value} where {expected} was expected"
    return {"ok": error is None, "error": error}


def probe(packages: list[str]) -> dict[str, Any]:
    """The whole report for the configured ``packages`` (torch first)."""
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "packages": {},
        "compute": [],
        "masks": {name: os.environ[name] for name in MASKS if name in os.environ},
    }
    modules: dict[str, Any] = {}
    for name in sorted(packages, key=lambda name: name != "torch"):
        report["packages"][name], modules[name] = import_package(name)
    torch = modules.get("torch")
    if torch is None:
        return report
    report["torch"] = info = describe_torch(torch)
    for device in ["cpu"] + [f"cuda:{device['index']}" for device in info["devices"]]:
        # sum of x*x for x in 1..4, on the device
        def work(device: str = device) -> float:
            x = torch.arange(1, 5, dtype=torch.float32, device=device)
            return float((x * x).sum().item())

        report["compute"].append({"device": device, **check(work, 30.0, "computed")})
    torchvision = modules.get("torchvision")
    if torchvision is not None:
        # Two overlapping boxes and a separate one: nms keeps the first and the third.
        def nms() -> list[int]:
            boxes = [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0]]
            boxes.append([20.0, 20.0, 30.0, 30.0])
            scores = torch.tensor([0.9, 0.8, 0.7])
            kept = torchvision.ops.nms(torch.tensor(boxes), scores, 0.5)
            return [int(i) for i in kept.tolist()]

        operator = {"name": "torchvision.ops.nms", **check(nms, [0, 2], "kept boxes")}
        report["torchvision_op"] = operator
    return report


def main(argv: list[str]) -> None:
    """``argv[1]`` is the JSON list of packages; the report goes to stdout."""
    report = probe([str(name) for name in json.loads(argv[1])])
    sys.stdout.write("\n" + MARKER + json.dumps(report) + "\n")
    sys.stdout.flush()  # before a library's crash at exit can lose it


if __name__ == "__main__":
    main(sys.argv)
