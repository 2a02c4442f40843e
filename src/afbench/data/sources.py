"""The named data sets: where their files are looked for, how they are verified,
downloaded (pooch, with checksums, atomically) and decoded.

Resolution order for a directory: the explicit ``data_dir``, then the environment
variable AFBENCH_DATA_DIR, then afbench's user cache. Downloads go to the first of
those. AFBENCH_OFFLINE=1 forbids downloads (the tests set it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from afbench.data import cache
from afbench.data.formats import (DataError, ImageData, check_labels, check_pair, iter_files, label_names, md5,
                                  parse_cifar_batch, parse_idx, read_bytes)


def search_dirs(data_dir: str | Path | None) -> list[Path]:
    """The folders to look in: ``data_dir``, AFBENCH_DATA_DIR, the user cache. A given one
    that exists but is not a folder is refused: looked in, a file would pass for CIFAR's
    archive, so every command would claim a data set is there."""
    given = ((data_dir, "--data-dir"), (os.environ.get("AFBENCH_DATA_DIR"), "AFBENCH_DATA_DIR"))
    dirs = [_folder(value, name) for value, name in given if value]
    return dirs + [cache.cache_dir() / "data"]


def _folder(value: str | Path, name: str) -> Path:
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise DataError(f"{name} must be a folder, and {path} is a file: name the folder that holds the data "
                        "sets' files instead")
    return path


def offline() -> bool:
    return os.environ.get("AFBENCH_OFFLINE", "") not in ("", "0")


# ---- MNIST family ------------------------------------------------------------------

@dataclass(frozen=True)
class IdxSpec:
    name: str
    classes: tuple[str, ...]
    subdirs: tuple[str, ...]  # layouts under a data directory, '' = flat
    mirrors: tuple[str, ...]
    # md5 of each *decompressed* file: recompressed copies are accepted, wrong content is not.
    content_md5: dict[str, str]
    extra_dirs: tuple[str, ...] = ()  # system locations, e.g. Debian's package
    counts: dict[str, int] = field(default_factory=lambda: {"train": 60000, "test": 10000})


_IDX_FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
              "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}

MNIST = IdxSpec(
    "mnist", tuple("0123456789"), ("", "mnist", "MNIST/raw"),
    ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    {"train_x": "6bbc9ace898e44ae57da46a324031adb", "train_y": "a25bea736e30d166cdddb491f175f624",
     "test_x": "2646ac647ad5339dbf082846283269ea", "test_y": "27ae3e4e09519cfbb04c329615203637"},
)
FASHION_MNIST = IdxSpec(
    "fashion-mnist", ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    ("", "fashion-mnist", "FashionMNIST/raw"),
    ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    {"train_x": "f4a8712d7a061bf5bd6d2ca38dc4d50a", "train_y": "9018921c3c673c538a1fc5bad174d6f9",
     "test_x": "8181f5470baa50b63fa0f6fddb340f0a", "test_y": "15d484375f8d13e6eb1aabb0c3f46965"},
    extra_dirs=("/usr/share/datasets/fashion-mnist",),
)


def _find_idx_file(spec: IdxSpec, stem: str, base: Path) -> Path | None:
    for sub in spec.subdirs:
        for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
            if (base / sub / name).is_file():
                return base / sub / name
    return None


def _idx_candidates(spec: IdxSpec, data_dir) -> list[Path]:
    return search_dirs(data_dir) + [Path(d) for d in spec.extra_dirs]


def _holds(spec: IdxSpec, test_labels: Path) -> bool:
    """MNIST and Fashion-MNIST share file names; the 10 KB test-label file tells them apart."""
    try:
        return md5(read_bytes(test_labels)) == spec.content_md5["test_y"]
    except DataError:
        return False


def locate_idx(spec: IdxSpec, data_dir=None, verify: bool = True) -> dict[str, Path | None]:
    """The four files, from the first candidate folder that has them all (and, with
    ``verify``, holds this data set rather than its namesake)."""
    for base in _idx_candidates(spec, data_dir):
        paths = {part: _find_idx_file(spec, stem, base) for part, stem in _IDX_FILES.items()}
        if None not in paths.values() and (not verify or _holds(spec, paths["test_y"])):
            return paths
    return {part: None for part in _IDX_FILES}


def _missing_error(name: str, missing: list[str], looked: list[Path], mirrors, why: str = "") -> DataError:
    """One message: what is missing, where afbench looked, why it did not download, and
    where the files are (each mirror folder once, not every file at every mirror)."""
    where = mirrors[0] if len(mirrors) == 1 else "one of " + ", ".join(mirrors)
    return DataError(
        f"{name}: missing {', '.join(missing)}. Looked in: {', '.join(str(p) for p in looked)}. "
        f"{why}Download {'it' if len(missing) == 1 else 'them'} from {where}. To use a local copy, pass --data-dir "
        f"DIR (or set AFBENCH_DATA_DIR=DIR) with the files in DIR; or run `afbench data fetch {name}` online."
    )


def _first_words(err: BaseException, limit: int = 100) -> str:
    """An error's first line, cut to ``limit`` characters: a network library nests whole
    exceptions in its messages."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _download(name: str, files: list[str], mirrors: tuple[str, ...], target: Path,
              known_hash: dict[str, str | None] | None = None) -> None:
    """Fetch ``files`` into ``target`` with pooch (temporary file + rename: atomic)."""
    import pooch

    if offline():
        raise _missing_error(name, files, [target], mirrors, "Downloads are off (AFBENCH_OFFLINE=1). ")
    target.mkdir(parents=True, exist_ok=True)
    for fname in files:
        errors = []
        for mirror in mirrors:
            try:
                pooch.retrieve(mirror + fname, known_hash=(known_hash or {}).get(fname), fname=fname,
                               path=target, progressbar=True)
                break
            except Exception as err:  # network errors, HTTP errors, checksum mismatches
                errors.append(f"{mirror}: {_first_words(err)}")
        else:
            raise _missing_error(name, [fname], [target], mirrors, f"Download failed ({'; '.join(errors)}). ")


