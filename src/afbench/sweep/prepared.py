"""Data for a sweep: each distinct data set loaded and prepared once per process, by
one function every backend uses, so local and Ray runs train on identical tensors."""

from __future__ import annotations

from pathlib import Path

from afbench import data as datasets, workloads
from afbench.config import RunConfig
from afbench.store.database import Store


def prepare_for(config: RunConfig, raw: datasets.ImageData) -> datasets.Prepared:
    """The tensors a run trains on: every backend prepares data through here."""
    return datasets.prepare(raw, device=config.device, split=config.split, valid_fraction=config.valid_fraction,
                            whitening=config.whitening, train_subset=config.train_subset)


def load_raw(config: RunConfig, data_dir: str | Path | None) -> datasets.ImageData:
    return workloads.load(config.dataset, data_dir, image_size=config.image_size, coarse=config.coarse)


def record_class_counts(store: Store, dataset: str, prepared: datasets.Prepared) -> None:
    """Samples per class and split, for the report's histogram."""
    counts = store.meta().get("class_counts", {})
    counts[dataset] = {"classes": list(prepared.classes), "counts": datasets.class_counts(prepared)}
    store.set_meta("class_counts", counts)


class DataCache:
    """Load and prepare each distinct data set once per process."""

    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.data_dir = data_dir
        self.prepared: dict[tuple, datasets.Prepared] = {}

    def get(self, config: RunConfig) -> datasets.Prepared:
        key = config.data_key() + (config.device,)
        if key not in self.prepared:
            self.prepared[key] = prepare_for(config, load_raw(config, self.data_dir))
        return self.prepared[key]

    def load_all(self, configs: list[RunConfig], store: Store) -> None:
        """Load every data set the sweep needs now: bad data fails before any run is claimed."""
        for config in {c.data_key() + (c.device,): c for c in configs}.values():
            record_class_counts(store, config.dataset, self.get(config))
