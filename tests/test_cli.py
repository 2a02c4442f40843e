"""The `afbench` command as a user calls it."""

import pandas as pd
import pytest
import torch

from afbench import activations
from afbench.cli import main


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # long sentences on one line, for the asserts


def test_list_activations_shows_every_one(capsys):
    assert main(["list", "activations"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in activations.names()) and "softmax" in out


def test_list_datasets(capsys):
    assert main(["list", "datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "cifar100" in out and "imagefolder:PATH" in out


def test_plot_activations_writes_a_png(tmp_path):
    out = tmp_path / "fig.png"
    assert main(["plot", "activations", "relu,tanh,relu_softsign", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_takes_what_run_takes_a_formula_with_commas(tmp_path):
    from afbench.report.figures import activation_curves

    out = tmp_path / "fig.svg"
    assert main(["plot", "activations", "relu,maximum(x, 0.1 * x)", "--out", str(out)]) == 0
    assert b"<svg" in out.read_bytes()[:400]
    x, y, dy, _ = activation_curves("maximum(x, 0.1 * x)")  # leaky ReLU, slope 0.1: written out here
    assert (abs(y - (x * (x > 0) + 0.1 * x * (x <= 0))) < 1e-6).all()  # the formula keeps 0.1 in float32
    assert (abs(dy[x < -0.01] - 0.1) < 1e-6).all() and (abs(dy[x > 0.01] - 1) < 1e-12).all()


def test_run_trains_reports_and_resumes(tmp_path, capsys):
    args = ["run", "--activations", "relu,tanh", "--epochs", "2", "--batch-size", "64", "--seeds", "2",
            "--target", "0.5", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "ran 4" in captured.err and "test error %" in captured.out and "ran 4" not in captured.out
    assert "preparing: loading the data and timing a few steps" in captured.err
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert sorted(summary["activation"]) == ["relu", "relu", "tanh", "tanh"] and set(summary["seed"]) == {0, 1}
    assert set(summary["setting"]) == {"mlp / digits"}  # rows of several settings in one folder stay apart
    assert (summary["status"] == "done").all() and (summary["dataset"] == "digits").all()
    assert (tmp_path / "figures" / "accuracy-digits-mlp.png").exists()
    assert main(args) == 0
    again = capsys.readouterr().err
    assert "ran 0, skipped 4" in again and "preparing" not in again  # nothing to train: no timing promised


def test_stack_trains_seeds_together_and_says_so(tmp_path, capsys):
    # One worker: with two, the calibration would give each worker a stack of 2 of the 3 seeds.
    assert main(["run", "--activations", "relu", "--epochs", "2", "--seeds", "3", "--stack", "3", "--workers", "1",
                 "--out", str(tmp_path), "--no-progress"]) == 0
    assert "up to 3 seeds stacked per model" in capsys.readouterr().err  # the scheduler, in words
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 3 and (runs["provenance.stack_size"] == 3).all()
    assert "stacked runs share one clock" in (tmp_path / "summary.md").read_text()
    with pytest.raises(SystemExit):
        main(["run", "--stack", "0"])
    assert "expected auto or a whole number >= 1, got '0'" in " ".join(capsys.readouterr().err.split())


def test_several_learning_rates_pick_one_per_activation_on_validation(tmp_path, capsys):
    assert main(["run", "--activations", "relu,sigmoid", "--epochs", "2", "--lr", "0.1,0.001", "--out",
                 str(tmp_path), "--no-progress"]) == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 4 and (runs["config.valid_fraction"] == 0.1).all()
    assert "Learning rate chosen per activation" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("argv,message", [
    (["run", "--activations", "relux"], "Did you mean 'relu'"),
    (["run", "--dataset", "minst"], "Did you mean 'mnist'"),
    (["run", "--preset", "s9"], "unknown preset"),
    (["report", "/nonexistent/folder"], "no results.sqlite"),
    (["run", "--stack", "3", "--backend", "ray"], "--stack applies to the local backend"),
    pytest.param(["run", "--device", "cuda"], "torch sees no CUDA GPU: use --device cpu or auto",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_bad_input_is_a_clear_error_not_a_traceback(argv, message, capsys, tmp_path):
    assert main(argv + (["--out", str(tmp_path)] if argv[0] == "run" else [])) == 2
    captured = capsys.readouterr()
    assert message in captured.err.replace("\n", " ") and captured.out == ""  # errors on stderr only


@pytest.mark.parametrize("preset,count,model,dataset", [("s1-mnist", 6, "lenet", "mnist"),
                                                       ("s1-cifar10", 6, "vgg11", "cifar10"),
                                                       ("s2-mlp", 3, "mlp", "mnist"), ("quick", 40, "mlp", "digits")])
def test_presets_expand_to_the_studies_grids(preset, count, model, dataset):
    from afbench.cli import build_parser
    from afbench.cli.run import study_from_args

    study, _ = study_from_args(build_parser().parse_args(["run", "--preset", preset]))
    cells = study.grid(study.activations).configs()
    assert study.name == preset and len(cells) == count
    assert {(c.model, c.dataset) for c in cells} == {(model, dataset)}


def test_explicit_flags_override_the_preset():
    from afbench.cli import build_parser
    from afbench.cli.run import study_from_args

    study, _ = study_from_args(build_parser().parse_args(["run", "--preset", "s1-mnist", "--epochs", "2",
                                                          "--activations", "relu,elu", "--seeds", "3"]))
    cells = study.grid(study.activations).configs()
    assert len(cells) == 6 and {c.epochs for c in cells} == {2} and {c.target for c in cells} == {0.98}
