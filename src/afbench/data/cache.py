"""Where afbench keeps downloads and decoded arrays.

Decoded data sets are stored as plain .npy files keyed by the source files' paths,
sizes and modification times: a changed source gets a new key, so a stale cache is
never read. Entries are written to a temporary folder and renamed into place, so a
crash mid-write leaves no half entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import platformdirs

from afbench.data.formats import ImageData

FORMAT_VERSION = 1  # bump when decoding changes, so old entries are ignored


def cache_dir() -> Path:
    """AFBENCH_CACHE_DIR, else the user cache directory (platformdirs)."""
    return Path(os.environ.get("AFBENCH_CACHE_DIR") or platformdirs.user_cache_dir("afbench"))


def source_fingerprint(paths: list[Path]) -> list[tuple[str, int, int]]:
    out = []
    for path in paths:
        stat = path.stat()
        out.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
    return out


def _key(name: str, sources: list[Path], options: dict) -> str:
    blob = json.dumps([FORMAT_VERSION, name, source_fingerprint(sources), options], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


_ARRAYS = ("train_x", "train_y", "test_x", "test_y")


def cached(name: str, sources: list[Path], options: dict, build: Callable[[], ImageData]) -> ImageData:
    """Return the decoded data set from the cache, building and storing it on a miss."""
    entry = cache_dir() / "decoded" / f"{name.replace('/', '_').replace(':', '_')[:60]}-{_key(name, sources, options)}"
    meta_path = entry / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        arrays = {a: np.load(entry / f"{a}.npy") for a in _ARRAYS}
        return ImageData(meta["name"], tuple(meta["classes"]), **arrays, source=meta["source"])
    data = build()
    _store(entry, data)
    return data


def _store(entry: Path, data: ImageData) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp-"))
    try:
        for a in _ARRAYS:
            np.save(tmp / f"{a}.npy", getattr(data, a))
        (tmp / "meta.json").write_text(json.dumps({"name": data.name, "classes": list(data.classes),
                                                   "source": data.source}))
        os.replace(tmp, entry)
    except OSError:
        # Another process stored the same entry first, or the disk is full: the data in
        # memory is still good, so go on without caching.
        shutil.rmtree(tmp, ignore_errors=True)
