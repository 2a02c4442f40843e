"""Results as pandas DataFrames, for notebooks: `afbench.load(OUT)`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from afbench.report import tables
from afbench.store.reading import StoreView


def load(out: str | Path, epochs: bool = False) -> pd.DataFrame:
    """The runs of out folder ``out`` (or its results.sqlite), one row per run:
    key, activation, model, dataset, seed, lr, status, the summary metrics, the
    settings as ``config.<field>`` and the provenance as ``provenance.<field>``.
    With ``epochs=True``, one row per run and epoch instead: the run's identity and
    the epoch's metrics, per-layer diagnostics as ``<metric>_layer<i>`` and
    ``<metric>_mean``. The database is opened read-only (StoreView), never changed; a
    run this afbench cannot read (damaged JSON, unknown fields) is left out and named
    on stderr."""
    with StoreView(out) as view:
        frame = tables.runs_frame(view.records())
        if not epochs:
            return frame
        return tables.epochs_frame(view.epoch_records(), frame)
