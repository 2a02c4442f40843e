"""Exports to TensorBoard and MLflow, read back with each tool's own reader."""

import json
import shutil
import sqlite3
import sys

import pytest
from workflow_sweeps import sweeps

from afbench.errors import AfbenchError


def _database(folder):
    db = sqlite3.connect(folder / "results.sqlite")
    runs = db.execute("SELECT key, activation, seed, summary FROM runs").fetchall()
    epochs = {k: json.loads(r) for k, r in db.execute("SELECT run_key, record FROM epochs")}
    db.close()
    return runs, epochs


def test_tensorboard_reads_back_every_run(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from afbench.export import tensorboard

    folder = sweeps()["merged"]
    names = tensorboard.export(folder, tmp_path)
    runs, epochs = _database(folder)
    assert sorted(names) == sorted(f"{a}/seed{s}" for _, a, s, _ in runs)
    for key, activation, seed, summary in runs:
        events = EventAccumulator(str(tmp_path / activation / f"seed{seed}"))
        events.Reload()
        scalars = events.Tags()["scalars"]
        assert {"epoch/train_loss", "epoch/test_acc", "diagnostics/dead_output_mean"} <= set(scalars)
        (acc,) = events.Scalars("epoch/test_acc")
        assert acc.step == 1 and acc.value == pytest.approx(epochs[key]["test_acc"], rel=1e-6)  # float32 on disk
        (final,) = events.Scalars("final/accuracy")
        assert final.value == pytest.approx(json.loads(summary)["accuracy"], rel=1e-6)
        assert any(t.startswith("_hparams_") for t in events.summary_metadata)  # the HParams plugin's summaries


def test_mlflow_reads_back_every_run(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from afbench.export import mlflow

    folder = tmp_path / "study-x"
    shutil.copytree(sweeps()["merged"], folder)
    (folder / "report.html").write_text("<html>report</html>")
    (folder / "cost.csv").write_text("activation,device,threads\nrelu,cpu,1\n")
    uri = (tmp_path / "mlruns").as_uri()
    ids = mlflow.export(folder, uri)
    assert len(ids) == len(_database(folder)[0]) and mlflow.export(folder, uri) == []  # a second export adds nothing
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("study-x")
    found = {r.data.tags["afbench.key"]: r for r in client.search_runs([experiment.experiment_id])}
    runs, epochs = _database(folder)
    assert set(found) == {key for key, *_ in runs}
    for key, activation, seed, summary in runs:
        run = found[key]
        assert run.info.run_name == f"{activation}/seed{seed}"
        assert run.data.params["epochs"] == "1" and run.data.params["activation"] == activation
        assert run.data.metrics["final.accuracy"] == pytest.approx(json.loads(summary)["accuracy"])
        (history,) = client.get_metric_history(run.info.run_id, "test_acc")
        assert history.step == 1 and history.value == pytest.approx(epochs[key]["test_acc"])
        assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["cost.csv", "report.html"]


def test_missing_library_names_the_extra(monkeypatch, tmp_path):
    from afbench.export import mlflow

    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)  # import now raises ImportError
    with pytest.raises(AfbenchError, match=r"pip install 'afbench\[export\]'"):
        mlflow.export(sweeps()["merged"], tmp_path.as_uri())


def test_mlflow_experiment_named_after_the_stored_study(tmp_path):
    from afbench.export.mlflow import experiment_name
    from afbench.sweep import study

    study.save_study(tmp_path / "out", study.Study(name="my-study"))
    assert experiment_name(tmp_path / "out") == "my-study"
    assert experiment_name(tmp_path / "out", "given") == "given"
    assert experiment_name(tmp_path / "elsewhere") == "elsewhere"
