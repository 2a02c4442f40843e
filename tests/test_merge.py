"""afbench.store.merge on two real tiny sweeps: each run once, conflicts kept aside,
idempotent, inputs untouched, extra tables copied."""

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from workflow_sweeps import ACTIVATIONS, SEEDS, sweeps

from afbench.errors import AfbenchError
from afbench.store.database import Store
from afbench.store.merge import merge


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dump(folder) -> dict:
    """Every row of every table but the merge time stamps, for comparing databases."""
    db = sqlite3.connect(folder / "results.sqlite")
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    out = {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}"))) for t in tables if t != "merge_conflicts"}
    out["merge_conflicts"] = sorted(db.execute("SELECT key, digest, source FROM merge_conflicts"))
    db.close()
    return out


@pytest.fixture(scope="module")
def built():
    return sweeps()


def test_three_activations_each_tanh_run_once(built):
    db = sqlite3.connect(built["merged"] / "results.sqlite")
    rows = db.execute("SELECT activation, seed, status FROM runs").fetchall()
    expected = {(a, s) for names in ACTIVATIONS.values() for a in names for s in SEEDS}  # 3 activations x seeds
    assert sorted((a, s) for a, s, _ in rows) == sorted(expected)
    assert {a for a, _, _ in rows} == {"relu", "tanh", "elu"}
    assert {status for _, _, status in rows} == {"done"}
    epochs = db.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
    assert epochs == 3 * len(SEEDS)  # one epoch per run, the tanh runs' epochs not doubled
    # tanh was trained in both sweeps: same key, different timings -> the second attempt kept aside
    conflicts = db.execute("SELECT r.activation FROM merge_conflicts c JOIN runs r ON r.key = c.key").fetchall()
    assert sorted(conflicts) == [("tanh",)] * len(SEEDS)
    summary = built["summary"]
    assert summary["added"] == 3 * len(SEEDS) and sum(summary["conflicts"].values()) == len(SEEDS)
    assert summary["conflicts"]["results"] == 0  # same seed, same settings: only the timings differ
    meta = dict(db.execute("SELECT key, value FROM meta"))
    assert "digits" in meta["class_counts"]


def test_idempotent_and_inputs_unchanged(built, tmp_path):
    before = {name: _digest(built[name] / "results.sqlite") for name in ("a", "b")}
    merged = _dump(built["merged"])
    again = merge([built["a"], built["b"]], built["merged"])
    assert again["added"] == 0 and again["conflicts"] == {"timings": 0, "results": 0}
    assert _dump(built["merged"]) == merged
    with_input = merge([built["merged"], built["a"]], tmp_path / "m2")  # the output with an input
    assert with_input["added"] == 3 * len(SEEDS) and _dump(tmp_path / "m2")["runs"] == merged["runs"]
    assert {name: _digest(built[name] / "results.sqlite") for name in ("a", "b")} == before


def _cost_row(activation, dataset, step_ms):
    return {"activation": activation, "model": "mlp", "dataset": dataset, "input_shape": "1x8x8", "device": "cpu",
            "threads": 1, "batch_size": 64, "afbench_version": "0.2.0", "profile_id": "p1", "measured_at": 1.0,
            "optimizer": "adam", "norm": None, "match_params": False, "step_ms": step_ms}


def test_extra_tables_unfinished_runs_and_meta(built, tmp_path):
    third = tmp_path / "c"
    third.mkdir()
    shutil.copy(built["b"] / "results.sqlite", third / "results.sqlite")
    store = Store(third)
    store.save_cost([_cost_row("elu", "digits", 0.5), _cost_row("elu", "mnist", 2.0)])
    store.close()
    db = sqlite3.connect(third / "results.sqlite")
    db.execute("CREATE TABLE notes (activation TEXT, device TEXT, threads INTEGER, ms REAL)")  # not afbench's
    db.executemany("INSERT INTO notes VALUES (?, ?, ?, ?)", [("elu", "cpu", 1, 0.5), ("elu", "cuda", 0, 0.01)])
    db.execute("UPDATE runs SET status = 'failed' WHERE activation = 'elu' AND seed = 0")
    db.execute("""UPDATE meta SET value = '{"mnist": {"classes": [], "counts": {}}}' WHERE key = 'class_counts'""")
    db.commit()
    db.close()
    summary = merge([built["a"], third], tmp_path / "out")
    assert summary["skipped"] == {"failed": 1} and summary["added"] == 3 * len(SEEDS) - 1
    assert summary["tables"]["notes"] == 2 and summary["tables"]["cost"] == 2
    out = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    assert sorted(out.execute("SELECT device, threads FROM notes")) == [("cpu", 1), ("cuda", 0)]
    assert sorted(out.execute("SELECT dataset, json_extract(record, '$.step_ms') FROM cost")) == [
        ("digits", 0.5), ("mnist", 2.0)]  # one row per setting, both kept
    counts = json.loads(out.execute("SELECT value FROM meta WHERE key = 'class_counts'").fetchone()[0])
    assert set(counts) == {"digits", "mnist"}  # unioned across the inputs
    again = merge([third], tmp_path / "out")["tables"]
    assert again["notes"] == 0 and again["cost"] == 0  # no duplicate rows


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(AfbenchError, match="no results.sqlite"):
        merge([tmp_path / "nothing"], tmp_path / "out")


