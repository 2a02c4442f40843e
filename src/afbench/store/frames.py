"""Results as pandas DataFrames, for notebooks: `afbench.load(OUT)`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd

from afbench.errors import AfbenchError
from afbench.results import EpochRecord, run_record


def load(out: str | Path, epochs: bool = False) -> pd.DataFrame:
    """The runs of out folder ``out`` (or its results.sqlite), one row per run:
    key, activation, model, dataset, seed, lr, status, the summary metrics, the
    settings as ``config.<field>`` and the provenance as ``provenance.<field>``.
    With ``epochs=True``, one row per run and epoch instead: the run's identity and
    the epoch's metrics, per-layer diagnostics as ``<metric>_layer<i>`` and
    ``<metric>_mean``. The database is opened read-only, never changed."""
    from afbench.report import tables

    path = Path(out)
    path = path / "results.sqlite" if path.is_dir() else path
    if not path.is_file():
        raise AfbenchError(f"{out} holds no results.sqlite: give an out folder written by `afbench run`")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        frame = tables.runs_frame([run_record(r) for r in _runs(db)])
        if not epochs:
            return frame
        rows = db.execute("SELECT e.run_key, e.record FROM epochs e JOIN runs r ON r.key = e.run_key "
                          "ORDER BY r.rowid, e.epoch").fetchall()
    finally:
        db.close()
    return tables.epochs_frame([(r["run_key"], EpochRecord.from_dict(json.loads(r["record"]))) for r in rows], frame)


def _runs(db) -> list[dict]:
    """The runs table as Store.runs() returns it, JSON columns decoded."""
    out = []
    for row in db.execute("SELECT * FROM runs ORDER BY rowid").fetchall():
        item = dict(row)
        for column in ("config", "provenance", "summary"):
            item[column] = json.loads(item[column]) if item.get(column) else {}
        out.append(item)
    return out
