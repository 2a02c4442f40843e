"""`afbench export OUT --to mlflow URI`: one MLflow run per afbench run.

The experiment is named after the study (the ``name`` of the study stored in the
database's meta, else the out folder's name) unless one is given. Each run: run name
``activation/seed<k>`` (as in the TensorBoard export), the settings as params, every
epoch's metrics with step = epoch, the final metrics (key ``final.<metric>``, step =
last epoch), tag ``afbench.key``; artifacts report.html and cost.csv when the out
folder has them. Runs already exported (same experiment, same ``afbench.key``) are
skipped, so exporting twice adds nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from afbench import export as common
from afbench.errors import AfbenchError
from afbench.store.reading import StoreView

ARTIFACTS = ("report.html", "cost.csv")


def experiment_name(out: str | Path, given: str | None = None) -> str:
    """The given name, else the stored study's name, else the out folder's name."""
    if given:
        return given
    if (Path(out) / "results.sqlite").exists():
        with StoreView(out) as view:  # an export never changes the results
            study = view.meta().get("study")
        if isinstance(study, dict) and study.get("name"):
            return study["name"]
    return Path(out).resolve().name


def _client(tracking, tracking_uri: str):
    """An MlflowClient for ``tracking_uri``, or an AfbenchError saying what the URI needs."""
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        # MLflow 3 keeps its file store in maintenance mode and refuses it unless told;
        # the user asked for exactly that store, so say yes for this process.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        return tracking.MlflowClient(tracking_uri=tracking_uri)
    except Exception as err:  # MLflow raises several kinds for an unusable store URI
        hint = (" (sqlite:// and other database stores need the full mlflow package with SQLAlchemy: "
                "pip install mlflow)" if tracking_uri.startswith(("sqlite", "postgres", "mysql")) else "")
        raise AfbenchError(f"cannot use MLflow tracking URI {tracking_uri}: {str(err).splitlines()[0][:300]}{hint}. "
                           "A local file store (file:///absolute/path) always works") from None


def export_runs(out: str | Path, tracking_uri: str, experiment: str | None = None) -> list[str]:
    """Log the finished runs of ``out`` to the MLflow tracking server or store at
    ``tracking_uri`` (file:///path, sqlite:///path.db, http://host:port). Returns the
    MLflow run ids of the runs added."""
    tracking = common.require("mlflow.tracking", "MLflow")
    entities = common.require("mlflow.entities", "MLflow")
    client = _client(tracking, tracking_uri)
    name = experiment_name(out, experiment)
    found = client.get_experiment_by_name(name)
    experiment_id = found.experiment_id if found else client.create_experiment(name)
    runs, epochs = common.frames(out)
    varying = common.varying(runs)
    done = {r.data.tags.get("afbench.key") for r in client.search_runs([experiment_id], max_results=50000)}
    added = []
    for _, run in runs.iterrows():
        if run["key"] in done:
            continue
        mlrun = client.create_run(experiment_id, run_name=common.run_name(run, varying),
                                  tags={"afbench.key": run["key"], "afbench.status": run["status"]})
        now = int(time.time() * 1000)
        params = [entities.Param(k, str(v)) for k, v in common.settings(run).items()]
        metrics, last = [], 0
        for epoch, values in common.epoch_metrics(epochs, run["key"]):
            metrics += [entities.Metric(k, v, now, epoch) for k, v in values.items()]
            last = max(last, epoch)
        metrics += [entities.Metric(f"final.{k}", v, now, last) for k, v in common.summary_metrics(run).items()]
        for start in range(0, max(len(metrics), 1), 1000):  # MLflow takes at most 1000 metrics per batch
            client.log_batch(mlrun.info.run_id, metrics=metrics[start:start + 1000],
                             params=params if start == 0 else [])
        for artifact in ARTIFACTS:
            if (Path(out) / artifact).is_file():
                client.log_artifact(mlrun.info.run_id, str(Path(out) / artifact))
        client.set_terminated(mlrun.info.run_id, "FINISHED" if run["status"] == "done" else "FAILED")
        added.append(mlrun.info.run_id)
    if not added and not len(runs):
        raise AfbenchError(f"{out} holds no finished runs to export")
    return added


export = export_runs  # afbench.export.mlflow.export(out, tracking_uri, experiment=None)