@pytest.mark.slow
def test_merge_command_writes_the_report(built, tmp_path, capsys):
    from afbench.cli import main

    main(["merge", str(built["a"]), str(built["b"]), "--out", str(tmp_path / "out")])
    assert "runs added" in capsys.readouterr().out
    assert "elu" in (tmp_path / "out" / "summary.md").read_text()
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000


def _fixture_folder(tmp_path):
    """An out folder with four finished runs, copied from a fixture: nothing trained."""
    folder = tmp_path / "fixture"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "fixtures" / "results-v0.2.0.sqlite", folder / "results.sqlite")
    return folder


def test_a_failed_merge_leaves_nothing_new_behind(tmp_path):
    good = _fixture_folder(tmp_path)
    (tmp_path / "notes.sqlite").write_text("not a database")
    out = tmp_path / "new" / "merged"
    with pytest.raises(AfbenchError, match="cannot be read as an afbench results database"):
        merge([good, tmp_path / "notes.sqlite"], out)
    assert not (tmp_path / "new").exists()  # neither the database nor the folders made for it
    merge([good], out)
    before = _dump(out)
    with pytest.raises(AfbenchError):
        merge([good, tmp_path / "notes.sqlite"], out)
    assert _dump(out) == before and sorted(p.name for p in out.iterdir()) == ["results.sqlite"]


def test_the_merge_summary_says_one_fact_per_line(tmp_path, capsys, monkeypatch):
    from afbench.cli.output import Output
    from afbench.store.merge import describe

    monkeypatch.setenv("COLUMNS", "80")  # a terminal narrower than the summary's text
    monkeypatch.chdir(tmp_path)  # a short output path, which fits the width
    Output().result(describe(merge([_fixture_folder(tmp_path)], Path("merged"))))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "merged 1 database into merged/results.sqlite"
    assert lines[1:4] == ["runs added: 4", "runs already there with identical results: 0", "runs now: 4 done"]


def test_the_merge_report_chooses_its_baseline_as_afbench_report_does(tmp_path, monkeypatch):
    """No --baseline: render picks relu if the merged runs hold it, else their first
    activation, so runs without relu are reported instead of refused after merging."""
    from afbench.cli import main
    from afbench.report import render

    asked = []
    monkeypatch.setattr(render, "write", lambda folder, baseline=None: asked.append(baseline))  # no figures
    assert main(["merge", str(_fixture_folder(tmp_path)), "--out", str(tmp_path / "merged")]) == 0
    assert main(["merge", str(tmp_path / "merged"), "--out", str(tmp_path / "merged"), "--baseline", "tanh"]) == 0
    assert asked == [None, "tanh"]


def test_a_failed_merge_never_removes_runs_another_merge_committed(tmp_path):
    """Two merges into one new folder: the first to fail must not delete the database
    the other created and filled while it waited."""
    import shutil

    from afbench.store.merge import removed_on_failure

    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with removed_on_failure(out):
            out.mkdir()  # meanwhile, another merge made the folder and committed its runs
            shutil.copy(Path(__file__).parent / "fixtures" / "results-v0.2.0.sqlite", out / "results.sqlite")
            raise RuntimeError("this merge failed on a bad input")
    assert (out / "results.sqlite").exists()
    with pytest.raises(RuntimeError):
        with removed_on_failure(tmp_path / "own"):
            Store(tmp_path / "own").close()  # its own database, still empty
            raise RuntimeError("failed")
    assert not (tmp_path / "own").exists()
