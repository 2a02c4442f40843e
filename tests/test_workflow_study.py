"""Study files: checking, line numbers, the TOML round trip, presets as study files."""

import argparse

import pytest

from afbench.config import RunConfig
from afbench.errors import AfbenchError
from afbench.sweep import grid, study

# The presets as sweep/grid.py held them before they became study files: the reference.
S1 = ("relu", "tanh", "selu", "prelu", "elu", "leaky_relu")
OLD_S1_MNIST = dict(dataset="mnist", model="lenet", activations=S1, epochs=10, batch_size=128, optimizer="adam",
                    lr=1e-3, target=0.98)
OLD_S4 = dict(dataset="mnist", model="lenet", activations=("relu", "leaky_relu", "softplus", "softsign",
                                                           "relu_softplus", "relu_softsign"),
              epochs=10, batch_size=128, optimizer="adam", lr=1e-3, lrs=(3e-4, 1e-3, 3e-3), seeds=3, target=0.98)


def _old_keys(old: dict) -> list[str]:
    """The run keys the flag path built from an old preset dict (cli.grid_from_args's logic, restated)."""
    settings = dict(old)
    names, lrs, seeds = settings.pop("activations"), settings.pop("lrs", None), settings.pop("seeds", 1)
    lrs = lrs or (settings["lr"],)
    settings["lr"] = lrs[0]
    built = grid.Grid(RunConfig(**settings), names, tuple(range(seeds)), lrs if len(lrs) > 1 else ())
    return [c.key() for c in built.configs()]


@pytest.mark.parametrize("name, old", [("s1-mnist", OLD_S1_MNIST), ("s4-relu-softsign", OLD_S4)])
def test_preset_study_file_gives_the_old_run_keys(name, old):
    built, execution = study.study_to_grid(study.parse_study(grid.show_preset(name)))
    assert [c.key() for c in built.configs()] == _old_keys(old)
    assert execution == {}
    from_preset = grid.preset(name)  # the dict cli.grid_from_args reads
    assert _old_keys(from_preset) == _old_keys(old)


def test_s1_mnist_preset_dict_matches_the_old_one():
    assert grid.preset("s1-mnist") == OLD_S1_MNIST
    assert grid.preset("S1_MNIST") == OLD_S1_MNIST  # lookups stay forgiving
    assert list(grid.PRESETS) == grid.list_presets()
    assert {"s1-mnist", "s1-cifar10", "s2-mlp", "s4-relu-softsign", "s4-cifar100", "quick", "cifar-resnet20",
            "cifar-vit"} == set(grid.PRESETS)


@pytest.mark.parametrize("name", grid.list_presets())
def test_every_preset_round_trips(name):
    loaded = study.parse_study(grid.show_preset(name), name)
    assert study.parse_study(study.dump_study(loaded)) == loaded
    assert loaded["name"] == name


def test_dump_writes_every_kind_of_value(tmp_path):
    text = """name = "odd \\"one\\""
[grid]
activations = "all"
seeds = [3, 7]
lrs = [1e-05, 2]
[settings]
target = 1
augment = true
norm = "layer"
[execution]
workers = "auto"
stack = 2
equivalence = 1
compile = true
"""
    path = tmp_path / "s.toml"
    path.write_text(text)
    loaded = study.load_study(path)
    assert loaded["name"] == 'odd "one"'
    assert loaded["grid"]["lrs"] == [1e-05, 2.0] and loaded["settings"]["target"] == 1.0
    assert loaded["execution"] == {"workers": "auto", "stack": 2, "equivalence": 1.0, "compile": True}
    assert study.parse_study(study.dump_study(loaded)) == loaded
    built, _ = study.study_to_grid(loaded)
    assert built.seeds == (3, 7) and built.lrs == (1e-05, 2.0) and built.base.norm == "layer"


@pytest.mark.parametrize("text, line, words", [
    ("[grid]\nactivation = ['relu']", 2, ["activation", "Did you mean 'activations'", "Valid: activations"]),
    ("[settings]\n\nbatchsize = 3", 3, ["batchsize", "Did you mean 'batch_size'"]),
    ("[settings]\nepochs = '3'", 2, ["epochs", "expected int"]),
    ("[settings]\nseed = 3", 2, ["seed", "[grid]"]),
    ("name = 'x'\n[exec]\nworkers = 1", 2, ["exec", "Did you mean 'execution'"]),
    ("[execution]\nworkers = 1.5", 2, ["workers", "auto"]),
    ("[grid]\nseeds = 0", 2, ["seeds", "count >= 1"]),
    ("[execution]\ncompile = 1", 2, ["compile", "true or false"]),
])
def test_wrong_keys_name_the_key_line_and_choices(text, line, words):
    with pytest.raises(AfbenchError) as err:
        study.parse_study(text, "my.toml")
    assert f"my.toml, line {line}:" in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(AfbenchError, match="not valid TOML"):
        study.parse_study("[grid\n", "x.toml")
    with pytest.raises(AfbenchError, match="not found"):
        study.load_study(tmp_path / "nope.toml")
    with pytest.raises(AfbenchError, match="unknown preset"):
        grid.show_preset("s9")


def test_grid_to_study_reproduces_the_grid():
    base = RunConfig(dataset="digits", model="mlp", epochs=2, target=0.9, hidden_bias=0.01)
    original = grid.Grid(base, ("relu", "tanh"), (0, 1, 2), (1e-3, 3e-3), ("mlp",), ())
    resolved = study.grid_to_study(original, {"workers": 2, "device": "cpu"}, name="mine")
    again, execution = study.study_to_grid(study.parse_study(study.dump_study(resolved)))
    assert [c.key() for c in again.configs()] == [c.key() for c in original.configs()]
    assert execution == {"workers": 2, "device": "cpu"} and resolved["grid"]["seeds"] == 3


def _parser() -> argparse.ArgumentParser:
    """The run flags apply_study fills (a subset of cli's, same dests and defaults)."""
    parser = argparse.ArgumentParser()
    for flag in ("--activations", "--models", "--datasets", "--lr", "--seeds", "--epochs", "--threads", "--out"):
        parser.add_argument(flag, type=int if flag in ("--epochs", "--threads") else str)
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--baseline", default="relu")
    return parser


def test_apply_study_fills_defaults_and_notes_overrides():
    loaded = study.parse_study('name = "n"\n[grid]\nactivations = ["relu", "elu"]\nmodels = ["mlp", "lenet"]\n'
                               'seeds = 2\n[settings]\nepochs = 4\n[execution]\nworkers = 3\ndevice = "cpu"\n')
    parser = _parser()
    args = parser.parse_args(["--epochs", "2", "--device", "cuda"])
    notes = study.apply_study(args, loaded, parser)
    assert (args.activations, args.models, args.workers, args.device) == ("relu,elu", "mlp,lenet", 3, "cuda")
    assert args.study_settings["epochs"] == 4 and args.study_settings["seeds"] == 2 and args.study_name == "n"
    assert len(notes) == 2 and any("--epochs 2" in n for n in notes) and any("--device cuda" in n for n in notes)
