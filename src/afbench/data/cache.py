"""Where afbench keeps downloads and decoded arrays.

Decoded data sets are stored as plain .npy files keyed by every source file's relative
path, size, modification time and identity (device, inode), symbolic links followed
(formats.file_identities): adding an image to a linked class folder, rewriting one,
renaming a class or pointing a link elsewhere gives a new key, so a stale cache is never
read. Each entry also keeps the data's content fingerprint (``ImageData.fingerprint``).
Entries are written to a temporary folder and renamed into place, so a crash mid-write
leaves no half entry.
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

from afbench.data.formats import ImageData, file_identities

FORMAT_VERSION = 2  # bump when decoding changes, so old entries are ignored


def cache_dir() -> Path:
    """AFBENCH_CACHE_DIR, else the user cache directory (platformdirs)."""
    return Path(os.environ.get("AFBENCH_CACHE_DIR") or platformdirs.user_cache_dir("afbench"))


def source_fingerprint(paths: list[Path]) -> list[list]:
    """Each source (a file or a folder) by its absolute path and every file it holds."""
    return [[str(Path(path).absolute()), file_identities(Path(path))] for path in paths]


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
        data = ImageData(meta["name"], tuple(meta["classes"]), **arrays, source=meta["source"])
        if meta.get("fingerprint"):
            data.__dict__["fingerprint"] = meta["fingerprint"]  # hashed when stored: not again
        return data
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
                                                   "source": data.source, "fingerprint": data.fingerprint}))
        os.replace(tmp, entry)
    except OSError:
        # Another process stored the same entry first, or the disk is full: the data in
        # memory is still good, so go on without caching.
        shutil.rmtree(tmp, ignore_errors=True)
