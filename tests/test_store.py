"""The results database layer (issues 24, 29, 30): old databases resume, a read-only view
that never writes (read-only media included), cost rows keyed by their exact setting,
and merges that know a run under any key, refuse what they cannot read, and survive
kill -9 and each other."""

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from afbench.config import RunConfig
from afbench.results import EpochRecord, RunSummary, Status
from afbench.store import reading, schema
from afbench.store.database import Store
from afbench.store.merge import describe, merge
from afbench.store.reading import DamagedRun, StoreView

FIXTURES = Path(__file__).parent / "fixtures"
V010, V020 = FIXTURES / "results-v0.1.0.sqlite", FIXTURES / "results-v0.2.0.sqlite"
SRC = Path(__file__).resolve().parents[1] / "src"


def _digest(folder: Path) -> dict:
    """Every file of a folder and its hash: a read-only reader leaves this unchanged."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _copy(fixture: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(fixture, folder / "results.sqlite")
    return folder


def _raw(folder: Path, query: str) -> list:
    db = sqlite3.connect(folder / "results.sqlite")
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def _finished(store: Store, config: RunConfig, error_rate: float, steps: int = 10, threads: int = 1) -> None:
    store.claim(config)
    store.record_epoch(config.key(), EpochRecord(1, train_loss=1.0, train_acc=0.5, epoch_train_s=1.0, cum_train_s=1.0,
                                                 train_steps=steps))
    store.finish(config.key(), Status.DONE, RunSummary(params=10, epochs_run=1, total_train_s=1.0, train_steps=steps,
                                                       accuracy=1 - error_rate, error_rate=error_rate),
                 {"threads": threads})


def _sweep(folder: Path, n: int) -> list[RunConfig]:
    """``n`` finished runs written through the Store (no training): a merge input."""
    configs = [RunConfig(activation=("relu", "tanh")[i % 2], seed=i // 2, epochs=1) for i in range(n)]
    store = Store(folder)
    for i, config in enumerate(configs):
        _finished(store, config, 0.01 * (i % 7))
    store.close()
    return configs


# ---- databases of earlier versions ---------------------------------------------------

def test_a_database_written_by_afbench_0_2_0_resumes_without_retraining(tmp_path):
    from afbench.sweep import Grid, LocalBackend, Runtime, execute

    folder = _copy(V020, tmp_path / "out")
    before = dict(_raw(folder, "SELECT activation, json_extract(record, '$.step_ms') FROM cost"))
    grid = Grid(RunConfig(epochs=2, latency_samples=20), ("relu", "tanh"), seeds=(0, 1))
    outcome = execute(grid, folder, LocalBackend(Runtime(progress=False, workers=1, stack=1)), device="cpu")
    assert outcome.counts == {"ran": 0, "skipped": 4, "failed": 0}
    store = Store(folder)
    assert store.schema_version == schema.VERSION == 3
    records = store.records()
    assert len(records) == 4 and all(r.status == Status.DONE for r in records)
    assert {r.key for r in records} == {c.key() for c in outcome.configs}
    assert len(store.epoch_records()) == 8
    # the cost rows of 0.2.0 moved into the exact key: the data set from their own record, float32
    rows = store.cost_rows(model="mlp", dataset="digits", input_shape=(1, 8, 8), threads=1, batch_size=128,
                           dtype="float32")
    assert {r["activation"]: r["step_ms"] for r in rows} == before and len(before) == 2
    assert store.cost_rows(dataset="mnist") == []
    store.close()


def test_old_cost_rows_without_a_data_set_no_longer_match(tmp_path):
    folder = _copy(V020, tmp_path / "out")
    db = sqlite3.connect(folder / "results.sqlite")
    db.execute("UPDATE cost SET record = json_remove(record, '$.dataset') WHERE activation = 'tanh'")
    db.commit()
    db.close()
    store = Store(folder)
    assert [r["activation"] for r in store.cost_rows(dataset="digits")] == ["relu"]
    assert len(store.cost_rows()) == 2  # kept, under data set '' that no run has
    store.close()


def test_a_read_only_view_of_an_old_database_is_migrated_in_memory_only(tmp_path):
    for fixture in (V010, V020):
        folder = _copy(fixture, tmp_path / fixture.stem)
        files = _digest(folder)["results.sqlite"]
        old_keys = {k for (k,) in _raw(folder, "SELECT key FROM runs")}
        with StoreView(folder) as view:
            assert view.schema_version == schema.VERSION
            assert {r.key for r in view.records()} == {RunConfig.from_dict(r.config).key() for r in view.records()}
            assert len(view.records()) == 4 and len(view.epoch_records()) == 8
            assert "cost" in view.tables() and "merge_conflicts" in view.tables()
        assert _digest(folder)["results.sqlite"] == files  # not a byte written (mode=ro: SQLite may add an empty log)
        if fixture == V010:
            assert {k for (k,) in _raw(folder, "SELECT key FROM runs")} == old_keys != {r.key for r in
                                                                                        StoreView(folder).records()}


# ---- read-only media ---------------------------------------------------------------

def _wal_with_pages(folder: Path, n: int) -> sqlite3.Connection:
    """A WAL database whose log still holds committed runs (its writer never checkpointed:
    as after kill -9). Returns the writer, still open."""
    _sweep(folder, 2)
    writer = sqlite3.connect(folder / "results.sqlite", isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    now = 1.0
    for i in range(n):
        config = RunConfig(activation="elu", seed=i, epochs=1)
        writer.execute("INSERT INTO runs (key, status, activation, model, dataset, seed, lr, config, created, "
                       "updated) VALUES (?, 'queued', 'elu', 'mlp', 'digits', ?, 0.001, ?, ?, ?)",
                       (config.key(), i, json.dumps(config.to_dict()), now, now))
    return writer


def test_a_wal_database_on_read_only_media_is_read_whole(tmp_path, monkeypatch):
    writer = _wal_with_pages(tmp_path / "live", 3)
    media = tmp_path / "media"
    media.mkdir()
    for name in ("results.sqlite", "results.sqlite-wal"):
        shutil.copy(tmp_path / "live" / name, media / name)  # what a snapshot of the live folder holds
    writer.close()
    assert (media / "results.sqlite-wal").stat().st_size > 0
    files = _digest(media)
    monkeypatch.setattr(reading, "writable", lambda path: False)  # as os.access answers on a read-only mount
    with StoreView(media) as view:
        assert view.counts() == {"done": 2, "queued": 3}  # the 3 runs only the log holds are there
    assert _digest(media) == files


def test_without_a_log_read_only_media_are_opened_immutable(tmp_path, monkeypatch):
    _sweep(tmp_path, 4)
    assert not (tmp_path / "results.sqlite-wal").exists()
    files = _digest(tmp_path)
    monkeypatch.setattr(reading, "writable", lambda path: False)
    db, private = reading.connect_read_only(tmp_path / "results.sqlite")
    assert private is None and db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 4
    db.close()
    assert len(StoreView(tmp_path).records()) == 4
    assert _digest(tmp_path) == files  # no -shm, no -wal created


# ---- cost rows keyed exactly (issue 29) -----------------------------------------------

def _cost(activation, dataset, shape, step_ms):
    return {"activation": activation, "model": "mlp", "dataset": dataset, "input_shape": shape, "device": "cpu",
            "threads": 1, "batch_size": 128, "afbench_version": "0.2.0", "profile_id": dataset,
            "measured_at": 1.0, "optimizer": "adam", "norm": None, "match_params": False, "step_ms": step_ms,
            "step_ratio": step_ms / {"digits": 1.0, "mnist": 20.0}[dataset], "step_ratio_low": 1.0,
            "step_ratio_high": 1.0}


def test_one_model_on_two_data_sets_takes_each_data_sets_step_time(tmp_path):
    from afbench.report import tables, timing
    from afbench.store.cost import load_cost

    store = Store(tmp_path)
    steps = {"digits": 14, "mnist": 469}
    for dataset in steps:
        for activation in ("relu", "tanh"):
            for seed in (0, 1):
                _finished(store, RunConfig(dataset=dataset, activation=activation, seed=seed, epochs=1), 0.1,
                          steps=steps[dataset])
    # 1 ms steps for 8x8 digits, 20 ms for 28x28 MNIST (tanh 10% slower on both)
    store.save_cost([_cost("relu", "digits", "1x8x8", 1.0), _cost("tanh", "digits", "1x8x8", 1.1),
                     _cost("relu", "mnist", "1x28x28", 20.0), _cost("tanh", "mnist", "1x28x28", 22.0)])
    assert [r["step_ms"] for r in load_cost(store, "mlp", (1, 8, 8), ["relu"], "cpu", 1, 128, "0.2.0",
                                            dataset="digits")] == [1.0]
    assert load_cost(store, "mlp", (1, 8, 8), ["relu"], "cpu", 1, 128, "0.2.0", dataset="mnist") == []
    store.close()
    with StoreView(tmp_path) as view:
        runs = tables.runs_frame(view.records())
        times = timing.cost_times(tables.aggregate(runs), runs, timing.load_cost(view))
    got = {(r["dataset"], r["activation"]): r["cost_train_s_mean"] for _, r in times.iterrows()}
    assert got == pytest.approx({("digits", "relu"): 14 * 0.001, ("digits", "tanh"): 14 * 0.0011,
                                 ("mnist", "relu"): 469 * 0.020, ("mnist", "tanh"): 469 * 0.022})


def test_a_cost_row_of_another_batch_size_does_not_stand_in(tmp_path):
    from afbench.report import tables, timing

    store = Store(tmp_path)
    for seed in (0, 1):
        _finished(store, RunConfig(activation="relu", seed=seed, epochs=1, batch_size=32), 0.1)
    store.save_cost([_cost("relu", "digits", "1x8x8", 1.0)])  # measured at batch 128
    store.close()
    with StoreView(tmp_path) as view:
        runs = tables.runs_frame(view.records())
        times = timing.cost_times(tables.aggregate(runs), runs, timing.load_cost(view))
    assert times["cost_train_s_mean"].isna().all()


# ---- merge ---------------------------------------------------------------------------

def test_a_run_is_one_run_under_the_keys_of_0_1_0_and_0_2_0(tmp_path):
    old = _copy(V010, tmp_path / "old")
    rekeyed = _copy(V010, tmp_path / "rekeyed")
    Store(rekeyed).close()  # what afbench 0.2.0 did on opening it: new keys
    old_keys = {k for (k,) in _raw(old, "SELECT key FROM runs")}
    new_keys = {k for (k,) in _raw(rekeyed, "SELECT key FROM runs")}
    assert len(old_keys) == len(new_keys) == 4 and not old_keys & new_keys  # the same runs, other keys
    summary = merge([old, rekeyed], tmp_path / "out")
    assert summary["added"] == 4 and summary["identical"] == 4 and summary["refused"] == []
    assert {k for (k,) in _raw(tmp_path / "out", "SELECT key FROM runs")} == new_keys
    assert _raw(tmp_path / "out", "SELECT COUNT(*) FROM epochs") == [(8,)]
    # settings are copied as stored: never normalised into another run
    configs = sorted(c for (c,) in _raw(tmp_path / "out", "SELECT config FROM runs"))
    assert configs == sorted(c for (c,) in _raw(old, "SELECT config FROM runs"))


def _damage(folder: Path) -> tuple[str, str, str]:
    """Three finished runs damaged three ways; returns their keys."""
    db = sqlite3.connect(folder / "results.sqlite")
    (garbage,), (unknown,), (bad_epoch,) = db.execute("SELECT key FROM runs WHERE status = 'done' ORDER BY rowid "
                                                      "LIMIT 3").fetchall()
    db.execute("UPDATE runs SET summary = '{\"accuracy\": 0.9, oops' WHERE key = ?", (garbage,))
    db.execute("UPDATE runs SET config = json_set(config, '$.mystery', 1) WHERE key = ?", (unknown,))
    db.execute("UPDATE epochs SET record = 'not json' WHERE run_key = ?", (bad_epoch,))
    db.commit()
    db.close()
    return garbage, unknown, bad_epoch


def test_unreadable_runs_are_refused_by_name_never_merged(tmp_path):
    _sweep(tmp_path / "in", 6)
    damaged = _damage(tmp_path / "in")
    summary = merge([tmp_path / "in"], tmp_path / "out")
    assert summary["added"] == 3 and len(summary["refused"]) == 3
    for key, reason in zip(damaged, ("summary is not valid JSON", "unknown fields ['mystery']",
                                     "an epoch record cannot be read")):
        assert any(key in line and reason in line for line in summary["refused"]), (key, summary["refused"])
    merged = {k for (k,) in _raw(tmp_path / "out", "SELECT key FROM runs")}
    assert not merged & set(damaged)
    text = describe(summary)
    assert "refused 3 runs" in text and all(key in text for key in damaged)


def test_readers_skip_unreadable_runs_and_name_them(tmp_path, capsys):
    from afbench.report.frames import load

    _sweep(tmp_path, 6)
    damaged = _damage(tmp_path)
    frame = load(tmp_path)
    assert len(frame) == 3 and not set(frame["key"]) & set(damaged)
    epochs = load(tmp_path, epochs=True)
    assert not set(epochs["run_key"]) & set(damaged)
    err = capsys.readouterr().err
    assert all(key in err for key in damaged) and "Traceback" not in err
    with pytest.raises(DamagedRun, match=damaged[0]):  # the sweep's own store refuses, naming the run
        Store(tmp_path).records()


def test_the_report_command_names_a_damaged_run(tmp_path, capsys):
    from afbench.report import render

    _sweep(tmp_path, 4)
    garbage = _damage(tmp_path)[0]
    report = render.build(StoreView(tmp_path))
    assert garbage not in set(report.runs["key"]) and len(report.runs) == 1
    assert garbage in capsys.readouterr().err


def _merge_in_child(inputs, out, die_midway: bool = False) -> subprocess.Popen:
    code = ("import os, sys\nfrom pathlib import Path\nfrom afbench.store import merge as m\n"
            + ("m._merge_meta = lambda *a: os.kill(os.getpid(), 9)\n" if die_midway else "")
            + f"s = m.merge([Path(p) for p in {[str(p) for p in inputs]!r}], Path({str(out)!r}))\n"
            "print(s['added'])\n")
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_merge_killed_midway_leaves_nothing_and_reruns_cleanly(tmp_path):
    configs = _sweep(tmp_path / "in", 40)
    child = _merge_in_child([tmp_path / "in"], tmp_path / "out", die_midway=True)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    store = Store(tmp_path / "out")
    assert store.counts() == {}  # the killed merge's runs were never committed
    store.close()
    assert merge([tmp_path / "in"], tmp_path / "out")["added"] == len(configs)
    assert merge([tmp_path / "in"], tmp_path / "out")["added"] == 0
    assert sorted(k for (k,) in _raw(tmp_path / "out", "SELECT key FROM runs")) == sorted(c.key() for c in configs)


def test_two_merges_into_one_output_at_once(tmp_path):
    configs = _sweep(tmp_path / "in", 40)
    children = [_merge_in_child([tmp_path / "in"], tmp_path / "out") for _ in range(2)]
    results = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], results
    assert sorted(int(out) for out, _ in results) == [0, len(configs)]  # one added them, the other found them
    assert _raw(tmp_path / "out", "SELECT COUNT(*) FROM runs") == [(len(configs),)]
    assert _raw(tmp_path / "out", "SELECT COUNT(*) FROM epochs") == [(len(configs),)]


def test_a_read_only_input_is_merged(tmp_path, monkeypatch):
    writer = _wal_with_pages(tmp_path / "live", 2)
    media = tmp_path / "media"
    media.mkdir()
    for name in ("results.sqlite", "results.sqlite-wal"):
        shutil.copy(tmp_path / "live" / name, media / name)
    writer.close()
    files = _digest(media)
    real = reading.writable
    monkeypatch.setattr(reading, "writable", lambda path: real(path) and media not in path.parents)
    summary = merge([media], tmp_path / "out")
    assert summary["added"] == 2 and summary["skipped"] == {"queued": 2}
    assert _digest(media) == files


def test_a_merged_setting_of_more_than_1023_seeds_gets_its_verdict():
    """Why large merges ended in 'OverflowError: int too large to convert to float': the
    verdict's smallest-possible-p bound divided by 2 ** seeds, an int no float holds past 1023."""
    import pandas as pd

    from afbench.report.verdict import setting_lines

    group = pd.DataFrame([{"activation": a, "done": 1100} for a in ("relu", "tanh")])
    tests = pd.DataFrame([{"activation": "tanh", "verdict": "undecided", "mean_diff": 0.0001, "ci_low": -0.001,
                           "ci_high": 0.0012, "p_holm": 0.4, "n": 1100, "diverged": 0, "confidence": 0.95,
                           "setting": "mlp / digits", "margin_supported": 0.0012}])
    text = " ".join(setting_lines("mlp / digits", group, tests, None, "relu", 0.001))
    assert "Undecided against relu" in text and "no comparison can reach" not in text  # 2/2^1100 is tiny
