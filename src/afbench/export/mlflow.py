"""`afbench export OUT --to mlflow URI`: one MLflow run per afbench run.

Where: ``sqlite:///path/mlflow.db`` (MLflow's recommended local store; a bare path
ending in .db means the same; ``mlflow ui --backend-store-uri sqlite:///...`` shows
it), a tracking server ``http(s)://host:port``, or another database URI. The legacy
file store (``file:///path``) is written only when asked for by name: MLflow 3 keeps
it in maintenance mode and its own client reads it back only with
MLFLOW_ALLOW_FILE_STORE=true. A server is asked first whether it answers, so one
that does not fails within seconds, naming the URL; while exporting, MLflow's HTTP
retries are bounded too (unless the environment sets them).

The experiment is named after the study (the ``name`` of the study stored in the
database's meta, else the out folder's name) unless one is given; in a SQL store its
artifacts go beside the database (``<db name>-artifacts/``), never into the current
folder. Each run: run name as in the TensorBoard export, the settings as params,
every epoch's metrics with step = epoch, the final metrics (key ``final.<metric>``,
step = last epoch), tag ``afbench.key``; artifacts report.html and cost.csv when the
out folder has them. Runs already exported (same experiment, same ``afbench.key``)
are skipped and said so, so exporting twice adds nothing; a run an interrupted export
left unfinished is deleted and logged again.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from afbench import export as common
from afbench.errors import AfbenchError, path_problem
from afbench.store.reading import StoreView

ARTIFACTS = ("report.html", "cost.csv")
ANSWER_TIMEOUT_S = 5.0  # how long a tracking server has to answer before the export gives up
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}  # MLflow's defaults retry for minutes
SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


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


def tracking_uri(dest: str) -> str:
    """``dest`` as an MLflow tracking URI: a bare path ending in .db or .sqlite becomes
    sqlite:///<absolute path>; any other bare path is refused (it would have meant the
    deprecated file store)."""
    if "://" in dest or dest.startswith("file:"):
        return dest
    path = Path(dest).expanduser()
    if path.suffix in (".db", ".sqlite"):
        return f"sqlite:///{path.resolve()}"
    raise AfbenchError(f"'{dest}' is not an MLflow tracking URI: give sqlite:///PATH/mlflow.db (a local store "
                       "MLflow's client and `mlflow ui` read), http://HOST:PORT (a tracking server), or "
                       "file:///ABSOLUTE/PATH for MLflow's legacy file store")


def check_answers(uri: str, timeout: float | None = None) -> None:
    """An AfbenchError naming ``uri`` unless the server there answers HTTP within seconds
    (any HTTP status counts as an answer: the export itself says what is wrong then)."""
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout or ANSWER_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise AfbenchError(f"the MLflow tracking server at {uri} does not answer ({reason}): start it (mlflow "
                           "server --port PORT) or check the URL; sqlite:///PATH/mlflow.db needs no server") from None


@contextmanager
def _environment(uri: str):
    """Bounded HTTP retries for a server; the legacy file store allowed when named. Restored after."""
    wanted = dict(HTTP_LIMITS) if uri.startswith(("http://", "https://")) else {}
    if uri.startswith("file:"):
        wanted["MLFLOW_ALLOW_FILE_STORE"] = "true"  # the user asked for exactly this store
    saved = {k: os.environ.get(k) for k in wanted}
    for key, value in wanted.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _client(tracking, uri: str):
    """An MlflowClient for ``uri``, or an AfbenchError saying what the URI needs."""
    try:
        return tracking.MlflowClient(tracking_uri=uri)
    except OSError as err:  # the store's path: no package is missing, whatever the URI
        raise AfbenchError(f"cannot use MLflow tracking URI {uri}: {path_problem(err)}") from None
    except Exception as err:  # MLflow raises several kinds for an unusable store URI
        hint = (" (database stores need SQLAlchemy and alembic beside mlflow-skinny: pip install "
                "'afbench[export]')" if uri.startswith(SQL_SCHEMES) else "")
        raise AfbenchError(f"cannot use MLflow tracking URI {uri}: {str(err).splitlines()[0][:300]}{hint}. "
                           "sqlite:///PATH/mlflow.db is MLflow's local store") from None


def _artifact_location(uri: str) -> str | None:
    """For a SQLite store, a folder beside the database; elsewhere the store's default."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///"):])
    return (database.parent / f"{database.stem}-artifacts").resolve().as_uri()


def _experiment(client, name: str, uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_location(uri))


def export_runs(out: str | Path, dest: str, experiment: str | None = None) -> common.Exported:
    """Log the finished runs of ``out`` to the MLflow store or server at ``dest``
    (sqlite:///path.db, http://host:port, ...). Returns the run names added (with their
    MLflow ids) and those skipped as already there."""
    uri = tracking_uri(dest)
    if uri.startswith(("http://", "https://")):
        check_answers(uri)  # before MLflow's import: a dead URL is said in a second
    tracking = common.require("mlflow.tracking", "MLflow")
    entities = common.require("mlflow.entities", "MLflow")
    runs, epochs = common.frames(out)
    if not len(runs):
        raise AfbenchError(f"{out} holds no finished runs to export")
    with _environment(uri):
        client = _client(tracking, uri)
        try:
            return _log(client, entities, uri, experiment_name(out, experiment), out, runs, epochs)
        except AfbenchError:
            raise
        except Exception as err:  # a store or server failing midway: say where, keep what was logged
            raise AfbenchError(f"MLflow at {uri} failed: {str(err).splitlines()[0][:300]}. Runs logged so far "
                               "are kept; rerun the same export to add the rest") from None


def _log(client, entities, uri: str, name: str, out, runs, epochs) -> common.Exported:
    experiment_id = _experiment(client, name, uri)
    varying = common.varying(runs)
    known, partial = set(), {}
    for found in client.search_runs([experiment_id], max_results=50000):
        key = found.data.tags.get("afbench.key")
        if found.info.status == "RUNNING":  # an export stopped midway: logged again, whole
            partial.setdefault(key, []).append(found.info.run_id)
        else:
            known.add(key)
    done = common.Exported()
    for _, run in runs.iterrows():
        label = common.run_name(run, varying)
        if run["key"] in known:
            done.skipped.append(label)
            continue
        for run_id in partial.get(run["key"], []):
            client.delete_run(run_id)
        mlrun = client.create_run(experiment_id, run_name=label,
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
        (done.replaced if run["key"] in partial else done.added).append(label)
        done.ids.append(mlrun.info.run_id)
    return done


export = export_runs  # afbench.export.mlflow.export(out, tracking_uri, experiment=None)
