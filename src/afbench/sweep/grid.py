"""Experiment grids and the studies' presets (study files in afbench/presets/).

A sweep is activations x models x data sets x seeds (x learning rates). Seeds are
the outer loop, so a sweep stopped half-way holds complete, paired seeds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from afbench.config import RunConfig
from afbench.errors import AfbenchError, lookup

S1_ACTIVATIONS = ("relu", "tanh", "selu", "prelu", "elu", "leaky_relu")
S4_ACTIVATIONS = ("relu", "leaky_relu", "softplus", "softsign", "relu_softplus", "relu_softsign")


@dataclass(frozen=True)
class Grid:
    base: RunConfig
    activations: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    lrs: tuple[float, ...] = ()
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()

    def configs(self) -> list[RunConfig]:
        if not self.activations:
            raise AfbenchError("a sweep needs at least one activation (--activations relu,tanh,...)")
        base = self.base
        if len(self.lrs) > 1 and base.valid_fraction == 0 and base.split != "s2":
            # The learning rate is a nuisance parameter chosen on validation data, never on test.
            base = base.with_(valid_fraction=0.1)
        out = []
        for seed, dataset, model, lr, activation in itertools.product(
                self.seeds, self.datasets or (base.dataset,), self.models or (base.model,),
                self.lrs or (base.lr,), self.activations):
            out.append(base.with_(seed=seed, dataset=dataset, model=model, lr=lr, activation=activation))
        return out


class _Presets(Mapping):
    """Preset name -> settings dict, read from the study files in afbench/presets/ when
    asked (importing this module reads nothing)."""

    def __getitem__(self, name: str) -> dict:
        from afbench.sweep import study

        return study.preset_settings(study.parse_study(show_preset(name), f"preset {name}"))

    def __iter__(self) -> Iterator[str]:
        return iter(list_presets())

    def __len__(self) -> int:
        return len(list_presets())


PRESETS: Mapping[str, dict] = _Presets()


def _preset_files() -> dict[str, Traversable]:
    folder = resources.files("afbench.presets")
    return {entry.name[:-len(".toml")]: entry for entry in folder.iterdir() if entry.name.endswith(".toml")}


def list_presets() -> list[str]:
    """The names of the presets shipped with afbench, in the studies' order."""
    names = _preset_files()
    return sorted(names, key=lambda n: (n == "quick", n))


def show_preset(name: str) -> str:
    """The study file of preset ``name``, as text: a starting point for your own."""
    files = _preset_files()
    return files[lookup("preset", name, files)].read_text()


def preset(name: str) -> dict:
    """The settings of preset ``name`` (a copy, safe to modify): RunConfig fields plus
    ``activations`` and, when the study sweeps them, ``lrs`` and ``seeds``."""
    return PRESETS[name]
