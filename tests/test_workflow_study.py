"""Study files: checking, line numbers, the TOML round trip, presets as study files."""

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
    """The run keys the flag path built from an old preset dict (the old grid_from_args's logic, restated)."""
    settings = dict(old)
    names, lrs, seeds = settings.pop("activations"), settings.pop("lrs", None), settings.pop("seeds", 1)
    lrs = lrs or (settings["lr"],)
    settings["lr"] = lrs[0]
    built = grid.Grid(RunConfig(**settings), names, tuple(range(seeds)), lrs if len(lrs) > 1 else ())
    return [c.key() for c in built.configs()]


@pytest.mark.parametrize("name, old", [("s1-mnist", OLD_S1_MNIST), ("s4-relu-softsign", OLD_S4)])
def test_preset_study_file_gives_the_old_run_keys(name, old):
    loaded = study.parse_study(study.show_preset(name))
    assert [c.key() for c in loaded.grid().configs()] == _old_keys(old)
    assert loaded.execution == study.Execution()
    flat = study.preset(name)
    same = [k for k in old if k not in ("seeds", "lr")]  # with several lrs, lr is only the first one
    assert {k: flat[k] for k in same} == {k: old[k] for k in same}


def test_presets_are_found_forgivingly_and_listed_quick_first():
    assert study.preset_study("S1_MNIST") == study.preset_study("s1-mnist")  # lookups stay forgiving
    assert study.list_presets()[0] == "quick"
    assert {"s1-mnist", "s1-cifar10", "s2-mlp", "s4-relu-softsign", "s4-cifar100", "quick", "cifar-resnet20",
            "cifar-vit"} == set(study.list_presets())


@pytest.mark.parametrize("name", study.list_presets())
def test_every_preset_round_trips(name):
    loaded = study.parse_study(study.show_preset(name), name)
    assert study.parse_study(study.dump_study(loaded)) == loaded
    assert study.parse_study(study.dump_study(loaded, every_setting=True)) == loaded
    assert loaded.name == name


def test_dump_writes_every_kind_of_value(tmp_path):
    text = """name = "odd-one"
description = "quotes \\" and a [/x] in text"
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
    assert loaded.description == 'quotes " and a [/x] in text'
    assert loaded.lrs == (1e-05, 2.0) and loaded.settings.target == 1.0 and loaded.seeds == (3, 7)
    assert loaded.execution == study.Execution(stack=2, equivalence=1.0, compile=True)
    assert study.parse_study(study.dump_study(loaded)) == loaded
    built = loaded.grid(("relu",))
    assert built.seeds == (3, 7) and built.lrs == (1e-05, 2.0) and built.base.norm == "layer"


@pytest.mark.parametrize("text, line, words", [
    ("[grid]\nactivation = ['relu']", 2, ["activation", "Did you mean 'activations'", "Valid: activations"]),
    ("[settings]\n\nbatchsize = 3", 3, ["batchsize", "Did you mean 'batch_size'"]),
    ("[settings]\nepochs = '3'", 2, ["epochs", "expected a whole number >= 1"]),
    ("[settings]\nseed = 3", 2, ["seed", "[grid]"]),
    ("name = 'x'\n[exec]\nworkers = 1", 2, ["exec", "Did you mean 'execution'"]),
    ("[execution]\nworkers = 1.5", 2, ["workers", "auto"]),
    ("[grid]\nseeds = 0", 2, ["seeds", "N from 1 to 10,000"]),
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
        study.show_preset("s9")


def test_a_study_reproduces_its_grid_through_toml():
    base = RunConfig(dataset="digits", model="mlp", epochs=2, target=0.9, hidden_bias=0.01)
    original = study.Study(name="mine", activations=("relu", "tanh"), seeds=(0, 1, 2), lrs=(1e-3, 3e-3),
                           settings=base, execution=study.Execution(workers=2, device="cpu"))
    again = study.parse_study(study.dump_study(original, every_setting=True))
    assert again == original
    assert [c.key() for c in again.grid().configs()] == [c.key() for c in original.grid().configs()]
    assert "seeds = 3\n" in study.dump_study(original)  # seeds 0..N-1 written as their count
