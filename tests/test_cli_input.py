"""Hostile input on the command line: one clear error (the problem and the fix) on
stderr, exit status 2, no traceback, and nothing already in a results folder touched."""

import errno
import os

import pandas as pd
import pytest

from afbench.cli import main


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # long sentences on one line, for the asserts


def _existing_folder(tmp_path):
    """A results folder as a first sweep leaves it: OUT/study.toml and the store's meta.study."""
    from afbench.store.database import Store
    from afbench.sweep.study import Study, save_study

    out = tmp_path / "r"
    out.mkdir()
    save_study(out, Study(name="first", activations=("relu", "tanh"), seeds=(0,)), ("relu", "tanh"))
    store = Store(out)
    try:
        meta = store.meta()
    finally:
        store.close()
    return out, (out / "study.toml").read_text(), meta


def _unchanged(out, toml, meta):
    from afbench.store.database import Store

    store = Store(out)
    try:
        assert store.meta() == meta
    finally:
        store.close()
    assert (out / "study.toml").read_text() == toml


def _refused(argv, capsys) -> str:
    """The error text of a command refused as bad input (argparse's or afbench's own)."""
    try:
        status = main(argv)
    except SystemExit as stop:
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    return err


def test_max_seeds_below_the_first_round_is_refused_before_the_folder_is_rewritten(tmp_path, capsys):
    out, toml, meta = _existing_folder(tmp_path)
    err = _refused(["run", "--activations", "relu,gelu", "--epochs", "1", "--seeds", "auto", "--max-seeds", "1",
                    "--out", str(out), "--no-progress"], capsys)
    assert "--max-seeds" in err and "from 3" in err and "got '1'" in err
    _unchanged(out, toml, meta)


def test_seeds_auto_with_several_learning_rates_is_refused_before_the_folder_is_rewritten(tmp_path, capsys):
    out, toml, meta = _existing_folder(tmp_path)
    err = _refused(["run", "--activations", "relu,gelu", "--epochs", "1", "--seeds", "auto", "--lr", "1e-3,1e-2",
                    "--out", str(out), "--no-progress"], capsys)
    assert "several learning rates" in err and "give one --lr" in err
    _unchanged(out, toml, meta)


def test_a_huge_seed_count_is_refused_before_the_seeds_are_made(tmp_path, capsys, monkeypatch):
    from afbench import rules

    made = []
    monkeypatch.setattr(rules, "range", lambda n: made.append(n) or range(n), raising=False)
    err = _refused(["run", "--activations", "relu", "--seeds", "99999999", "--out", str(tmp_path / "r")], capsys)
    assert "--seeds" in err and "from 1 to 10,000" in err and "99999999" in err
    assert made == [] and not (tmp_path / "r").exists()


def test_a_huge_grid_is_refused_naming_its_runs_and_how_to_lower_them(tmp_path, capsys):
    err = _refused(["run", "--activations", "relu,tanh,gelu,elu", "--seeds", "3000", "--lr", "1e-3,1e-2",
                    "--out", str(tmp_path / "r")], capsys)
    assert "24,000 runs (4 activations x 3,000 seeds x 2 learning rates)" in err
    assert "lower --activations or --seeds or --lr" in err and "afbench merge" in err
    assert not (tmp_path / "r").exists()


def test_seeds_auto_counts_its_largest_grid(tmp_path, capsys):
    err = _refused(["run", "--activations", "relu,tanh,gelu,elu", "--seeds", "auto", "--max-seeds", "9000",
                    "--out", str(tmp_path / "r")], capsys)
    assert "36,000 runs" in err and "--max-seeds" in err


@pytest.mark.parametrize("workers", ["1", "auto"])  # the data checked here, or in a worker
def test_a_validation_fraction_that_leaves_no_training_data_is_refused_before_training(tmp_path, capsys, workers):
    import warnings

    out = tmp_path / "r"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw UserWarning (std of no samples) either
        err = _refused(["run", "--activations", "relu", "--epochs", "1", "--valid-fraction", "0.99999",
                        "--workers", workers, "--stack", "1", "--cost-profile", "off", "--out", str(out),
                        "--no-progress"], capsys)
    assert "the validation fraction 0.99999 leaves 0 of the 1,437 training samples of digits" in err
    assert "use a smaller --valid-fraction" in err
    assert not out.exists()  # not even an empty folder


def test_a_train_subset_of_one_sample_is_refused(tmp_path, capsys):
    err = _refused(["run", "--activations", "relu", "--epochs", "1", "--train-subset", "1", "--workers", "1",
                    "--out", str(tmp_path / "r"), "--no-progress"], capsys)
    assert "1 training sample left" in err and "--train-subset" in err
    assert not (tmp_path / "r").exists()  # not even an empty folder


