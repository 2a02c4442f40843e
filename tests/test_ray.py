"""The Ray backend: same rows as the local backend, worker deaths survived, two nodes."""

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from afbench.config import RunConfig  # noqa: E402
from afbench.sweep import LocalBackend, Runtime  # noqa: E402
from afbench.sweep.backends import ray as ray_backend  # noqa: E402
from afbench.sweep.grid import Grid  # noqa: E402
from afbench.store.database import Store  # noqa: E402

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    marker = tmp_path_factory.mktemp("marker") / "died"
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "AFBENCH_CACHE_DIR": os.environ["AFBENCH_CACHE_DIR"], "AFBENCH_OFFLINE": "1",
           "AFBENCH_TEST_MARKER": str(marker)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    yield marker
    ray.shutdown()


def _rows(store):
    runs = {r["key"]: r for r in store.runs()}
    epochs = {}
    for e in store.epochs():
        epochs.setdefault(e["run_key"], []).append((e["epoch"], e["train_loss"], e["test_loss"], e["test_acc"]))
    return {k: (r["status"], r["summary"]["accuracy"], r["summary"]["f1"], epochs[k]) for k, r in runs.items()}


def test_ray_gives_the_same_rows_as_the_local_backend(local_ray, tmp_path):
    cells = Grid(RunConfig(epochs=2, batch_size=64), ("relu", "tanh"), seeds=(0, 1)).configs()
    local = Store(tmp_path / "local")
    # one run at a time, as Ray runs them: a stack would sum the same losses in another order
    LocalBackend(Runtime(threads=1, workers=1, stack=1, progress=False)).execute(cells, local)
    remote = Store(tmp_path / "ray")
    counts = ray_backend.RayBackend(ray_backend.RayOptions(cpus_per_run=1), progress=False).execute(cells, remote)
    assert counts == {"ran": 4, "skipped": 0, "failed": 0}
    assert _rows(remote) == _rows(local)
    assert ray_backend.RayBackend(ray_backend.RayOptions(), progress=False).execute(cells, remote)["skipped"] == 4


@pytest.mark.slow  # 7 s; the local backend's kill -9 test stays in the default run
def test_a_killed_worker_is_retried_and_every_run_completes_once(local_ray, tmp_path):
    cells = Grid(RunConfig(epochs=2, batch_size=64), ("ray_helpers:DieOnce", "relu"), seeds=(0,)).configs()
    store = Store(tmp_path)
    counts = ray_backend.RayBackend(ray_backend.RayOptions(max_retries=2), progress=False).execute(cells, store)
    assert local_ray.exists()  # a worker really was killed
    assert counts == {"ran": 2, "skipped": 0, "failed": 0}
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in store.runs())
    assert len(store.epochs()) == 4


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(local_ray, tmp_path):
    cells = Grid(RunConfig(epochs=1, batch_size=64), ("ray_helpers:Raises", "relu"), seeds=(0,)).configs()
    store = Store(tmp_path)
    assert ray_backend.RayBackend(ray_backend.RayOptions(), progress=False).execute(cells, store) == {
        "ran": 1, "skipped": 0, "failed": 1}
    failed = [r for r in store.runs() if r["status"] == "failed"]
    assert len(failed) == 1 and "always fails" in failed[0]["error"]


@pytest.mark.slow  # 5 s; the same file's local path is tested in test_user_models
def test_a_user_model_file_travels_with_the_tasks(local_ray, tmp_path, monkeypatch):
    from afbench import models

    path = tmp_path / "driver_only" / "net.py"
    path.parent.mkdir()
    path.write_text((TESTS / "fixtures" / "models" / "my_net.py").read_text())
    ident = models.identity(f"{path}:make")
    read_on_driver = ray_backend.user_files

    def read_then_delete(configs):  # the tasks are submitted after this: no worker can see the path
        files = read_on_driver(configs)
        shutil.rmtree(path.parent)
        return files

    monkeypatch.setattr(ray_backend, "user_files", read_then_delete)
    cells = Grid(RunConfig(model=ident, epochs=1, batch_size=64), ("tanh", "mish"), seeds=(0,)).configs()
    store = Store(tmp_path / "out")
    counts = ray_backend.RayBackend(ray_backend.RayOptions(), progress=False).execute(cells, store)
    assert not path.exists()
    assert counts == {"ran": 2, "skipped": 0, "failed": 0}, [r["error"] for r in store.runs()]
    assert {r["config"]["model"] for r in store.runs()} == {ident}


