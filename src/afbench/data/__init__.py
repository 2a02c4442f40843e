"""Data sets by name: `digits` (embedded), `mnist`, `fashion-mnist`, `cifar10`,
`cifar100`, `imagefolder:PATH` and `npz:PATH`; your own arrays through ``from_tensors``;
an installed package's through an ``afbench.datasets`` entry point (a function
``load(data_dir=None) -> ImageData``, e.g. returning ``from_tensors(...)``).

>>> from afbench import data
>>> raw = data.load("digits")                 # uint8 (N, C, H, W) arrays
>>> prepared = data.prepare(raw, device="cpu")  # standardised tensors, ready to train
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from afbench.data import sources
from afbench.data.formats import DataError, ImageData, check_source
from afbench.data.imagefolder import load_imagefolder
from afbench.data.prep import Prepared, Split, class_counts, prepare as _prepare_images
from afbench.data.tensors import from_tensors, load_npz
from afbench.data import cache
from afbench.errors import AfbenchError
from afbench.plugins import Registry

__all__ = ["DataError", "ImageData", "Prepared", "Split", "availability", "class_counts", "fetch", "fingerprint",
           "from_tensors", "load", "names", "prepare", "DATASETS"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    num_classes: int
    image_shape: tuple[int, int, int]
    sizes: tuple[int, int]  # (train, test)
    locate: Callable[[str | Path | None], str | None]  # where it is locally, or None


def _where_idx(spec):
    def locate(data_dir):
        paths = sources.locate_idx(spec, data_dir)
        return None if None in paths.values() else str(paths["train_x"].parent)
    return locate


def _where_cifar(spec):
    def locate(data_dir):
        found = sources.locate_cifar(spec, data_dir)
        return str(found) if found else None
    return locate


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", "scikit-learn's 8x8 handwritten digits (embedded, no download)", 10,
                          (1, 8, 8), (1437, 360), lambda d: "bundled with scikit-learn"),
    "mnist": DatasetInfo("mnist", "MNIST handwritten digits (IDX)", 10, (1, 28, 28), (60000, 10000),
                         _where_idx(sources.MNIST)),
    "fashion_mnist": DatasetInfo("fashion-mnist", "Fashion-MNIST clothing images (IDX)", 10, (1, 28, 28),
                                 (60000, 10000), _where_idx(sources.FASHION_MNIST)),
    "cifar10": DatasetInfo("cifar10", "CIFAR-10 (python batches)", 10, (3, 32, 32), (50000, 10000),
                           _where_cifar(sources.CIFAR10)),
    "cifar100": DatasetInfo("cifar100", "CIFAR-100 (python batches; fine labels, --coarse for 20)", 100,
                            (3, 32, 32), (50000, 10000), _where_cifar(sources.CIFAR100)),
}


def _plugin_dataset(name: str, obj: object) -> Callable[..., ImageData]:
    if not callable(obj):
        raise AfbenchError(f"{obj!r} is not a data set loader (a function data_dir=None -> ImageData)")
    return obj


REGISTRY: Registry = Registry("datasets", {"fmnist": "fashion_mnist", "cifar_10": "cifar10", "cifar_100": "cifar100"},
                              adapt=_plugin_dataset, label="data set")
for _key, _info in DATASETS.items():
    REGISTRY.register(_key, _info)


def names() -> list[str]:
    plugins = [key for key in REGISTRY.names() if key not in DATASETS]
    return [info.name for info in DATASETS.values()] + plugins + ["imagefolder:PATH", "npz:PATH"]


def _canonical(name: str) -> str:
    return REGISTRY.canonical(name, hint=" Or imagefolder:PATH for a directory or archive of "
                                         "<split>/<class>/<image>, or npz:PATH for arrays x_train, y_train, "
                                         "x_test, y_test.")


def _load_plugin(key: str, data_dir) -> ImageData:
    try:
        loaded = REGISTRY.get(key)(data_dir=data_dir)
    except AfbenchError:
        raise
    except Exception as err:
        raise DataError(f"data set '{key}' (an installed package's) failed to load: {type(err).__name__}: {err}") \
            from err
    if not isinstance(loaded, ImageData):
        raise DataError(f"data set '{key}' (an installed package's) returned {type(loaded).__name__}, not "
                        "afbench.data.ImageData: build it with afbench.data.from_tensors")
    return loaded


def prepare(raw: "ImageData | Prepared", **options) -> Prepared:
    """Standardised tensors on the device (``prep.prepare``); a workload's data
    (``load`` gave its ``Prepared`` splits already) just moves to the device."""
    if isinstance(raw, Prepared):
        device = options.get("device", "cpu")
        move = lambda split: None if split is None else Split(split.x.to(device), split.y.to(device))
        train = _subset(raw.train, options.get("train_subset"))
        return Prepared(raw.name, raw.classes, move(train), move(raw.test), move(raw.valid), raw.mean, raw.std)
    return _prepare_images(raw, **options)


def _subset(split: Split, size: int | None) -> Split:
    """The first ``size`` rows of a fixed shuffle (the rule image data follow in
    ``prep.prepare``), kept in their order: a smaller budget trains on the same rows."""
    if size is None or size >= len(split.y):
        return split
    rows = torch.from_numpy(np.sort(np.random.default_rng(1).permutation(len(split.y))[:size]))
    return Split(split.x[rows], split.y[rows])


def load(name: str, data_dir: str | Path | None = None, *, download: bool = True, verify: bool = True,
         image_size: int | None = None, coarse: bool = False) -> ImageData:
    """Load a data set as uint8 arrays, from a local copy, the cache or a download.

    ``verify`` checks the published content checksums (MNIST family); ``image_size``
    resizes image folders; ``coarse`` selects CIFAR-100's 20 superclasses. The data of
    the other workloads (text, an image to fit, a PDE, functions) is theirs to load:
    ``afbench.workloads.load`` takes any data set name.
    """
    if name.startswith("imagefolder:"):
        path = Path(name.split(":", 1)[1]).expanduser()
        if not os.path.exists(path):
            raise DataError(f"image folder '{path}' does not exist: give a directory or a .tar/.tar.gz/.zip archive")
        check_source(path, "image folder")  # a pipe or a device: refused before anything reads it
        return cache.cached(name, [path], {"image_size": image_size}, lambda: load_imagefolder(path, image_size))
    if name.startswith("npz:"):
        return load_npz(name.split(":", 1)[1])
    key = _canonical(name)
    if key not in DATASETS:
        return _load_plugin(key, data_dir)
    if key == "digits":
        return sources.load_digits()
    if key in ("mnist", "fashion_mnist"):
        spec = sources.MNIST if key == "mnist" else sources.FASHION_MNIST
        return sources.load_idx(spec, data_dir, download=download, verify=verify)
    spec = sources.CIFAR10 if key == "cifar10" else sources.CIFAR100
    return sources.load_cifar(spec, data_dir, download=download, coarse=coarse)


def fingerprint(name: str, data_dir: str | Path | None = None, *, image_size: int | None = None,
                coarse: bool = False) -> str:
    """The content fingerprint (``ImageData.fingerprint``) of data set ``name`` as a run with
    these settings loads it: what a run's provenance records, and what tells two runs on
    different data apart. Hashed once, then kept in the decoded-data cache."""
    return load(name, data_dir, image_size=image_size, coarse=coarse).fingerprint


def fetch(name: str, data_dir: str | Path | None = None) -> ImageData:
    """Download (if needed) and verify a data set ahead of time."""
    return load(name, data_dir, download=True, verify=True)


def availability(data_dir: str | Path | None = None) -> list[dict]:
    """One row per data set: where it is locally (or None), size, classes, shape."""
    plugins = [{"name": key, "location": "from its package", "train": "?", "test": "?", "classes": "?",
                "shape": "?", "description": f"an installed package's ({REGISTRY.origin(key)})"}
               for key in REGISTRY.names() if key not in DATASETS]
    return [{"name": info.name, "location": info.locate(data_dir), "train": info.sizes[0], "test": info.sizes[1],
             "classes": info.num_classes, "shape": "x".join(map(str, info.image_shape)),
             "description": info.description} for info in DATASETS.values()] + plugins