def test_an_out_under_a_file_is_refused_naming_the_file(tmp_path, capsys):
    (tmp_path / "a-file").write_text("in the way")
    err = _refused(["run", "--activations", "relu", "--epochs", "1", "--out", str(tmp_path / "a-file" / "r"),
                    "--no-progress"], capsys)
    assert f"cannot write to --out {tmp_path / 'a-file' / 'r'}: {tmp_path / 'a-file'} is a file where a folder" in err


BOOM = "import torch\n\nclass Boom(torch.nn.Module):\n    def forward(self, x):\n        raise RuntimeError('boom')\n"


@pytest.mark.parametrize("command", [
    ["cost", "--dataset", "digits", "--model", "mlp", "--budget", "1", "--out", "{tmp}/c"],
    ["plot", "activations", "--out", "{tmp}/p.png"],
    ["study", "init", "--out", "{tmp}/s"],
])
def test_a_user_activation_that_raises_is_a_clear_error_in_every_command(tmp_path, capsys, command):
    (tmp_path / "boomacts.py").write_text(BOOM)
    acts = f"relu,{tmp_path}/boomacts.py:Boom"
    argv = [a.format(tmp=tmp_path) for a in command]
    argv = argv[:2] + [acts] + argv[2:] if argv[0] == "plot" else argv + ["--activations", acts]
    err = _refused(argv, capsys)
    assert "activation 'boomacts:Boom'" in err and "RuntimeError: boom" in err and "Fix:" in err
    assert not any(p.is_file() for p in tmp_path.rglob("*") if p.name != "boomacts.py" and p.suffix != ".pyc")


def test_cost_refuses_an_activation_that_outputs_nan(tmp_path, capsys):
    err = _refused(["cost", "--activations", "relu,x/0-x/0", "--dataset", "digits", "--model", "mlp",
                    "--budget", "1", "--out", str(tmp_path / "c")], capsys)
    assert "activation 'x/0-x/0'" in err and "NaN or inf" in err and "keep it finite" in err


def test_a_data_dir_that_is_a_file_is_refused(tmp_path, capsys):
    data_file = tmp_path / "data.bin"
    data_file.write_bytes(b"not a folder")
    assert main(["list", "datasets", "--data-dir", str(data_file)]) == 2
    captured = capsys.readouterr()
    assert f"--data-dir must be a folder, and {data_file} is a file" in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""  # no listing that claims a data set is there


def _results_folder(tmp_path):
    """A results folder with four finished runs, copied from a fixture: nothing trained."""
    import shutil
    from pathlib import Path

    folder = tmp_path / "results"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "fixtures" / "results-v0.2.0.sqlite", folder / "results.sqlite")
    return folder


@pytest.mark.parametrize("command, named, problem", [
    (["merge", "{results}", "--out", "{file}/merged"], "{file}", "is a file where a folder is needed"),
    (["merge", "{results}", "--out", "{folder_db}"], "{folder_db}/results.sqlite",
     "is a folder where the results database should be"),
    (["cost", "--activations", "relu", "--budget", "1", "--out", "{file}"], "{file}",
     "is a file where a folder is needed"),
    (["plot", "activations", "relu", "--out", "{folder}"], "{folder}", "is a folder where a file is needed"),
    (["export", "{results}", "--to", "tensorboard", "{file}"], "{file}", "is a file where a folder is needed"),
    (["export", "{results}", "--to", "mlflow", "sqlite:///{file}/mlflow.db"], "{file}",
     "is a file where a folder is needed"),
], ids=["merge-out-under-a-file", "merge-out-holding-a-folder-database", "cost-out-a-file", "plot-out-a-folder",
        "export-into-a-file", "export-mlflow-under-a-file"])
def test_a_bad_path_is_named_with_its_problem_never_an_errno(tmp_path, capsys, command, named, problem):
    paths = {"results": _results_folder(tmp_path), "file": tmp_path / "a-file", "folder": tmp_path / "a-folder.png"}
    paths["file"].write_text("in the way")
    paths["folder"].mkdir()
    paths["folder_db"] = tmp_path / "merged"
    (paths["folder_db"] / "results.sqlite").mkdir(parents=True)
    err = " ".join(_refused([a.format(**paths) for a in command], capsys).split())
    assert f"{named.format(**paths)} {problem}" in err
    assert "Errno" not in err


