"""afbench.load: the results as pandas DataFrames, checked against the database read by hand."""

import json
import sqlite3

import pytest
from workflow_sweeps import SEEDS, sweeps

from afbench.errors import AfbenchError
from afbench.report.frames import load


def test_one_row_per_run_and_per_epoch():
    folder = sweeps()["merged"]
    db = sqlite3.connect(folder / "results.sqlite")
    rows = db.execute("SELECT key, activation, seed, status, summary, config FROM runs").fetchall()
    runs = load(folder)
    assert len(runs) == len(rows) == 3 * len(SEEDS)
    for key, activation, seed, status, summary, config in rows:
        row = runs[runs["key"] == key].iloc[0]
        assert (row["activation"], row["seed"], row["status"]) == (activation, seed, status)
        assert row["accuracy"] == json.loads(summary)["accuracy"]
        assert row["config.epochs"] == json.loads(config)["epochs"] == 1
    epochs = load(folder, epochs=True)
    records = db.execute("SELECT run_key, record FROM epochs").fetchall()
    assert len(epochs) == len(records) == 3 * len(SEEDS)
    key, record = records[0]
    row = epochs[epochs["run_key"] == key].iloc[0]
    assert row["test_acc"] == json.loads(record)["test_acc"]
    layers = json.loads(record)["layers"]["dead_output"]  # per-layer list -> columns and their mean
    assert row["dead_output_layer1"] == layers[0]
    assert row["dead_output_mean"] == pytest.approx(sum(layers) / len(layers))


def test_missing_folder(tmp_path):
    with pytest.raises(AfbenchError, match="no results.sqlite"):
        load(tmp_path)
