"""The machine a run executes on: device choice, thread count, provenance."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import torch

from afbench import __version__
from afbench.errors import AfbenchError


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU. Asking for CUDA without a GPU is
    an error that says so, rather than a silent fall back."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as err:
        raise AfbenchError(f"device '{device}' is not one torch knows ({_first_line(err)}): use --device auto, "
                           "cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise AfbenchError(f"device '{device}' asked for, but torch sees no CUDA GPU: use --device cpu or auto")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise AfbenchError(f"device '{device}' asked for, but torch sees {count} CUDA GPU"
                               f"{'' if count == 1 else 's'} (cuda:0 to cuda:{count - 1}): use one of them, or "
                               "--device auto")
    elif resolved.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise AfbenchError(f"device '{device}' asked for, but torch sees no MPS device: use --device cpu or "
                               "auto")
    elif resolved.type != "cpu":
        raise AfbenchError(f"device '{device}' is not one afbench trains on: use --device auto, cpu, cuda, "
                           "cuda:N or mps")
    return resolved


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")


def check_compile_toolchain(device: str) -> None:
    """torch.compile on a CPU writes C++ and builds it: say so before any run fails on it."""
    if device == "cpu" and not (os.environ.get("CXX") or any(shutil.which(c) for c in ("g++", "c++", "clang++"))):
        raise AfbenchError("--compile on a CPU needs a C++ compiler (g++ or clang++, or one named by $CXX), and "
                           "none was found: install one (Debian: apt-get install g++) or leave out --compile")


def available_cores() -> int:
    """Cores this process may use (respects CPU affinity / container limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads on purpose (default: every available core).

    Oversubscription is catastrophic here: two processes with 2 threads each on 2
    cores ran 20x slower than one. Concurrent runs must split the cores.
    """
    threads = threads or available_cores()
    torch.set_num_threads(threads)
    return threads


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def _git_revision() -> str | None:
    root = Path(__file__).resolve().parents[3]  # src/afbench/engine/runtime.py -> the checkout
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


_REVISION: list = []


def provenance(device: torch.device) -> dict:
    """What produced a result: code and library versions, hardware, threads."""
    if not _REVISION:
        _REVISION.append(_git_revision())
    return {"afbench": __version__, "git_revision": _REVISION[0], "torch": torch.__version__,
            "python": platform.python_version(), "device": str(device), "device_name": device_name(device),
            "threads": torch.get_num_threads(), "cores": available_cores(), "host": platform.node()}