def test_cost_refuses_a_bad_out_before_measuring(tmp_path, capsys, monkeypatch):
    from afbench.cost import api

    monkeypatch.setattr(api, "profile", lambda *a, **k: pytest.fail("measured before checking --out"))
    (tmp_path / "a-file").write_text("in the way")
    err = _refused(["cost", "--activations", "relu,tanh", "--out", str(tmp_path / "a-file" / "cost")], capsys)
    assert f"--out: {tmp_path / 'a-file'} is a file where a folder is needed" in " ".join(err.split())


@pytest.mark.parametrize("code, says", [
    (errno.ENOENT, "/x/y.png does not exist, and cannot be made there: check the path"),
    (errno.EACCES, "no permission to write in /x/y.png: choose a place you may write to"),
    (errno.ENOSPC, "the disk that holds /x/y.png is full: free some space"),
    (errno.EROFS, "/x/y.png is on a read-only file system: choose a writable place"),
    (errno.ELOOP, "/x/y.png: too many levels of symbolic links: check the path"),
])
def test_os_errors_read_as_sentences(code, says):
    from afbench.errors import path_problem

    assert path_problem(OSError(code, os.strerror(code), "/x/y.png")).startswith(says)


@pytest.mark.parametrize("device, says", [("mps", "torch sees no MPS device: use --device cpu or auto")])
def test_a_device_torch_cannot_use_is_refused_before_the_folder_is_made(tmp_path, capsys, monkeypatch, device, says):
    import torch

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for command in (["run", "--activations", "relu", "--epochs", "1", "--no-progress"], ["cost", "--activations",
                                                                                         "relu"]):
        err = _refused(command + ["--device", device, "--out", str(tmp_path / "r")], capsys)
        assert f"device '{device}' asked for, but {says}" in err
        assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("device", ["foo", "cuda:x", "meta", "xla"])
def test_any_device_string_torch_refuses_is_an_afbench_error(device):
    from afbench.engine.runtime import resolve_device
    from afbench.errors import AfbenchError

    with pytest.raises(AfbenchError, match=f"device '{device}' is not one .*: use --device auto, cpu"):
        resolve_device(device)