def _decode_idx(spec: IdxSpec, paths: dict[str, Path], verify: bool) -> ImageData:
    arrays = {}
    for part, path in paths.items():
        raw = read_bytes(path)
        if verify and md5(raw) != spec.content_md5[part]:
            raise DataError(f"{path}: content md5 {md5(raw)} is not the published {spec.content_md5[part]}: "
                            f"corrupt or not {spec.name}. Delete it and fetch it again (or pass verify=False "
                            "for a deliberately modified copy)")
        arrays[part] = parse_idx(raw, path, expect_ndim=3 if part.endswith("_x") else 1)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_x"], arrays[f"{split}_y"].astype(np.int64)
        check_pair(images, labels, f"{spec.name} {split}")
        check_labels(labels, len(spec.classes), f"{paths[split + '_y']}")
        if verify and len(images) != spec.counts[split]:
            raise DataError(f"{spec.name} {split}: {len(images)} images, expected {spec.counts[split]}")
        arrays[f"{split}_x"], arrays[f"{split}_y"] = images[:, None], labels  # (N, 1, 28, 28)
    where = str(paths["train_x"].parent)
    return ImageData(spec.name, spec.classes, arrays["train_x"], arrays["train_y"], arrays["test_x"],
                     arrays["test_y"], source=where)


def load_idx(spec: IdxSpec, data_dir=None, download: bool = True, verify: bool = True) -> ImageData:
    paths = locate_idx(spec, data_dir, verify)
    if None in paths.values():  # files that exist but hold something else fail below, by name
        paths = locate_idx(spec, data_dir, verify=False)
    missing = [_IDX_FILES[p] + ".gz" for p, path in paths.items() if path is None]
    if missing:
        target = search_dirs(data_dir)[0]
        if not download:
            raise _missing_error(spec.name, missing, _idx_candidates(spec, data_dir), spec.mirrors)
        _download(spec.name, missing, spec.mirrors, target)
        paths = locate_idx(spec, data_dir)
        try:
            _decode_idx(spec, paths, verify=True)
        except DataError:
            for f in missing:  # never keep a downloaded file that fails verification
                (target / f).unlink(missing_ok=True)
            raise
    return cache.cached(spec.name, list(paths.values()), {"verify": verify},
                        lambda: _decode_idx(spec, paths, verify))


