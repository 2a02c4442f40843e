"""The settings of one training run, and the hash that identifies it.

Scientific parameter: the activation. Nuisance: the learning rate (tuned per
activation when several are given). Everything else is held fixed across a
comparison. Settings that change timings but not results (threads, data location)
are not part of the run's identity.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace

from afbench.errors import AfbenchError

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class RunConfig:
    dataset: str = "digits"  # data set name, or imagefolder:PATH
    model: str = "mlp"
    activation: str = "relu"  # registered name, formula in x, or module:Name
    seed: int = 0  # model init, data order and dropout; paired across activations
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0  # never applied to learned activation parameters
    target: float | None = None  # test accuracy in [0, 1] for time-to-target
    init: str = "default"  # default | xavier | he | normal001 | zeros
    norm: str | None = None  # None = the model's own (batch for vgg11, none otherwise)
    hidden_bias: float | None = None  # e.g. 0.01 so ReLU units start active
    match_params: bool = False  # maxout: shrink widths to the ReLU model's parameter count
    split: str = "official"  # official | s2 (all images re-split 7:2:1)
    valid_fraction: float = 0.0  # of train, held out for learning-rate selection
    augment: bool = False  # random crop (pad 4) + flip, on the device
    whitening: str | None = None  # None | pca | zca
    train_subset: int | None = None  # use only this many training images
    image_size: int | None = None  # resize image folders to this square size
    coarse: bool = False  # CIFAR-100's 20 superclasses
    latency_samples: int | None = None  # test images timed one by one; None = all
    probe_size: int = 512  # training images in the fixed probe batch for diagnostics
    device: str = "cpu"  # resolved device type; results differ across device types

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise AfbenchError(f"unknown optimizer '{self.optimizer}': choose one of {', '.join(OPTIMIZERS)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise AfbenchError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise AfbenchError(f"learning rate must be positive, got {self.lr}")
        if self.target is not None and not 0 < self.target <= 1:
            raise AfbenchError(f"target is an accuracy in (0, 1], got {self.target} (e.g. 0.98 for 98%)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def key(self) -> str:
        """A stable hash of every setting: the run's identity in the results database."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def stack_key(self) -> str:
        """Runs with equal stack keys differ only in their seed and may train as one stack."""
        return self.with_(seed=0).key()

    def with_(self, **changes) -> "RunConfig":
        return replace(self, **changes)

    def data_key(self) -> tuple:
        """Runs with equal data keys share one prepared data set."""
        return (self.dataset, self.split, self.valid_fraction, self.whitening, self.train_subset, self.image_size,
                self.coarse)