def _files(folder) -> list[str]:
    """The folder's files but SQLite's own -shm and -wal (a reader of a WAL database makes them)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-shm", "-wal")))


def _fixture_folder(tmp_path, name="fixture"):
    """An out folder with four finished runs (relu, tanh x seeds 0, 1 at lr 0.001), copied
    from a fixture: nothing trained."""
    import shutil
    from pathlib import Path

    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "fixtures" / "results-v0.2.0.sqlite", folder / "results.sqlite")
    return folder


def _two_learning_rates(tmp_path):
    """The fixture folder plus the same runs at lr 0.01, none with a validation split: what
    two `afbench run`s with other --lr and no --valid-fraction leave in one folder."""
    import sqlite3

    folder = _fixture_folder(tmp_path, "two-lr")
    db = sqlite3.connect(folder / "results.sqlite")
    with db:
        db.execute("INSERT INTO runs SELECT key || '-lr2', status, activation, model, dataset, seed, 0.01, "
                   "json_set(config, '$.lr', 0.01), provenance, summary, error, owner, heartbeat, attempts, "
                   "created, updated FROM runs")
    db.close()
    return folder


def test_a_folder_of_two_untuned_learning_rates_is_two_settings_for_report_and_merge(tmp_path, capsys):
    """What two `afbench run`s at other --lr and no --valid-fraction leave in one folder:
    nothing chooses between the rates, so each is its own setting, compared on its own
    (the hostile-input review: merging such folders was refused, with a fix it had followed)."""
    folder = _two_learning_rates(tmp_path)
    assert main(["report", str(folder)]) == 0
    tests = pd.read_csv(folder / "tests.csv")
    assert sorted(set(tests["setting"])) == ["mlp / digits, lr=0.001", "mlp / digits, lr=0.01"]
    assert main(["merge", str(folder), "--out", str(tmp_path / "m")]) == 0
    assert "lr=0.01" in (tmp_path / "m" / "summary.md").read_text()


def test_a_rate_only_one_activation_ran_is_left_out_of_the_tuning(tmp_path):
    """The hostile-input review's case: relu,tanh tuned over lr 0.001 and 0.01, then relu
    alone at 0.02 into the same folder. relu may only be tuned over the rates tanh had."""
    from afbench.config import RunConfig
    from afbench.report import render, tables
    from afbench.results import RunSummary, Status
    from afbench.store.database import Store

    store = Store(tmp_path)
    for lr, errors in ((1e-3, {"relu": 0.10, "tanh": 0.12}), (1e-2, {"relu": 0.08, "tanh": 0.11}),
                       (2e-2, {"relu": 0.01})):
        for activation, error in errors.items():
            for seed in range(3):
                run = RunConfig(activation=activation, seed=seed, lr=lr, valid_fraction=0.1, device="cpu")
                store.claim(run)
                store.finish(run.key(), Status.DONE, RunSummary(params=1, epochs_run=1, total_train_s=1.0,
                                                                error_rate=error, accuracy=1 - error,
                                                                valid_acc=1 - error), {})
    try:
        report = render.build(store, "relu")
    finally:
        store.close()
    assert 0.02 not in set(report.kept["lr"]) and len(report.kept) == 6
    assert "relu's runs at lr 0.02 are left out of the tuning" in " ".join(render.verdict_text(report))
    assert set(tables.unshared_rates(report.runs)["lr"]) == {0.02}


def test_the_run_lines_count_only_this_sweeps_runs(tmp_path):
    from afbench.cli.output import RunLines

    def run(key, seed):
        return {"key": key, "status": "done", "summary": None,
                "config": {"activation": "relu", "seed": seed, "model": "mlp", "dataset": "digits"}}

    said = []
    lines = RunLines(tmp_path, 2, said.append, every_s=60, keys=["a", "b"])
    earlier = [run("x", 0), run("y", 1)]  # the folder's runs of another sweep (another --lr)
    lines._finished = lambda: earlier
    with lines:
        lines._report(earlier + [run("a", 0)])
        lines._report(earlier + [run("a", 0), run("b", 1)])
    assert [s.split("]")[0] for s in said] == ["[1/2", "[2/2"]


def _cost_folder(tmp_path):
    """A folder as `afbench cost` leaves it: cost.csv and a database of step times, no runs."""
    from afbench.store.database import Store

    folder = tmp_path / "cost"
    folder.mkdir()
    (folder / "cost.csv").write_text("activation,step_ms\nrelu,1.0\n")
    Store(folder).close()
    return folder


def test_report_and_merge_of_a_cost_folder_are_refused_writing_nothing(tmp_path, capsys):
    folder = _cost_folder(tmp_path)
    before = _files(folder)
    err = " ".join(_refused(["report", str(folder)], capsys).split())
    assert f"{folder} holds no runs because it was made by `afbench cost`" in err
    assert "`afbench report` needs a folder written by `afbench run`" in err
    assert _files(folder) == before
    err = " ".join(_refused(["merge", str(folder), "--out", str(tmp_path / "m")], capsys).split())
    assert "holds no runs because it was made by `afbench cost`" in err and not (tmp_path / "m").exists()


def test_merge_refuses_a_baseline_the_runs_lack_before_writing(tmp_path, capsys):
    good = _fixture_folder(tmp_path)
    err = " ".join(_refused(["merge", str(good), "--out", str(tmp_path / "m9"), "--baseline", "nosuch"],
                            capsys).split())
    assert "baseline 'nosuch' is not among the activations" in err and "relu, tanh" in err
    assert not (tmp_path / "m9").exists()


def test_report_takes_the_database_path_for_its_folder(tmp_path, capsys, monkeypatch):
    from afbench.report import render

    good = _fixture_folder(tmp_path)
    asked = []
    monkeypatch.setattr(render, "write", lambda folder, baseline=None: asked.append(folder))  # no figures
    monkeypatch.setattr("afbench.cli.run.show_report", lambda *a, **k: None)
    assert main(["report", str(good / "results.sqlite")]) == 0 and asked == [good]
    (tmp_path / "notes.sqlite").write_text("")
    err = " ".join(_refused(["report", str(tmp_path / "notes.sqlite")], capsys).split())
    assert "is a file: give the results folder that holds results.sqlite (the folder, not the file)" in err


@pytest.mark.parametrize("command", [
    ["export", "{good}", "--to", "tensorboard", ""], ["export", "{good}", "--to", "mlflow", " "],
    ["merge", "{good}", "--out", ""], ["cost", "--activations", "relu", "--out", ""], ["report", ""],
    ["study", "init", "--out", ""]])
def test_an_empty_destination_is_refused(tmp_path, capsys, monkeypatch, command):
    good = _fixture_folder(tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    err = " ".join(_refused([a.format(good=good) for a in command], capsys).split())
    assert "got ''" in err and ("name a" in err)
    assert list(work.iterdir()) == []


def test_cost_refuses_a_damaged_database_before_measuring(tmp_path, capsys, monkeypatch):
    from afbench.cost import api

    monkeypatch.setattr(api, "profile", lambda *a, **k: pytest.fail("measured before checking the database"))
    out = tmp_path / "c"
    out.mkdir()
    (out / "results.sqlite").write_text("garbage")
    err = " ".join(_refused(["cost", "--activations", "relu", "--out", str(out)], capsys).split())
    assert f"{out}/results.sqlite is not an afbench results database" in err and "choose another --out" in err
    assert _files(out) == ["results.sqlite"]


def test_the_init_study_names_a_formula_s_figures_as_safe_files(tmp_path, capsys):
    out = tmp_path / "si"
    assert main(["study", "init", "--activations", "x/(1+abs(x)),relu", "--depth", "2", "--width", "8",
                 "--train-steps", "1", "--threads", "1", "--out", str(out)]) == 0
    figures = sorted(p.name for p in out.iterdir() if p.name.startswith(("init_acts_", "init_grads_")))
    assert all(p.is_file() for p in out.iterdir())  # no subfolder made by the '/'
    assert "init_acts_relu.png" in figures and len(figures) == 4
    assert any(name.startswith("init_acts_x_1_abs_x-") for name in figures)


@pytest.mark.parametrize("formula, says", [("1/x", "NaN or inf on inputs in [-6, 6] (at x = 0)"),
                                           ("x/abs(x)", "NaN or inf on inputs in [-6, 6] (at x = 0)"),
                                           ("sqrt(abs(x))", "its gradient is NaN or inf")])
def test_a_formula_infinite_at_zero_is_refused(tmp_path, capsys, formula, says):
    err = " ".join(_refused(["run", "--activations", f"relu,{formula}", "--epochs", "1", "--out",
                             str(tmp_path / "r")], capsys).split())
    assert f"activation '{formula}'" in err and says in err and "keep" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, usage, says", [
    (["run", "--seeds", "-1"], "usage: afbench run [options] (every option: afbench run --help)", "got '-1'"),
    (["study", "init", "--depth", "0"], "usage: afbench study init [options]", "got '0'"),
    (["merge"], "usage: afbench merge [options] OUT ...", "required: OUT, --out"),
    (["bogus"], "usage: afbench COMMAND ...", "invalid choice: 'bogus'")])
def test_a_flag_error_is_a_short_usage_and_the_message_in_80_columns(monkeypatch, capsys, argv, usage, says):
    monkeypatch.setenv("COLUMNS", "80")
    err = _refused(argv, capsys)
    lines = err.splitlines()
    assert lines[0].startswith(usage) and len(lines) <= 5
    assert all(len(line) <= 80 for line in lines)
    assert says in " ".join(err.split())


@pytest.mark.parametrize("under", ["proc", "file"])
def test_a_bad_cache_dir_from_the_environment_is_named_by_its_variable(tmp_path, capsys, monkeypatch, under):
    from afbench.cost import api

    monkeypatch.setattr(api, "profile", lambda *a, **k: pytest.fail("measured with a cache it cannot write"))
    (tmp_path / "a-file").write_text("in the way")
    cache = tmp_path / "a-file" / "cache" if under == "file" else "/proc/afbench-x"  # no one can make it
    if under == "proc" and not os.path.isdir("/proc/self"):
        pytest.skip("no /proc here")
    monkeypatch.setenv("AFBENCH_CACHE_DIR", str(cache))
    err = " ".join(_refused(["cost", "--activations", "relu", "--budget", "1", "--out", str(tmp_path / "c")],
                            capsys).split())
    assert f"AFBENCH_CACHE_DIR={cache}:" in err and "set AFBENCH_CACHE_DIR to a folder you may write to" in err


def _damaged_folder(tmp_path):
    """The fixture folder with the runs and epochs tables' pages overwritten: SQLite opens
    it, then says "database disk image is malformed" on the first read of a run."""
    folder = _fixture_folder(tmp_path, "damaged")
    path = folder / "results.sqlite"
    data = bytearray(path.read_bytes())
    for page in (2, 4):  # the root pages of runs and epochs (page_size 4096)
        data[(page - 1) * 4096:page * 4096] = b"\xff" * 4096
    path.write_bytes(data)
    return folder


@pytest.mark.parametrize("command", [
    ["report", "{damaged}"], ["merge", "{damaged}", "--out", "{tmp}/m"],
    ["export", "{damaged}", "--to", "tensorboard", "{tmp}/tb"],
    ["run", "--activations", "relu,tanh", "--epochs", "1", "--seeds", "1", "--train-subset", "200", "--out",
     "{damaged}", "--no-progress"]], ids=["report", "merge", "export", "run"])
def test_a_damaged_database_is_named_with_how_to_recover_it_not_the_disk(tmp_path, capsys, monkeypatch, command):
    from afbench import sweep

    monkeypatch.setattr(sweep, "execute", lambda *a, **k: pytest.fail("trained into a damaged database"))
    damaged = _damaged_folder(tmp_path)
    err = " ".join(_refused([a.format(damaged=damaged, tmp=tmp_path) for a in command], capsys).split())
    assert f"{damaged / 'results.sqlite'} is damaged (database disk image is malformed)" in err
    assert f"sqlite3 {damaged / 'results.sqlite'} .recover" in err and "move it away and rerun" in err
    assert "free the disk" not in err


def test_a_full_disk_is_still_told_to_free_space(tmp_path, capsys, monkeypatch):
    import sqlite3

    from afbench import cli

    def full(args):
        raise sqlite3.OperationalError("database or disk is full")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), "report", full))
    err = " ".join(_refused(["report", str(tmp_path)], capsys).split())
    assert "database or disk is full" in err and "free some space on its disk" in err


def _with_func(parser, command, func):
    parser._subparsers._group_actions[0].choices[command].set_defaults(func=func)
    return parser


@pytest.mark.parametrize("command", [["run", "--epochs", "1", "--out", "{tmp}/r", "--no-progress"],
                                     ["cost", "--budget", "1", "--out", "{tmp}/c"]])
def test_a_file_that_lacks_the_named_activation_lists_what_it_defines(tmp_path, capsys, command):
    (tmp_path / "emptyacts.py").write_text("")
    (tmp_path / "lackacts.py").write_text("import torch\n\nclass Swish2(torch.nn.Module):\n    def forward(self, x):\n"
                                           "        return x\n\ndef square(x):\n    return x * x\n")
    argv = [a.format(tmp=tmp_path) for a in command]
    err = " ".join(_refused(argv + ["--activations", f"relu,{tmp_path}/emptyacts.py:X"], capsys).split())
    assert f"{tmp_path / 'emptyacts.py'} was found but defines no 'X'" in err and "PYTHONPATH" not in err
    assert "defines no nn.Module class or function: define X there" in err
    err = " ".join(_refused(argv + ["--activations", f"relu,{tmp_path}/lackacts.py:X"], capsys).split())
    assert f"{tmp_path / 'lackacts.py'} was found but defines no 'X'" in err and "PYTHONPATH" not in err
    assert "nn.Module classes: Swish2; functions: square" in err


def test_a_study_that_is_a_folder_is_named_as_one_with_its_study_toml(tmp_path, capsys):
    plain, good = tmp_path / "plain", tmp_path / "good"
    plain.mkdir()
    good.mkdir()
    (good / "study.toml").write_text('name = "good"\n')
    err = " ".join(_refused(["run", "--study", str(plain), "--out", str(tmp_path / "r")], capsys).split())
    assert f"study file {plain} is a folder: --study needs a study file (.toml)" in err and "not found" not in err
    assert "afbench show preset quick" in err
    err = " ".join(_refused(["run", "--study", str(good), "--out", str(tmp_path / "r")], capsys).split())
    assert f"this folder holds one: --study {good / 'study.toml'}" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("one, several", [("--model", "--models"), ("--dataset", "--datasets")])
def test_one_and_several_of_the_same_grid_axis_are_refused_naming_the_conflict(tmp_path, capsys, one, several):
    values = {"--model": ("mlp", "lenet,mlp"), "--dataset": ("digits", "digits,mnist")}[one]
    err = " ".join(_refused(["run", one, values[0], several, values[1], "--epochs", "1", "--out",
                             str(tmp_path / "r"), "--no-progress"], capsys).split())
    assert f"give {one} or {several}, not both" in err and f"{several} {values[1]} sweeps each" in err
    assert not (tmp_path / "r").exists()


def test_cost_refuses_a_baseline_not_among_the_activations_as_run_does(tmp_path, capsys, monkeypatch):
    from afbench.cost import api

    monkeypatch.setattr(api, "profile", lambda *a, **k: pytest.fail("measured a baseline not asked for"))
    err = " ".join(_refused(["cost", "--activations", "relu,tanh", "--baseline", "gelu", "--budget", "1", "--out",
                             str(tmp_path / "c")], capsys).split())
    assert "--baseline gelu is not among the activations (relu, tanh): add it or choose one of them" in err
    assert not (tmp_path / "c").exists()
    measured = []
    monkeypatch.setattr(api, "run_cost", lambda *a, **k: measured.append(k["baseline"]) or 1 / 0)
    with pytest.raises(ZeroDivisionError):  # accepted: the alias of one of them, and the default
        main(["cost", "--activations", "relu,tanh", "--baseline", "ReLU", "--out", str(tmp_path / "c")])
    with pytest.raises(ZeroDivisionError):
        main(["cost", "--activations", "gelu,tanh", "--out", str(tmp_path / "c")])
    assert measured == ["ReLU", "relu"]


@pytest.mark.parametrize("estimated, says", [(0.0, "cost profile: 0.3 s; the tables'"),
                                             (0.4, "cost profile: 0.3 s; the tables'"),
                                             (60.0, "cost profile: 0.3 s, 0.5% of the estimated 60.0 s of training")])
def test_the_cost_profile_note_gives_no_share_of_an_estimate_under_a_second(tmp_path, capsys, estimated, says):
    from afbench.cli.output import Output
    from afbench.cli.run import _note_cost_profile
    from afbench.store.database import Store

    store = Store(tmp_path)
    store.set_meta("cost_profile", {"seconds": 0.3, "share": 0.3 / estimated if estimated else 434.411,
                                    "estimated_training_s": estimated})
    store.close()
    _note_cost_profile(tmp_path, Output())
    err = " ".join(capsys.readouterr().err.split())
    assert says in err and ("%" in err) == (estimated >= 1)


def test_threads_beyond_the_cores_are_capped_even_with_nothing_to_do(monkeypatch):
    from afbench.cli.run import schedule_sentence
    from afbench.sweep import LocalBackend, Runtime
    from afbench.sweep.backends import local

    monkeypatch.setattr(local, "available_cores", lambda: 2)
    schedule = LocalBackend(Runtime(threads=500, workers=1)).plan([])  # every run already done
    assert schedule["workers"] * schedule["threads"] <= 2 and "capped to the 2 cores" in schedule["how"]
    assert schedule_sentence(schedule) == "1 worker x 2 threads (nothing to do; capped to the 2 cores)"


@pytest.mark.parametrize("flags, says", [
    (["--address", "auto"], "--address is for --backend ray, and this sweep uses the local backend"),
    (["--cpus-per-run", "2", "--max-retries", "1"], "--cpus-per-run, --max-retries are for --backend ray"),
    (["--max-seeds", "30"], "--max-seeds is for --seeds auto, and this sweep trains a fixed 2 seeds per activation"),
    (["--equivalence", "0.5"], "--equivalence is for --seeds auto"),
], ids=["address", "cpus-and-retries", "max-seeds", "equivalence"])
def test_flags_this_sweep_would_ignore_are_refused_naming_why(tmp_path, capsys, flags, says):
    err = " ".join(_refused(["run", "--activations", "relu,tanh", "--seeds", "2", "--epochs", "1", "--out",
                             str(tmp_path / "r"), "--no-progress", *flags], capsys).split())
    assert says in err and ("add --backend ray" in err or "add --seeds auto" in err) and "drop --" in err
    assert not (tmp_path / "r").exists()


def test_an_unknown_flag_is_reported_with_its_command_s_usage(capsys):
    from afbench.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["run", "--epoch", "3"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "usage: afbench run [options]" in err
    assert "afbench run: error: unrecognized arguments: --epoch 3" in err


def test_fixes_name_what_the_user_gave(tmp_path, capsys, monkeypatch):
    """The hostile-input review: three messages whose fix named the wrong thing."""
    import sqlite3

    from afbench.errors import AfbenchError
    from afbench.report.writers import files

    other = tmp_path / "other.sqlite"  # an input of merge, not its --out
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.close()
    err = " ".join(_refused(["merge", str(other), "--out", str(tmp_path / "m")], capsys).split())
    assert "not afbench results: give a folder that `afbench run` wrote" in err and "--out" not in err
    err = " ".join(_refused(["suite", "small", "--activations", "relu", "--baselines", "none", "--out",
                             str(tmp_path / "s")], capsys).split())
    assert "--activations holds only the suite's baseline (relu)" in err
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    with pytest.raises(AfbenchError, match="Permission denied while writing .*Restore write access"):
        files.write_all(tmp_path / "r", {"summary.md": b"x"})


@pytest.mark.parametrize("formula, said", [("where(x>0, x)", "where() with 2 arguments"),
                                           ("maximum(x)", "maximum() with 1 argument"),
                                           ("tanh(x, x)", "tanh() with 2 arguments")])
def test_a_formula_with_the_wrong_number_of_arguments_is_one_sentence(formula, said, capsys):
    err = " ".join(_refused(["run", "--activations", f"relu,{formula}", "--epochs", "1"], capsys).split())
    assert said in err and "where takes 3" in err
    assert "expected one of" not in err and " * (" not in err  # not torch's list of signatures


def test_nan_that_only_the_activation_makes_is_blamed_on_it(tmp_path, capsys):
    """The hostile-input review's case: relu with one NaN once the tensor is large (the
    activation's own probe is small). The model with relu is finite: the activation is named."""
    (tmp_path / "acts.py").write_text("import torch\n\ndef half_nan(x):\n    y = torch.relu(x)\n"
                                      "    if y.numel() > 1000:\n        y = y.clone()\n"
                                      "        y.view(-1)[0] = float('nan')\n    return y\n")
    err = " ".join(_refused(["run", "--activations", f"relu,{tmp_path}/acts.py:half_nan", "--epochs", "1",
                             "--train-subset", "200", "--out", str(tmp_path / "o")], capsys).split())
    assert "activation 'acts:half_nan'" in err and "the model with relu does not" in err
    assert "model 'mlp' (" not in err


