"""Image-folder data sets: `<split>/<class>/<image>` or `<class>/<image>` trees, in a
directory or an archive (how Caltech-256, PI100 and the CIFAR-10 JPEG copy ship).

What cannot train is refused: fewer than 2 classes or more than MAX_CLASSES before any
image is decoded; a class with a single image where afbench must split it (nothing would
be left to train on or to test) and a class with no training image. Class names that are
not UTF-8 are kept as text with \\xNN escapes (formats.printable).
"""

from __future__ import annotations

import io
import os
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from afbench.data.formats import DataError, ImageData, iter_files, printable

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
SPLITS = {"train": "train", "test": "test", "val": "valid", "valid": "valid", "validation": "valid"}
_GREY_MODES = {"1", "L", "I", "I;16", "F"}
MAX_IMAGE_BYTES = 64 * 2**20  # one encoded image file
# ImageNet's count. afbench's models, per-class tables and figures are built for up to
# about this many classes; a folder of 10,000 classes of 2 images is more likely a wrong
# path (one folder per image) than a data set to compare activations on.
MAX_CLASSES = 1000


def _is_image(path: str) -> bool:
    parts = PurePosixPath(path).parts
    hidden = any(p.startswith(".") or p == "__MACOSX" for p in parts)
    return not hidden and PurePosixPath(path).suffix.lower() in IMAGE_SUFFIXES


