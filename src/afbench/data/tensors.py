"""Your own data from Python (``from_tensors``) or an ``.npz`` file (``npz:PATH``).

Inputs may be (N, C, H, W) images, (N, H, W) single-channel images or (N, F) feature
vectors, as NumPy arrays or torch tensors:
- uint8 arrays are pixel values 0..255, as every loader returns them;
- float arrays are values in [0, 1] units (prepare() divides uint8 pixels by 255 to get
  there), kept exactly as float32 (stored x 255, so prepare's division gives them back).
  prepare() standardises each channel with the training split's mean and standard
  deviation, so for the default preparation the scale of float inputs does not matter.
(N, F) features become (N, F, 1, 1): each feature is a channel, standardised on its own.
Labels are integers 0..K-1 with K >= 2 classes (K = len(classes) when classes are given).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from afbench.data.formats import DataError, ImageData, check_source

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _numpy(array, what: str) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, on any device
        array = array.detach().cpu().numpy()
    try:
        return np.asarray(array)
    except Exception as err:
        raise DataError(f"{what}: not an array ({type(array).__name__}): {err}") from None


def _images(x, what: str) -> np.ndarray:
    x = _numpy(x, what)
    if x.ndim == 2:
        x = x[:, :, None, None]  # (N, F) -> (N, F, 1, 1): one channel per feature
    elif x.ndim == 3:
        x = x[:, None]  # (N, H, W) -> (N, 1, H, W)
    elif x.ndim != 4:
        raise DataError(f"{what} has shape {x.shape}: give (N, C, H, W) images, (N, H, W) single-channel "
                        "images or (N, F) features")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{what} has dtype {x.dtype}: give uint8 pixels (0..255) or floats in [0, 1] units")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{what} holds NaN or infinite values: clean them first")
    return x * np.float32(255.0)  # prepare() divides by 255 again


def _labels(y, n: int, what: str) -> np.ndarray:
    y = _numpy(y, what)
    if y.ndim != 1:
        raise DataError(f"{what} has shape {y.shape}: give one integer class label per sample, shape (N,)")
    if len(y) != n:
        raise DataError(f"{what} has {len(y)} labels for {n} samples: give one label per sample")
    if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what} has dtype {y.dtype}: labels are integer class indices 0..K-1")
    return y.astype(np.int64)


def from_tensors(x_train, y_train, x_test, y_test, *, name: str = "tensors",
                 classes: tuple[str, ...] | list[str] | None = None, source: str = "python") -> ImageData:
    """Your arrays or tensors as the ``ImageData`` every loader returns; then
    ``data.prepare`` splits, scales and standardises them like any other data set.

    ``classes`` names the classes (default "0", "1", ... up to the largest label).
    Bad shapes, mismatched lengths and labels outside 0..K-1 are ``DataError``s.
    """
    train_x, test_x = _images(x_train, f"{name}: x_train"), _images(x_test, f"{name}: x_test")
    if len(train_x) == 0 or len(test_x) == 0:
        raise DataError(f"{name}: x_train and x_test need at least one sample each")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{name}: x_train samples have shape {train_x.shape[1:]} but x_test samples "
                        f"{test_x.shape[1:]}: both splits need the same sample shape")
    if train_x.dtype != test_x.dtype:
        raise DataError(f"{name}: x_train is {_numpy(x_train, '').dtype} but x_test {_numpy(x_test, '').dtype}: "
                        "give both as uint8 pixels or both as floats")
    train_y = _labels(y_train, len(train_x), f"{name}: y_train")
    test_y = _labels(y_test, len(test_x), f"{name}: y_test")
    both = np.concatenate([train_y, test_y])
    count = len(classes) if classes is not None else int(both.max()) + 1
    if count < 2:
        raise DataError(f"{name}: {count} class: a classifier needs at least 2 (labels 0..K-1, K >= 2)")
    bad = both[(both < 0) | (both >= count)]
    if len(bad):
        raise DataError(f"{name}: label {int(bad[0])} is outside 0..{count - 1}"
                        + (f" ({count} classes given)" if classes is not None else "")
                        + ": labels are class indices 0..K-1")
    names = tuple(str(c) for c in classes) if classes is not None else tuple(str(i) for i in range(count))
    return ImageData(name, names, train_x, train_y, test_x, test_y, source=source)


def load_npz(path: str | Path) -> ImageData:
    """An .npz file with arrays x_train, y_train, x_test, y_test (optionally 'classes')."""
    path = Path(path).expanduser()
    if os.path.exists(path):
        check_source(path, "npz file")
    if not path.is_file():
        raise DataError(f"npz file '{path}' does not exist: give npz:PATH to a file saved with "
                        "numpy.savez(PATH, x_train=..., y_train=..., x_test=..., y_test=...)")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in NPZ_KEYS if k not in arrays.files]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)} (it holds {', '.join(arrays.files) or 'nothing'}):"
                                f" save it with numpy.savez(PATH, {', '.join(k + '=...' for k in NPZ_KEYS)})")
            loaded = {k: arrays[k] for k in NPZ_KEYS}
            classes = tuple(arrays["classes"].tolist()) if "classes" in arrays.files else None
    except DataError:
        raise
    except Exception as err:  # not a zip, truncated, pickled objects
        raise DataError(f"{path}: cannot read as .npz ({type(err).__name__}: {err})") from None
    return from_tensors(loaded["x_train"], loaded["y_train"], loaded["x_test"], loaded["y_test"],
                        name=f"npz:{path.name}", classes=classes, source=str(path.resolve()))