def test_cost_caps_threads_to_the_cores_and_refuses_epochs_without_a_price(tmp_path, capsys, monkeypatch):
    """The hostile-input review: --threads 64 on 2 cores measured (and stored) the
    oversubscription; --epochs without --price-per-hour was silently ignored."""
    from afbench.cost import api
    from afbench.engine import runtime

    err = " ".join(_refused(["cost", "--activations", "relu", "--epochs", "3", "--out", str(tmp_path / "c")],
                            capsys).split())
    assert "--epochs prices that many epochs of training: give --price-per-hour too" in err
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    asked = []
    monkeypatch.setattr(api, "run_cost", lambda *a, **k: asked.append(k["threads"]) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["cost", "--activations", "relu", "--threads", "64", "--out", str(tmp_path / "c")])
    assert asked == [2] and "--threads 64 capped to the 2 cores" in capsys.readouterr().err


def test_softplus_with_its_beta_still_compiles():
    """softplus(x, beta) worked before the argument check; beta = 2 by hand."""
    import torch

    from afbench.activations.custom import compile_formula

    x = torch.tensor([-1.0, 0.0, 1.5])
    torch.testing.assert_close(compile_formula("softplus(x, 2)")(x), torch.log1p(torch.exp(2 * x)) / 2)


def test_one_activation_added_to_a_folder_does_not_become_its_baseline(tmp_path, capsys):
    """The trial's case: `run --activations gelu` into a folder of relu and tanh judged
    the whole folder against gelu. Without --baseline, the folder's (relu) stays."""
    out = tmp_path / "f"
    tiny = ["--epochs", "1", "--seeds", "2", "--train-subset", "200", "--out", str(out), "--no-progress", "--quiet"]
    assert main(["run", "--activations", "relu,tanh"] + tiny) == 0
    assert main(["run", "--activations", "gelu"] + tiny) == 0
    summary = (out / "summary.md").read_text()
    assert "against relu" in summary and "against gelu" not in summary


