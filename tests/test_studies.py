"""The init study shows what lecture S5 describes; the S4 preset sweeps learning rates."""

import pytest

from afbench import data, studies
from afbench.cli import build_parser, main
from afbench.cli.run import study_from_args


@pytest.fixture(scope="module")
def init_result():
    prepared = data.prepare(data.load("digits"))
    study = studies.InitStudy(depth=6, width=100, batch=300, train_steps=60)
    return studies.run_init_study(prepared, ("tanh", "relu"), ("zeros", "normal001", "xavier", "he"), study)


def _std(result, activation, init, layer):
    frame = result.layers
    return frame[(frame.activation == activation) & (frame.init == init) & (frame.layer == layer)]["act_std"].item()


def test_tanh_activations_collapse_under_small_normal_init(init_result):
    # N(0, 0.01): each layer shrinks the signal ~20x (100 units x 0.01^2 variance), so by layer 6
    # it is tiny; Xavier keeps it at a usable scale.
    assert _std(init_result, "tanh", "normal001", 6) < 1e-4 * _std(init_result, "tanh", "normal001", 1)
    assert _std(init_result, "tanh", "xavier", 6) > 0.1


def test_he_keeps_relu_alive_and_zeros_learn_nothing(init_result):
    assert _std(init_result, "relu", "he", 6) > 0.3
    assert _std(init_result, "relu", "zeros", 3) == 0.0
    training = init_result.training.set_index(["activation", "init"])["test_acc"]
    assert training[("relu", "he")] > 0.8 and training[("tanh", "xavier")] > 0.8
    assert not studies.learns(training[("tanh", "zeros")], 10)


def test_study_init_command_writes_its_figures(tmp_path, capsys):
    assert main(["study", "init", "--activations", "tanh", "--inits", "normal001,xavier", "--depth", "3",
                 "--width", "50", "--train-steps", "10", "--out", str(tmp_path)]) == 0
    for name in ("init_summary.md", "init_layers.csv", "init_training.csv", "init_act_std.png",
                 "init_acts_tanh.png", "init_grads_tanh.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "learns: above 0.50, at least half right and twice chance" in (tmp_path / "init_summary.md").read_text()


def test_s4_preset_sweeps_learning_rates_and_seeds():
    study, _ = study_from_args(build_parser().parse_args(["run", "--preset", "s4-relu-softsign"]))
    cells = study.grid(study.activations).configs()
    assert len(cells) == 6 * 3 * 3 and {c.lr for c in cells} == {3e-4, 1e-3, 3e-3}
    assert {c.activation for c in cells} >= {"relu_softsign", "relu_softplus"}
    assert all(c.valid_fraction == 0.1 for c in cells)  # learning rates are chosen on validation data


@pytest.mark.slow  # study init covers the studies in the default run
def test_study_norm_runs_one_sweep_per_norm(tmp_path, capsys):
    import pandas as pd

    assert main(["study", "norm", "--dataset", "digits", "--model", "mlp", "--norms", "none,batch,layer",
                 "--activations", "relu,tanh", "--epochs", "1", "--target", "0.5", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "norm_summary.csv")
    assert len(table) == 6 and set(table["norm"]) == {"none", "batch", "layer"}
    params = {norm: pd.read_csv(tmp_path / f"norm-{norm}" / "summary.csv")["params"].iloc[0]
              for norm in ("none", "batch", "layer")}
    assert params["batch"] == params["none"] + 2 * (128 + 64) == params["layer"]  # scale and shift per unit
