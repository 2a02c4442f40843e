"""Readers for the on-disk formats: IDX (MNIST family), CIFAR python batches and
image folders. Each checks what it reads and names the file when something is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import stat
import struct
import tarfile
import zipfile
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

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

    @functools.cached_property
    def fingerprint(self) -> str:
        """What the data is, not where it came from: a SHA-256 (16 hex digits) of the class
        names and the four arrays' dtypes, shapes and bytes. Equal data give equal
        fingerprints wherever they are stored; any changed pixel, label or class changes it.
        The decoded-data cache stores it, so a cached data set does not hash again."""
        digest = hashlib.sha256(json.dumps(list(self.classes)).encode("utf-8", "surrogateescape"))
        for array in (self.train_x, self.train_y, self.test_x, self.test_y):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(memoryview(array).cast("B"))
        return digest.hexdigest()[:16]


def printable(name: str) -> str:
    """A file or folder name as text: bytes that are not UTF-8 (os gives them as lone
    surrogates) shown as \\xNN escapes, so a class name can be stored, printed and drawn."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_source(path: Path, what: str) -> Path:
    """``path`` itself when it is a regular file or a folder (symbolic links followed).
    Anything else is refused before a byte is read: a named pipe blocks until a writer
    comes, /dev/zero never ends."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"{what} '{path}' does not exist") from None
    except OSError as err:
        raise DataError(f"{what} '{path}' cannot be read ({err.strerror})") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return path
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
    raise DataError(f"{what} '{path}' is {kind}, not a regular file or folder: afbench reads data only from files "
                    "and folders (a pipe or a device may block or never end); give the folder or the archive itself")


# ---- IDX ---------------------------------------------------------------------------

_IDX_UBYTE = 0x08


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it is gzip (by its magic bytes, not its name)."""
    check_source(path, "data file")
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

MAX_MEMBER_BYTES = 512 * 2**20  # one file of a data set, decompressed (a CIFAR batch is 31 MB)


def _read_capped(stream, size: int, where: str, cap: int | None = None) -> bytes:
    """At most ``cap`` bytes (default MAX_MEMBER_BYTES), whatever the archive declares:
    a small archive can decompress to gigabytes."""
    cap = cap or MAX_MEMBER_BYTES
    if size > cap:
        raise DataError(f"{where}: {size / 2**20:.0f} MB decompressed, over afbench's limit of "
                        f"{cap // 2**20} MB per file: is this the right archive?")
    raw = stream.read(cap + 1)
    if len(raw) > cap:
        raise DataError(f"{where}: decompresses past afbench's limit of {cap // 2**20} MB per file")
    return raw


def walk(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """(path, its target's stat) for every regular file below ``folder``, in name order,
    following symbolic links to files and folders (a class folder that links to images
    elsewhere is a class), each real folder once (by device and inode: no path resolving,
    which costs more than the walk). Pipes, devices and broken links are skipped."""
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        here = os.stat(root)
        if (here.st_dev, here.st_ino) in seen:  # a link back up the tree: do not loop
            dirs[:] = []
            continue
        seen.add((here.st_dev, here.st_ino))
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                info = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                yield Path(path), info


def file_identities(source: Path) -> list[tuple[str, int, int, int, int]]:
    """(relative path, size, mtime in ns, device, inode) of every file a data set at
    ``source`` (a folder or one file) is read from, links followed: any change to the data
    (a file added, removed, renamed, rewritten, or a link pointed elsewhere) changes it."""
    if source.is_dir():
        return [(path.relative_to(source).as_posix(), s.st_size, s.st_mtime_ns, s.st_dev, s.st_ino)
                for path, s in walk(source)]
    s = os.stat(source)
    return [(source.name, s.st_size, s.st_mtime_ns, s.st_dev, s.st_ino)]


def iter_files(source: Path, wanted: Callable[[str], bool] = lambda path: True,
               max_bytes: int | None = None) -> Iterator[tuple[str, bytes]]:
    """(relative posix path, content) for every regular file whose path ``wanted``
    accepts, in a directory or a .tar/.tar.gz/.tgz/.zip archive. Names are filtered
    before anything is decompressed, and each file is capped at MAX_MEMBER_BYTES.
    Archive members are read, never extracted, so paths such as '../x' cannot write
    anywhere. Symbolic links are followed: in folders, and inside tar archives to
    their target member."""
    check_source(source, "data source")
    if source.is_dir():
        for path, info in walk(source):
            relative = path.relative_to(source).as_posix()
            if wanted(relative):
                with open(path, "rb") as handle:
                    yield relative, _read_capped(handle, info.st_size, str(path), max_bytes)
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                if not info.is_dir() and wanted(info.filename):
                    with archive.open(info) as handle:
                        yield info.filename, _read_capped(handle, info.file_size, f"{source}:{info.filename}",
                                                          max_bytes)
    elif tarfile.is_tarfile(source):
        try:
            with tarfile.open(source) as archive:
                for member in archive:
                    if (member.isfile() or member.issym()) and wanted(member.name):
                        handle = archive.extractfile(member)  # a symlink resolves to its target member
                        if handle is None:
                            raise DataError(f"{source}:{member.name}: a link to nothing in the archive")
                        yield member.name, _read_capped(handle, member.size, f"{source}:{member.name}", max_bytes)
        except (tarfile.TarError, EOFError, OSError, KeyError) as err:
            raise DataError(f"{source}: corrupt or truncated archive ({err})") from None
    else:
        raise DataError(f"{source}: neither a directory nor a .tar, .tar.gz or .zip archive")