def test_tuning_notes_and_the_chosen_rates_cover_tuned_settings_only(tmp_path):
    from afbench.config import RunConfig
    from afbench.report import render
    from afbench.results import RunSummary, Status
    from afbench.store.database import Store

    store = Store(tmp_path)
    runs = [("relu", 0.01, 0.1), ("relu", 0.003, 0.1), ("tanh", 0.03, 0.1), ("tanh", 0.1, 0.1),  # disjoint grids
            ("relu", 0.05, 0.0), ("tanh", 0.05, 0.0)]  # an untuned setting beside them
    for activation, lr, valid in runs:
        for seed in range(3):
            run = RunConfig(activation=activation, seed=seed, lr=lr, valid_fraction=valid, device="cpu")
            store.claim(run)
            store.finish(run.key(), Status.DONE, RunSummary(params=1, epochs_run=1, total_train_s=1.0, error_rate=0.1,
                                                            accuracy=0.9, valid_acc=0.9 if valid else None), {})
    try:
        report = render.build(store, "relu")
    finally:
        store.close()
    assert set(report.lr_choices["setting"]) == {"mlp / digits, valid_fraction=0.1"}  # one rate is no choice
    text = " ".join(render.verdict_text(report))
    assert "no learning rate was run by every activation" in text


def test_several_learning_rates_say_they_hold_out_a_validation_split(tmp_path, capsys):
    assert main(["run", "--activations", "relu", "--lr", "0.01,0.003", "--epochs", "1", "--seeds", "1",
                 "--train-subset", "200", "--out", str(tmp_path / "v"), "--no-progress"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "2 learning rates: 10% of the training split is held out for validation" in err
