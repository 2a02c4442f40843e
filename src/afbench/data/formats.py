"""Readers for the on-disk formats: IDX (MNIST family), CIFAR python batches and
image folders. Each checks what it reads and names the file when something is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from afbench.errors import AfbenchError


class DataError(AfbenchError):
    """A data file is missing, corrupt, truncated or not what it claims to be."""


@dataclass(frozen=True)
class ImageData:
    """A data set as decoded uint8 arrays: images (N, C, H, W), labels (N,) int64."""

    name: str
    classes: tuple[str, ...]
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str = ""

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # (C, H, W)


# ---- IDX ---------------------------------------------------------------------------

_IDX_UBYTE = 0x08


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it is gzip (by its magic bytes, not its name)."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read ({err}); the file is corrupt or truncated, delete it and "
                        "fetch it again") from None


def parse_idx(raw: bytes, path: Path | str, expect_ndim: int) -> np.ndarray:
    """Decode an unsigned-byte IDX file, checking magic number, dimensions and size."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    if raw[2] != _IDX_UBYTE:
        raise DataError(f"{path}: IDX type 0x{raw[2]:02x}, afbench reads unsigned bytes (0x08)")
    ndim = raw[3]
    if ndim != expect_ndim:
        raise DataError(f"{path}: IDX with {ndim} dimensions, expected {expect_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{path}: {what}: {len(raw)} bytes, dimensions {dims} need {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def md5(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{where}: labels outside 0..{num_classes - 1} (found {labels.min()}..{labels.max()})")


def check_pair(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels")


# ---- CIFAR python batches ----------------------------------------------------------

# What a CIFAR batch pickle may contain: numpy arrays and plain containers. Anything
# else (os.system, builtins.eval, ...) is refused before it can run.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream, where: str) -> None:
        super().__init__(stream, encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise DataError(f"{self.where}: refusing to unpickle '{module}.{name}': a CIFAR batch holds only "
                        "arrays and lists; this file is not a genuine CIFAR batch")


def _text_keys(obj):
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def load_pickle(raw: bytes, where: str) -> dict:
    """Unpickle a CIFAR batch with the restricted unpickler; keys come back as str."""
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), where).load()
    except DataError:
        raise
    except Exception as err:  # truncated or garbage pickles raise many types
        raise DataError(f"{where}: cannot unpickle ({type(err).__name__}: {err}); corrupt or truncated") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a dict, found {type(obj).__name__}")
    return _text_keys(obj)


def parse_cifar_batch(raw: bytes, where: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) from one batch file."""
    batch = load_pickle(raw, where)
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{where}: missing 'data' or '{label_key}' (keys: {sorted(batch)})")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{where}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    labels = np.asarray(batch[label_key], dtype=np.int64)
    check_pair(data, labels, where)
    return data.reshape(-1, 3, 32, 32), labels  # rows hold the R, G, B planes in order


def label_names(raw: bytes, where: str, key: str) -> tuple[str, ...]:
    names = load_pickle(raw, where).get(key)
    if not isinstance(names, list):
        raise DataError(f"{where}: no '{key}' list of class names")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


# ---- archives and folders ----------------------------------------------------------

def iter_files(source: Path) -> Iterator[tuple[str, bytes]]:
    """(relative posix path, content) for every regular file in a directory or a
    .tar/.tar.gz/.tgz/.zip archive. Archive members are read, never extracted, so
    paths such as '../x' cannot write anywhere."""
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            yield path.relative_to(source).as_posix(), path.read_bytes()
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                if not info.is_dir():
                    yield info.filename, archive.read(info)
    elif tarfile.is_tarfile(source):
        try:
            with tarfile.open(source) as archive:
                for member in archive:
                    if member.isfile():
                        yield member.name, archive.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError) as err:
            raise DataError(f"{source}: corrupt or truncated archive ({err})") from None
    else:
        raise DataError(f"{source}: neither a directory nor a .tar, .tar.gz or .zip archive")