def _strip_common_root(paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Drop a wrapping folder ('caltech256/<class>/x.jpg') shared by every path."""
    while (paths and all(len(p) > 2 for p in paths) and len({p[0] for p in paths}) == 1
           and paths[0][0].lower() not in SPLITS):
        paths = [p[1:] for p in paths]
    return paths


def _layout(paths: list[tuple[str, ...]], source: Path) -> list[tuple[str | None, str]]:
    """(split or None, class) per image."""
    if all(len(p) == 3 and p[0].lower() in SPLITS for p in paths):
        return [(SPLITS[p[0].lower()], printable(p[1])) for p in paths]
    if all(len(p) == 2 for p in paths):
        return [(None, printable(p[0])) for p in paths]
    example = "/".join(next(p for p in paths if not (len(p) == 2 or (len(p) == 3 and p[0].lower() in SPLITS))))
    raise DataError(f"{source}: cannot tell classes from '{printable(example)}'. Expected <split>/<class>/<image> "
                    f"(splits: train, test, val) or <class>/<image>")


def _decode(raw: bytes, where: str, size: int | None) -> np.ndarray:
    """(H, W) for grey images, (H, W, 3) for colour, uint8."""
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img = img.convert("L" if img.mode in _GREY_MODES else "RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except Image.DecompressionBombError as err:
        raise DataError(f"{where}: refused, too many pixels for an image of a data set ({err})") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        reason = str(err).split(" <_io.")[0]  # PIL names the in-memory buffer, which tells the user nothing
        raise DataError(f"{where}: cannot decode image ({reason}); remove or replace it") from None


def load_imagefolder(source: Path, image_size: int | None = None, test_fraction: float = 0.2,
                     split_seed: int = 0) -> ImageData:
    """Decode every image to one fixed size. Without ``image_size`` the images must
    share one size. Without split folders, a stratified ``test_fraction`` of each
    class (seeded by ``split_seed``) becomes the test split."""
    if not source.exists():
        raise DataError(f"image folder {source} does not exist")
    # Other members are never decompressed; an image over MAX_IMAGE_BYTES is no data-set image.
    files = list(iter_files(source, wanted=_is_image, max_bytes=MAX_IMAGE_BYTES))
    if not files:
        raise DataError(f"{source}: no images found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    paths = _strip_common_root([PurePosixPath(p).parts for p, _ in files])
    layout = _layout(paths, source)
    classes = tuple(sorted({cls for _, cls in layout}))
    _check_class_count(source, classes, len(layout))  # before decoding: a wrong folder fails in seconds
    if image_size is not None:
        _check_memory(source, len(files), (3, image_size, image_size), f"--image-size {image_size}")
    first = _decode(files[0][1], f"{source}:{printable(files[0][0])}", image_size)
    _check_memory(source, len(files), (3 if first.ndim == 3 else 1, *first.shape[:2]), "its images' size")
    images = [first] + [_decode(raw, f"{source}:{printable(path)}", image_size) for path, raw in files[1:]]
    _check_class_sizes(source, classes, layout)
    shapes = {img.shape[:2] for img in images}
    if len(shapes) > 1:
        (a, b) = sorted(shapes)[:2]
        raise DataError(f"{source}: images differ in size ({a[1]}x{a[0]}, {b[1]}x{b[0]}, ... "
                        f"{len(shapes)} sizes): give a fixed size, e.g. --image-size 64")
    colour = any(img.ndim == 3 for img in images)
    stacked = np.stack([_channels_first(img, colour) for img in images])  # (N, C, H, W)
    index = {cls: i for i, cls in enumerate(classes)}
    labels = np.array([index[cls] for _, cls in layout], dtype=np.int64)
    splits = np.array([split or "" for split, _ in layout])
    train, test = _split_masks(splits, labels, test_fraction, split_seed)
    return ImageData(f"imagefolder:{source}", classes, stacked[train], labels[train], stacked[test],
                     labels[test], source=str(source))


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX, or not told
        return None


def _check_memory(source: Path, count: int, shape: tuple[int, int, int], why: str) -> None:
    """Refuse, before decoding them all, images that would not fit: as float32 tensors
    (what training holds) they may take at most half of this machine's memory."""
    need = count * shape[0] * shape[1] * shape[2] * 4
    memory = _physical_memory()
    if memory and need > memory // 2:
        raise DataError(f"{source}: {count} images of {shape[2]}x{shape[1]} ({why}) take about {need / 2**30:.1f} GB "
                        f"as float32 tensors, over half of this machine's {memory / 2**30:.0f} GB: give a smaller "
                        "--image-size (e.g. 64) or fewer images")


def _check_class_count(source: Path, classes: tuple[str, ...], images: int) -> None:
    if len(classes) < 2:
        raise DataError(f"{source}: one class ({', '.join(classes)}) found; a classification data set needs at "
                        "least 2 class folders, e.g. cats/ and dogs/")
    if len(classes) > MAX_CLASSES:
        raise DataError(f"{source}: {len(classes)} classes ({images} images), over afbench's limit of "
                        f"{MAX_CLASSES}: is this the folder of <class>/<image> (not one folder per image)? "
                        "Compare activations on a subset of the classes")


def _check_class_sizes(source: Path, classes: tuple[str, ...], layout: list[tuple[str | None, str]]) -> None:
    """Every class must have training images, and a test image where afbench splits it."""
    if any(split is not None for split, _ in layout):
        training = {cls for split, cls in layout if split == "train"}
        missing = [cls for cls in classes if cls not in training]
        if missing:
            more = f" (and {len(missing) - 1} more classes)" if len(missing) > 1 else ""
            raise DataError(f"{source}: class '{missing[0]}'{more} has no image in train/: the model could never learn it; add training images or "
                            "remove the class")
        return
    single = sorted(cls for cls, n in Counter(cls for _, cls in layout).items() if n < 2)
    if single:
        more = f" (and {len(single) - 1} more classes)" if len(single) > 1 else ""
        raise DataError(f"{source}: class '{single[0]}'{more} has a single image: afbench splits each class into "
                        "training and test images, so it needs at least 2 per class; add images, or give "
                        "train/ and test/ folders")


def _channels_first(img: np.ndarray, colour: bool) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2) if colour else img[:, :, None]
    return img.transpose(2, 0, 1)


def _split_masks(splits: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int):
    if (splits == "train").any():
        test_name = "test" if (splits == "test").any() else "valid"
        if not (splits == test_name).any():
            raise DataError("image folder has a train/ split but no test/ or val/ split")
        return splits == "train", splits == test_name
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[int(label)].append(i)
    for members in by_class.values():
        chosen = rng.permutation(members)[: max(1, round(test_fraction * len(members)))]
        test[chosen] = True
    return ~test, test
