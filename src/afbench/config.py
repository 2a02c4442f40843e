"""The settings of one training run, and the hash that identifies it.

Scientific parameter: the activation. Nuisance: the learning rate (tuned per
activation when several are given). Everything else is held fixed across a
comparison. Settings that change timings but not results (threads, data location)
are not part of the run's identity.

A run's key hashes only the settings that differ from their defaults, with a key
schema version: adding a setting with a default leaves every stored key unchanged,
so old results resume and pair by seed under a newer afbench.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, fields, replace

from afbench.errors import AfbenchError

OPTIMIZERS = ("adam", "sgd")
KEY_SCHEMA = 2  # bump only when the meaning of a stored setting changes (1 hashed every field: afbench 0.1.0)


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
    act_lr: float | None = None  # learning rate of learned activation parameters; None = lr
    target: float | None = None  # time-to-target: test accuracy in [0, 1]; other workloads: their primary metric
    init: str = "default"  # default | xavier | he | normal001 | zeros
    norm: str | None = None  # None = the model's own (batch for vgg11, none otherwise)
    hidden_bias: float | None = None  # e.g. 0.01 so ReLU units start active
    match_params: bool = False  # maxout: shrink widths to the ReLU model's parameter count
    allow_partial: bool = False  # a user's model may keep nonlinearities the swap cannot reach (F.relu in forward)
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
    workload: str = "classification"  # the task (afbench.workloads); the default leaves 0.2.0's keys unchanged

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise AfbenchError(f"unknown optimizer '{self.optimizer}': choose one of {', '.join(OPTIMIZERS)}")
        for name in ("epochs", "batch_size", "probe_size"):
            if getattr(self, name) < 1:
                raise AfbenchError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("train_subset", "image_size", "latency_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise AfbenchError(f"{name} must be at least 1 (or left out), got {value}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise AfbenchError(f"learning rate must be a positive number, got {self.lr} (e.g. --lr 1e-3)")
        if self.act_lr is not None and not (math.isfinite(self.act_lr) and self.act_lr > 0):
            raise AfbenchError(f"activation learning rate must be a positive number, got {self.act_lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise AfbenchError(f"weight decay must be 0 or more, got {self.weight_decay}")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise AfbenchError(f"momentum must be in [0, 1), got {self.momentum} (e.g. 0.9)")
        if not 0 <= self.valid_fraction < 1:
            raise AfbenchError(f"valid fraction must be in [0, 1), got {self.valid_fraction} (e.g. 0.1)")
        if self.target is not None and self.workload == "classification" and not 0 < self.target <= 1:
            raise AfbenchError(f"target is an accuracy in (0, 1], got {self.target} (e.g. 0.98 for 98%)")
        if self.target is not None and not math.isfinite(self.target):
            raise AfbenchError(f"target must be a finite number, got {self.target}")
        if self.hidden_bias is not None and not math.isfinite(self.hidden_bias):
            raise AfbenchError(f"hidden bias must be a finite number, got {self.hidden_bias}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """The config stored as ``values``. Unknown fields are an error: dropping them
        would silently turn a stored run into a different one."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AfbenchError(f"stored run settings have unknown fields {unknown}: written by a newer afbench? "
                               "Upgrade afbench to read them.")
        return cls(**values)

    def identity(self) -> dict:
        """The settings that differ from their defaults: what a run's key hashes."""
        defaults = {f.name: f.default for f in fields(self) if f.default is not MISSING}
        return {k: v for k, v in self.to_dict().items() if k not in defaults or v != defaults[k]}

    def key(self) -> str:
        """A stable hash of the non-default settings: the run's identity in the results database."""
        blob = json.dumps({"key_schema": KEY_SCHEMA, **self.identity()}, sort_keys=True, separators=(",", ":"))
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