# ---- CIFAR -------------------------------------------------------------------------

@dataclass(frozen=True)
class CifarSpec:
    name: str
    folder: str  # what the archive unpacks to
    archive: str
    archive_md5: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    url: str = "https://www.cs.toronto.edu/~kriz/"


CIFAR10 = CifarSpec("cifar10", "cifar-10-batches-py", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                    tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "batches.meta")
CIFAR100 = CifarSpec("cifar100", "cifar-100-python", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                     ("train",), ("test",), "meta")


def locate_cifar(spec: CifarSpec, data_dir=None) -> Path | None:
    """The unpacked folder, or the archive itself (read in place, never extracted)."""
    for base in search_dirs(data_dir):
        for candidate in (base / spec.folder, base, base / spec.archive):
            if candidate.is_dir() and (candidate / spec.meta_file).is_file():
                return candidate
            if candidate.is_file():
                return candidate
    return None


def _cifar_members(source: Path, spec: CifarSpec) -> dict[str, bytes]:
    wanted = set(spec.train_files + spec.test_files + (spec.meta_file,))
    if source.is_dir():
        found = {name: (source / name).read_bytes() for name in wanted if (source / name).is_file()}
    else:
        found = {Path(path).name: raw for path, raw in iter_files(source, wanted=lambda p: Path(p).name in wanted)}
    missing = sorted(wanted - set(found))
    if missing:
        raise DataError(f"{source}: incomplete {spec.name}, missing {', '.join(missing)}")
    return found


def _decode_cifar(spec: CifarSpec, source: Path, coarse: bool) -> ImageData:
    members = _cifar_members(source, spec)
    label_key = "labels" if spec.name == "cifar10" else ("coarse_labels" if coarse else "fine_labels")
    names_key = "label_names" if spec.name == "cifar10" else label_key.replace("labels", "label_names")
    classes = label_names(members[spec.meta_file], f"{source}/{spec.meta_file}", names_key)
    splits = {}
    for split, files in (("train", spec.train_files), ("test", spec.test_files)):
        parts = [parse_cifar_batch(members[f], f"{source}/{f}", label_key) for f in files]
        images, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        check_labels(labels, len(classes), f"{source} ({split})")
        splits[split] = (images, labels)
    name = spec.name + ("-coarse" if coarse else "")
    return ImageData(name, classes, *splits["train"], *splits["test"], source=str(source))


def load_cifar(spec: CifarSpec, data_dir=None, download: bool = True, coarse: bool = False) -> ImageData:
    source = locate_cifar(spec, data_dir)
    if source is None:
        target = search_dirs(data_dir)[0]
        if not download:
            raise _missing_error(spec.name, [spec.archive], search_dirs(data_dir), (spec.url,))
        _download(spec.name, [spec.archive], (spec.url,), target, {spec.archive: f"md5:{spec.archive_md5}"})
        source = target / spec.archive
    files = [source / f for f in spec.train_files + spec.test_files] if source.is_dir() else [source]
    return cache.cached(spec.name, files, {"coarse": coarse}, lambda: _decode_cifar(spec, source, coarse))


# ---- digits (embedded) -------------------------------------------------------------

def load_digits() -> ImageData:
    """scikit-learn's bundled 8x8 digits (1,797 images): no download. The fixed,
    stratified 80/20 split (seed 0) gives 1,437 train and 360 test images."""
    from importlib.metadata import version

    # Importing scikit-learn takes ~2 s; the cached arrays load in milliseconds.
    return cache.cached("digits", [], {"scikit-learn": version("scikit-learn")}, _decode_digits)


def _decode_digits() -> ImageData:
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    # Pixel values are 0..16; scale to the 0..255 range every other data set uses.
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(images, labels, test_size=360, stratify=labels,
                                                        random_state=0)
    return ImageData("digits", tuple("0123456789"), train_x, train_y, test_x, test_y, source="scikit-learn")


