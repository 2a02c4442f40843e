"""One validation: the flags and a study file build the same Study, and a study file
is refused everything a flag is refused, naming the file, the line and the key."""

import pytest

from afbench.cli import build_parser, main
from afbench.cli.run import study_from_args
from afbench.errors import AfbenchError
from afbench.sweep import study

STUDY = """name = "mine"
[grid]
activations = ["relu", "tanh", "x * sigmoid(1.5 * x)"]
models = ["mlp"]
datasets = ["digits"]
seeds = [3, 7]
lrs = [1e-3, 3e-3]
[settings]
epochs = 2
batch_size = 32
target = 0.9
weight_decay = 0.0001
augment = true
[execution]
workers = 1
threads = 2
device = "cpu"
out = "results/mine"
"""
FLAGS = ["run", "--activations", "relu,tanh,x * sigmoid(1.5 * x)", "--model", "mlp", "--dataset", "digits",
         "--seeds", "3,7", "--lr", "1e-3,3e-3", "--epochs", "2", "--batch-size", "32", "--target", "0.9",
         "--weight-decay", "0.0001", "--augment", "--workers", "1", "--threads", "2", "--device", "cpu",
         "--out", "results/mine"]


def _from_flags(argv: list[str]):
    built, notes = study_from_args(build_parser().parse_args(argv))
    return built, notes


def test_a_study_file_and_the_same_flags_build_the_same_study_and_run_keys(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(STUDY)
    from_file, _ = _from_flags(["run", "--study", str(path)])
    from_flags, _ = _from_flags(FLAGS)
    assert from_file.with_(name=None) == from_flags.with_(name=None)  # flags alone have no study name
    assert from_file == study.load_study(path)
    names = ("relu", "tanh", "x * sigmoid(1.5 * x)")
    keys = [c.key() for c in from_flags.grid(names).configs()]
    assert keys == [c.key() for c in from_file.grid(names).configs()]
    assert len(keys) == 3 * 2 * 2 and len(set(keys)) == 12
    assert {c.valid_fraction for c in from_file.grid(names).configs()} == {0.1}  # lrs chosen on validation


def test_a_flag_beside_a_study_overrides_it_with_a_note(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(STUDY)
    built, notes = _from_flags(["run", "--study", str(path), "--epochs", "5", "--threads", "1"])
    assert built.settings.epochs == 5 and built.execution.threads == 1 and built.settings.batch_size == 32
    assert sorted(notes) == ["--epochs 5 overrides the study's epochs = 2",
                             "--threads 1 overrides the study's threads = 2"]


def test_one_seed_is_one_seed():
    built, _ = _from_flags(["run", "--seed", "42", "--activations", "relu"])
    assert built.seeds == (42,) and len(built.grid(("relu",)).configs()) == 1
    with pytest.raises(SystemExit):  # no prefix matching: --epoch is not --epochs
        build_parser().parse_args(["run", "--epoch", "3"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--seed", "1", "--seeds", "3"])


def test_no_flags_is_the_quick_preset_and_execution_flags_keep_it():
    built, _ = _from_flags(["run", "--workers", "1"])
    assert built.name == "quick" and built.execution.workers == 1 and built.seeds == tuple(range(10))


# Each case: (flag, its value, the study-file text that holds the same value, words of both errors)
REFUSED = [
    ("--threads", "0", "[execution]\nthreads = 0", "a whole number >= 1"),
    ("--threads", "-1", "[execution]\nthreads = -1", "a whole number >= 1"),
    ("--device", "tpu", "[execution]\ndevice = \"tpu\"", "auto, cpu, cuda"),
    ("--epochs", "0", "[settings]\nepochs = 0", "a whole number >= 1"),
    ("--batch-size", "-5", "[settings]\nbatch_size = -5", "a whole number >= 1"),
    ("--train-subset", "0", "[settings]\ntrain_subset = 0", "a whole number >= 1"),
    ("--image-size", "30000", "[settings]\nimage_size = 30000", "from 1 to 1024"),
    ("--lr", "-1", "[grid]\nlrs = [-1]", "a number > 0"),
    ("--seeds", "0", "[grid]\nseeds = 0", "N from 1 to 10,000"),
    ("--stack", "0", "[execution]\nstack = 0", "auto or a whole number >= 1"),
    ("--max-seeds", "0", "[execution]\nmax_seeds = 0", "a whole number from 3 to 10,000"),
    ("--momentum", "1.5", "[settings]\nmomentum = 1.5", "[0, 1)"),
]


@pytest.mark.parametrize("flag, value, text, words", REFUSED)
def test_what_a_flag_refuses_a_study_file_refuses(flag, value, text, words, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", flag, value])
    assert words in " ".join(capsys.readouterr().err.split())  # the message is wrapped to 80 columns
    with pytest.raises(AfbenchError) as err:
        study.parse_study("# a study\n" + text, "my.toml")
    message = str(err.value)
    assert message.startswith("my.toml, line 3: [") and words in message
    assert text.split("\n")[1].split(" =")[0] in message  # the key


def test_a_target_is_an_accuracy_for_classification_and_in_its_own_metric_elsewhere(capsys):
    """The flag cannot know the workload when it is parsed: the study refuses it, from flags or a file."""
    assert main(["run", "--target", "98", "--activations", "relu"]) == 2
    assert "target is an accuracy in (0, 1]" in capsys.readouterr().err
    with pytest.raises(AfbenchError, match=r"my.toml: \[settings\]: target is an accuracy in \(0, 1\]"):
        study.parse_study("# a study\n[settings]\ntarget = 98", "my.toml")
    charlm = study.parse_study("# a study\n[settings]\nworkload = \"charlm\"\ntarget = 2.5", "my.toml")
    assert charlm.settings.target == 2.5  # bits per character


@pytest.mark.parametrize("name", ["../../etc", "a/b", ".hidden", "", "x" * 101, "[/x]"])
def test_a_study_name_is_one_safe_folder_name(name):
    with pytest.raises(AfbenchError, match="name: expected a name of letters"):
        study.parse_study(f'name = "{name}"\n', "my.toml")
    with pytest.raises(AfbenchError):
        study.Study(name=name)


def test_a_study_built_in_python_is_checked_too():
    with pytest.raises(AfbenchError, match="threads"):
        study.Study(execution=study.Execution(threads=0))
    with pytest.raises(AfbenchError, match="seeds"):
        study.Study(seeds=())


def test_markup_in_values_is_text(tmp_path, capsys):
    from afbench.cli import main

    path = tmp_path / "s.toml"
    path.write_text('[grid]\nactivations = ["[/x]"]\n[settings]\nepochs = 1\n')
    assert main(["run", "--study", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "[/x]" in err and "Traceback" not in err
