"""From decoded uint8 arrays to standardised tensors on the training device.

Splits are made first, so normalisation statistics (and whitening) come from the
training split alone. The result lives on the device once; the engine batches it by
index slices of a per-epoch randperm, with no DataLoader.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from afbench.data.formats import DataError, ImageData

SPLIT_SCHEMES = ("official", "s2")  # s2: all images re-split 7:2:1 into train/test/valid (study S2)


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # (N, C, H, W) float32, standardised
    y: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Prepared:
    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split
    valid: Split | None
    mean: tuple[float, ...]  # per channel, of the training split, in [0, 1] units
    std: tuple[float, ...]
    fingerprint: str = ""  # the decoded data's content hash (ImageData.fingerprint): which data this is

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


MIN_TRAIN = 2  # training samples: one alone has no standard deviation, and every run on it diverges


def _split_indices(raw: ImageData, scheme: str, valid_fraction: float, seed: int):
    """Index arrays into the concatenation [train; test] for train, test and valid."""
    n_train, n_test = len(raw.train_y), len(raw.test_y)
    rng = np.random.default_rng(seed)
    if scheme == "s2":
        order = rng.permutation(n_train + n_test)
        n_tr, n_te = round(0.7 * len(order)), round(0.2 * len(order))
        return order[:n_tr], order[n_tr:n_tr + n_te], order[n_tr + n_te:]
    if scheme != "official":
        raise DataError(f"unknown split scheme '{scheme}': choose one of {', '.join(SPLIT_SCHEMES)}")
    if not 0 <= valid_fraction < 1:
        raise DataError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    order = rng.permutation(n_train)
    n_valid = round(valid_fraction * n_train)
    return np.sort(order[n_valid:]), np.arange(n_train, n_train + n_test), np.sort(order[:n_valid])


def _whitening_matrix(centred: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
    """(D, D) map for per-pixel centred (N, D) data: PCA rotates and scales onto the
    principal axes; ZCA rotates back, so whitened images still look like images (S5)."""
    cov = centred.T @ centred / len(centred)
    eigenvalues, vectors = torch.linalg.eigh(cov.double())
    scale = (eigenvalues + eps).rsqrt()
    pca = vectors * scale  # (D, D): column j scaled by 1/sqrt(lambda_j + eps)
    return (pca if kind == "pca" else pca @ vectors.T).to(centred.dtype)


def prepare(raw: ImageData, *, device: str | torch.device = "cpu", split: str = "official",
            valid_fraction: float = 0.0, split_seed: int = 0, standardize: bool = True,
            whitening: str | None = None, whitening_eps: float = 1e-2, train_subset: int | None = None) -> Prepared:
    """Split, scale to [0, 1], standardise per channel with training statistics,
    optionally whiten (``'pca'`` or ``'zca'``), and move to ``device``."""
    train_idx, test_idx, valid_idx = _split_indices(raw, split, valid_fraction, split_seed)
    if len(train_idx) < MIN_TRAIN and valid_fraction > 0 and split == "official":
        raise DataError(f"the validation fraction {valid_fraction:g} leaves {len(train_idx)} of the "
                        f"{len(raw.train_y):,} training samples of {raw.name} (at least {MIN_TRAIN} are needed to "
                        "train and standardise): use a smaller --valid-fraction")
    if train_subset is not None:
        train_idx = np.sort(np.random.default_rng(split_seed + 1).permutation(train_idx)[:train_subset])
    if len(train_idx) < MIN_TRAIN:
        raise DataError(f"{raw.name}: {len(train_idx)} training sample{'' if len(train_idx) == 1 else 's'} left "
                        f"(at least {MIN_TRAIN} are needed to train and standardise): use a larger --train-subset, "
                        "a smaller --valid-fraction or a larger data set")
    images = np.concatenate([raw.train_x, raw.test_x])
    labels = np.concatenate([raw.train_y, raw.test_y])

    def tensors(idx):
        x = torch.from_numpy(images[idx]).to(device=device, dtype=torch.float32).div_(255.0)
        return x, torch.from_numpy(labels[idx]).to(device)

    parts = {"train": tensors(train_idx), "test": tensors(test_idx)}
    if len(valid_idx):
        parts["valid"] = tensors(valid_idx)
    train_x = parts["train"][0]
    mean = train_x.mean(dim=(0, 2, 3))
    std = train_x.std(dim=(0, 2, 3)).clamp(min=1e-6)
    if standardize:
        for x, _ in parts.values():
            x.sub_(mean[:, None, None]).div_(std[:, None, None])
    if whitening:
        if whitening not in ("pca", "zca"):
            raise DataError(f"unknown whitening '{whitening}': choose pca or zca")
        shape = train_x.shape[1:]
        pixel_mean = parts["train"][0].flatten(1).mean(dim=0)  # (D,)
        matrix = _whitening_matrix(parts["train"][0].flatten(1) - pixel_mean, whitening, whitening_eps)
        parts = {k: (((x.flatten(1) - pixel_mean) @ matrix).view(-1, *shape), y) for k, (x, y) in parts.items()}
    splits = {k: Split(x.contiguous(), y) for k, (x, y) in parts.items()}
    return Prepared(raw.name, raw.classes, splits["train"], splits["test"], splits.get("valid"),
                    tuple(mean.tolist()), tuple(std.tolist()), raw.fingerprint)


def class_counts(data: Prepared) -> dict[str, list[int]]:
    """Samples per class in each split (S2's bar chart)."""
    out = {}
    for name in ("train", "valid", "test"):
        split = getattr(data, name)
        if split is not None and split.y.dim() == 1 and not split.y.is_floating_point():  # classes, not targets
            out[name] = torch.bincount(split.y.cpu(), minlength=data.num_classes).tolist()
    return out


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """CIFAR augmentation on a whole batch on its device: random crop after zero
    padding by ``padding`` pixels, and a horizontal flip with probability 1/2."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dev = x.device
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=generator.device).to(dev)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=generator.device).to(dev)
    flip = torch.rand(n, generator=generator, device=generator.device).to(dev) < 0.5
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, :, None]  # (N, H, 1)
    cols = ox[:, None] + torch.arange(w, device=dev)  # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, :]  # (N, 1, W)
    batch = torch.arange(n, device=dev)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (N, C, H, W)
