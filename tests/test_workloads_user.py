"""Issue 26: a workload of your own, in a file (--workload my_tasks.py:make), as in the README."""

import pytest

from afbench.cli import main
from afbench.store.database import Store

MY_TASKS = '''
import torch
import torch.nn.functional as F
from torch import nn

from afbench.data import Prepared, Split
from afbench.workloads import Metric, Workload


class Wave(Workload):
    """Fit y = sin(3x) on [-1, 1] with a small MLP; metric: test MSE."""

    def load_data(self, name):
        x = torch.linspace(-1, 1, 256).reshape(-1, 1)
        split = Split(x, torch.sin(3 * x))
        return Prepared(name, (), split, split, None, (0.0,), (1.0,))

    def build(self, config, data, act_layer):
        return nn.Sequential(nn.Linear(1, 32), act_layer(32), nn.Linear(32, 1))

    def loss(self, forward, model, x, y):
        out = forward(model, x)
        return F.mse_loss(out, y), out

    def evaluate(self, model, split):
        with torch.no_grad():
            mse = float(F.mse_loss(model(split.x), split.y))
        return {"loss": mse, "mse": mse}


def make():
    return Wave("wave", "regression", "sin(3x) on [-1, 1]", data="wave", model="mlp32",
                primary=Metric("mse", higher_is_better=False), target=0.01,
                defaults={"epochs": 2, "batch_size": 64, "lr": 1e-2})
'''


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")


def test_a_workload_in_a_file_trains_through_the_engine(tmp_path):
    from afbench import data, workloads
    from afbench.config import RunConfig
    from afbench.engine.train import train

    path = tmp_path / "my_tasks.py"
    path.write_text(MY_TASKS)
    workload = workloads.get(f"{path}:make")
    config = RunConfig(**{**workload.settings(), "activation": "tanh", "latency_samples": 5})
    result = train(config, data.prepare(workloads.load(config.dataset)))
    assert result.summary.primary_metric == "mse" and result.summary.primary_value < 1
    assert config.dataset.endswith("#wave") and workloads.identity(config.workload) == config.workload


@pytest.mark.slow
def test_a_workload_in_a_file_runs_end_to_end(tmp_path, capsys):
    path = tmp_path / "my_tasks.py"
    path.write_text(MY_TASKS)
    code = main(["run", "--workload", f"{path}:make", "--activations", "relu,tanh", "--seeds", "2", "--workers",
                 "1", "--stack", "1", "--cost-profile", "off", "--no-progress", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().out
    store = Store(tmp_path / "out")
    records = store.records()
    store.close()
    assert len(records) == 4
    config = records[0].config
    assert config["workload"].startswith(f"{path.resolve()}:make@")  # the file's identity: an edit is a new task
    assert config["dataset"] == f"{config['workload']}#wave" and config["model"] == "mlp32"
    assert config["epochs"] == 2 and config["lr"] == 1e-2  # the workload's budget
    assert {r.summary.primary_metric for r in records} == {"mse"}
    assert all(r.summary.higher_is_better is False and r.summary.primary_value < 1 for r in records)


def test_a_workload_file_that_returns_something_else_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "bad.py"
    path.write_text("def make():\n    return 42\n")
    code = main(["run", "--workload", f"{path}:make", "--activations", "relu", "--out", str(tmp_path / "out")])
    assert code != 0
    captured = capsys.readouterr()
    assert "not an afbench.workloads.Workload" in captured.out + captured.err


def test_an_activation_the_pde_cannot_differentiate_twice_is_refused_before_training(tmp_path, capsys,
                                                                                      monkeypatch):
    from afbench.workloads import pinn

    monkeypatch.setattr(pinn, "second_derivative_problem",
                        lambda act: "RuntimeError: no double backward" if act.name == "elu" else None)
    code = main(["run", "--workload", "pinn", "--activations", "tanh,elu", "--epochs", "1", "--workers", "1",
                 "--out", str(tmp_path / "out")])
    assert code != 0
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert "second derivatives of 'elu'" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "results.sqlite").exists()  # nothing queued


def test_list_workloads_shows_each_family_with_its_metric_and_direction(capsys):
    assert main(["list", "workloads"]) in (0, None)
    out = capsys.readouterr().out
    for text in ("charlm", "bpc (lower is better)", "psnr (higher is better)", "rel_l2_error", "mse",
                 "inr-large"):
        assert text in out