@pytest.mark.slow  # 3.5 s; the default run checks Ray's rows against the local backend's
def test_a_user_workload_file_travels_with_the_tasks(local_ray, tmp_path, monkeypatch):
    from afbench import workloads
    from test_workloads_user import MY_TASKS

    path = tmp_path / "driver_only" / "my_tasks.py"
    path.parent.mkdir()
    path.write_text(MY_TASKS)
    ident = workloads.identity(f"{path}:make")
    read_on_driver = ray_backend.user_files

    def read_then_delete(configs):  # the tasks are submitted after this: no worker can see the path
        files = read_on_driver(configs)
        shutil.rmtree(path.parent)
        return files

    monkeypatch.setattr(ray_backend, "user_files", read_then_delete)
    base = RunConfig(**{**workloads.get(ident).settings(), "latency_samples": 2, "epochs": 1})
    cells = Grid(base, ("tanh", "relu"), seeds=(0,)).configs()
    store = Store(tmp_path / "out")
    counts = ray_backend.RayBackend(ray_backend.RayOptions(), progress=False).execute(cells, store)
    assert not path.exists()
    assert counts == {"ran": 2, "skipped": 0, "failed": 0}, [r["error"] for r in store.runs()]
    assert {r["summary"]["primary_metric"] for r in store.runs()} == {"mse"}


@pytest.mark.slow  # the limit itself is engine code, tested in process (test_faults); 9 s here
def test_a_run_over_its_time_limit_fails_on_ray_and_the_sweep_goes_on(local_ray, tmp_path):
    cells = Grid(RunConfig(epochs=1, batch_size=64, train_subset=256), ("ray_helpers:Hangs", "relu"),
                 seeds=(0,)).configs()
    store = Store(tmp_path)
    backend = ray_backend.RayBackend(ray_backend.RayOptions(), progress=False,
                                     runtime=Runtime(run_timeout=4, progress=False, cost="off"))
    assert backend.execute(cells, store) == {"ran": 1, "skipped": 0, "failed": 1}
    failed = [r for r in store.runs() if r["status"] == "failed"]
    assert len(failed) == 1 and "per-run time limit" in failed[0]["error"], failed[0]["error"]
    assert failed[0]["config"]["activation"] == "ray_helpers:Hangs"


def test_the_ray_backend_measures_the_cost_profile_too(local_ray, tmp_path):
    from afbench.sweep import execute
    from afbench.sweep.backends import create

    cells = Grid(RunConfig(epochs=1, batch_size=64, train_subset=256), ("tanh", "elu"), seeds=(0,)).configs()
    backend = create("ray", Runtime(threads=1, progress=False, cost="on"), cpus_per_run=1)
    assert execute(cells, tmp_path, backend, device="cpu", baseline="tanh").counts["ran"] == 2
    store = Store(tmp_path)
    rows = store.db.execute("SELECT activation, record FROM cost").fetchall()
    meta = store.meta()
    store.close()
    assert {r[0] for r in rows} == {"tanh", "elu"} and all('"baseline": "tanh"' in r[1] for r in rows)
    assert meta["cost_profile"]["baseline"] == "tanh" and meta["scheduler"]["how"] == "ray: one task per run"


@pytest.mark.slow
def test_two_nodes_on_loopback(tmp_path):
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent))
    port = "6391"
    # Ray 2.5x+ nodes authenticate each other: one fresh token for head, worker and driver.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                    "--node-ip-address=127.0.0.1"], check=True, env=env, capture_output=True)
    try:
        subprocess.run([ray_cli, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1",
                        "--node-ip-address=127.0.0.1"], check=True, env=env, capture_output=True)
        # 30 epochs: tasks long enough (seconds) that Ray spreads them over both nodes once the second one has
        # started its Python workers; with 8, on a fast day, the head node finished all four first
        out = subprocess.run([sys.executable, "-m", "afbench.cli", "run", "--backend", "ray", "--address",
                              f"127.0.0.1:{port}", "--activations", "relu,tanh,elu,selu", "--epochs", "30",
                              "--out", str(tmp_path), "--no-progress"], env=env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        runs = Store(tmp_path).runs()
        assert len(runs) == 4 and all(r["status"] == "done" for r in runs)
        assert len({r["provenance"]["ray_node"] for r in runs}) == 2  # both nodes trained runs
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True)
