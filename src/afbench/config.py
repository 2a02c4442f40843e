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

from afbench import rules
from afbench.errors import AfbenchError

OPTIMIZERS = ("adam", "sgd")
SWEPT = ("activation", "seed", "model", "dataset", "lr", "device")  # set by a study's grid, or its execution
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
    data_fingerprint: str | None = None  # data.fingerprint of what it trains on: runs on other data never pair
    workload: str = "classification"  # the task (afbench.workloads); the default leaves 0.2.0's keys unchanged

    def __post_init__(self) -> None:
        """Every field follows its rule (the same rules the flags and study files use)."""
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None or item.name == "device":
                continue
            try:
                setting_rule(item.name, type(self)).value(value)
            except rules.Invalid as err:
                raise AfbenchError(describe(item.name, err)) from None
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise AfbenchError(f"learning rate must be a positive number, got {self.lr} (e.g. --lr 1e-3)")
        if self.target is not None and self.workload == "classification":
            try:
                rules.ACCURACY.value(self.target)  # any other workload's target is in its own metric
            except rules.Invalid as err:
                raise AfbenchError(describe("target", err)) from None

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

    def fuse_key(self) -> str:
        """Runs with equal fuse keys differ only in their seed and activation: they may
        train as one stack, each member with its own activation."""
        return self.with_(seed=0, activation="<any>").key()  # never a stack key: no activation has that name

    def with_(self, **changes) -> "RunConfig":
        return replace(self, **changes)

    def data_key(self) -> tuple:
        """Runs with equal data keys share one prepared data set."""
        return (self.dataset, self.split, self.valid_fraction, self.whitening, self.train_subset, self.image_size,
                self.coarse)


# RunConfig fields with a rule narrower than their type; any other field follows its annotation.
SETTING_RULES: dict[str, rules.Rule] = {
    "epochs": rules.POSITIVE_INT, "batch_size": rules.POSITIVE_INT, "probe_size": rules.POSITIVE_INT,
    "seed": rules.SEED, "lr": rules.POSITIVE, "optimizer": rules.choice(*OPTIMIZERS),
    "momentum": rules.UNIT_INTERVAL, "weight_decay": rules.NON_NEGATIVE, "act_lr": rules.POSITIVE,
    "target": rules.FINITE, "hidden_bias": rules.FINITE, "split": rules.choice("official", "s2"),
    "valid_fraction": rules.UNIT_INTERVAL, "whitening": rules.choice("pca", "zca"),
    "train_subset": rules.POSITIVE_INT, "image_size": rules.IMAGE_SIZE, "latency_samples": rules.POSITIVE_INT}
_BY_TYPE = {"int": rules.Rule("a whole number", (int,)), "float": rules.FINITE, "str": rules.TEXT,
            "bool": rules.BOOL}
_ANY = rules.Rule("a value", (object,))


def setting_rule(name: str, config_type: type | None = None) -> rules.Rule:
    """The rule of RunConfig field ``name`` (or of a subclass's, ``config_type``): a
    [settings] key, or the flag that sets it."""
    if name in SETTING_RULES:
        return SETTING_RULES[name]
    annotation = next(str(f.type) for f in fields(config_type or RunConfig) if f.name == name)
    kinds = [part.strip() for part in annotation.split("|") if part.strip() != "None"]
    return _BY_TYPE.get(kinds[0], _ANY)  # a field of another type is checked where it is used


def setting_names() -> list[str]:
    """RunConfig fields a study's [settings] table may hold: all but the swept ones."""
    return [f.name for f in fields(RunConfig) if f.name not in SWEPT]


def describe(name: str, err: rules.Invalid) -> str:
    """A broken rule in words: 'unknown optimizer 'rmsprop': choose adam or sgd'."""
    if err.choices:
        return f"unknown {name} {err.got}: choose {err.expected}"
    return f"{name} is {err.expected}, got {err.got}"
