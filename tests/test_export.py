"""Exports to TensorBoard and MLflow, read back with each tool's own reader."""

import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from workflow_sweeps import sweeps

from afbench.errors import AfbenchError

FIXTURES = Path(__file__).parent / "fixtures"


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
    names = tensorboard.export(folder, tmp_path).added
    runs, epochs = _database(folder)
    assert sorted(names) == sorted(f"{a}/seed{s}" for _, a, s, _ in runs)
    again = tensorboard.export(folder, tmp_path)  # exported again: replaced, one event stream per run
    assert again.added == [] and sorted(again.replaced) == sorted(names)
    for key, activation, seed, summary in runs:
        assert len(list((tmp_path / activation / f"seed{seed}").glob("events.out.tfevents.*"))) == 1
        events = EventAccumulator(str(tmp_path / activation / f"seed{seed}"))
        events.Reload()
        scalars = events.Tags()["scalars"]
        assert {"epoch/train_loss", "epoch/test_acc", "diagnostics/dead_output_mean"} <= set(scalars)
        (acc,) = events.Scalars("epoch/test_acc")
        assert acc.step == 1 and acc.value == pytest.approx(epochs[key]["test_acc"], rel=1e-6)  # float32 on disk
        (final,) = events.Scalars("final/accuracy")
        assert final.value == pytest.approx(json.loads(summary)["accuracy"], rel=1e-6)
        assert any(t.startswith("_hparams_") for t in events.summary_metadata)  # the HParams plugin's summaries


def test_mlflow_sqlite_store_reads_back_with_mlflows_own_client(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    from afbench.export import mlflow

    for variable in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    folder = tmp_path / "study-x"
    shutil.copytree(sweeps()["merged"], folder)
    (folder / "report.html").write_text("<html>report</html>")
    (folder / "cost.csv").write_text("activation,device,threads\nrelu,cpu,1\n")
    uri = f"sqlite:///{tmp_path / 'x.db'}"
    environment = dict(__import__("os").environ)
    done = mlflow.export(folder, uri)
    assert len(done.added) == len(done.ids) == len(_database(folder)[0])
    again = mlflow.export(folder, uri)  # a second export adds nothing, and says which it skipped
    assert again.added == [] and sorted(again.skipped) == sorted(done.added)
    assert dict(__import__("os").environ) == environment  # no variable left set for the reader
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("study-x")
    assert experiment.artifact_location.startswith((tmp_path / "x-artifacts").as_uri())  # not the current folder
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


def test_a_tracker_that_does_not_answer_fails_within_seconds(tmp_path, monkeypatch):
    import socket
    import time

    pytest.importorskip("mlflow")
    from afbench.export import mlflow

    start = time.monotonic()
    with pytest.raises(AfbenchError, match=r"http://127\.0\.0\.1:9 does not answer"):
        mlflow.export(sweeps()["merged"], "http://127.0.0.1:9")  # nothing listens: refused at once
    assert time.monotonic() - start < 5
    silent = socket.socket()  # listens, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    monkeypatch.setattr(mlflow, "ANSWER_TIMEOUT_S", 0.5)
    start = time.monotonic()
    with pytest.raises(AfbenchError, match=f"{url} does not answer"):
        mlflow.export(sweeps()["merged"], url)
    assert time.monotonic() - start < 5
    silent.close()


def test_mlflow_destinations(tmp_path):
    from afbench.export import mlflow

    assert mlflow.tracking_uri(str(tmp_path / "m.db")) == f"sqlite:///{tmp_path / 'm.db'}"
    assert mlflow.tracking_uri("http://host:5000") == "http://host:5000"
    with pytest.raises(AfbenchError, match="sqlite:///PATH/mlflow.db"):
        mlflow.tracking_uri(str(tmp_path / "mlruns"))  # a bare folder would have been the legacy file store


def test_runs_that_differ_in_a_setting_get_different_names():
    import pandas as pd

    from afbench import export

    runs = pd.DataFrame([{"dataset": "imagefolder:/data/x", "model": "mlp", "lr": 0.001, "activation": "relu",
                          "seed": 0, "config.epochs": e, "config.seed": 0, "config.activation": "relu"}
                         for e in (1, 3)] + [{"dataset": "digits", "model": "mlp", "lr": 0.001, "activation": "relu",
                                              "seed": 0, "config.epochs": 1, "config.seed": 0,
                                              "config.activation": "relu"}])
    varying = export.varying(runs)
    assert varying == ["dataset", "epochs"]
    names = [export.run_name(r, varying) for _, r in runs.iterrows()]
    assert names == ["imagefolder__data_x/epochs1/relu/seed0", "imagefolder__data_x/epochs3/relu/seed0",
                     "digits/epochs1/relu/seed0"]  # distinct, and folder names inside the log dir


def test_missing_library_names_the_extra(monkeypatch, tmp_path):
    from afbench.export import mlflow

    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)  # import now raises ImportError
    with pytest.raises(AfbenchError, match=r"pip install 'afbench\[export\]'"):
        mlflow.export(sweeps()["merged"], tmp_path.as_uri())


def test_missing_tensorboard_is_named_not_torch(monkeypatch, tmp_path, capsys):
    from afbench.cli import main

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # torch is here; torch.utils.tensorboard needs this
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)  # imported again, and failing
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(FIXTURES / "results-v0.2.0.sqlite", out / "results.sqlite")
    assert main(["export", str(out), "--to", "tensorboard", str(tmp_path / "tb")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "needs the Python package tensorboard, which is not installed: pip install 'afbench[export]'" in err
    assert "torch" not in err and not (tmp_path / "tb").exists()


def test_mlflow_experiment_named_after_the_stored_study(tmp_path):
    from afbench.export.mlflow import experiment_name
    from afbench.sweep import study

    study.save_study(tmp_path / "out", study.Study(name="my-study"))
    assert experiment_name(tmp_path / "out") == "my-study"
    assert experiment_name(tmp_path / "out", "given") == "given"
    assert experiment_name(tmp_path / "elsewhere") == "elsewhere"


def test_exporting_twice_says_what_it_replaced(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from afbench.cli import main

    argv = ["export", str(sweeps()["merged"]), "--to", "tensorboard", str(tmp_path / "tb")]
    assert main(argv) == 0
    assert "3 new (" in " ".join(capsys.readouterr().out.split())  # lines wrap at the terminal's width
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "3 replaced an earlier export" in out and "new" not in out
    assert len(list((tmp_path / "tb").rglob("events.out.tfevents.*"))) == 3
