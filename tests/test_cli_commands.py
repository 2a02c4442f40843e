"""Every command as a user meets it: one validation for all of them, output that fits
and reads in a log, --quiet and --json, interrupts, and no footguns."""

import json
import contextlib
import os
import subprocess
import sys

import pytest

from afbench.cli import main
from afbench.errors import Interrupted

SRC = os.path.join(os.path.dirname(__file__), os.pardir, "src")


@pytest.fixture(autouse=True)
def log_terminal(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # off a terminal: 80 columns


@pytest.mark.parametrize("argv, words", [
    (["study", "init", "--depth", "0"], "--depth: expected a whole number >= 1, got '0'"),
    (["study", "init", "--width", "-5"], "--width: expected a whole number >= 1, got '-5'"),
    (["study", "init", "--threads", "-1"], "--threads: expected a whole number >= 1, got '-1'"),
    (["study", "init", "--inits", "he,bogus"], "each default, xavier, he, normal001 or zeros, got 'bogus'"),
    (["study", "norm", "--norms", "batch,tall"], "--norms: expected comma-separated normalisations"),
    (["cost", "--activations", "relu", "--out", "x", "--budget", "-5"], "--budget: expected a number > 0"),
    (["cost", "--activations", "relu", "--out", "x", "--batch-size", "0"], "--batch-size: expected a whole number"),
    (["plot", "activations", "relu", "--out", "fig.txt"], "--out: expected a figure file ending in .png"),
    (["run", "--image-size", "30000"], "--image-size: expected a whole number of pixels from 1 to 1024"),
    (["run", "--epoch", "3"], "unrecognized arguments: --epoch"),
    (["run", "--seed", "-1"], "--seed: expected a whole number >= 0"),
])
def test_every_command_refuses_bad_values_when_parsed(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert words in " ".join(captured.err.split()) and "Traceback" not in captured.err  # wrapped to 80


def _fake_execute(raised):
    def execute(*args, **kwargs):
        raise raised
    return execute


def test_ctrl_c_is_one_line_and_exit_128_plus_the_signal(tmp_path, capsys, monkeypatch):
    import afbench.sweep

    monkeypatch.setattr(afbench.sweep, "execute", _fake_execute(Interrupted(3, 12, 2)))
    assert main(["run", "--activations", "relu", "--epochs", "1", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "error: interrupted: 3 of 12 runs saved; rerun the same command to resume" in err
    assert "Traceback" not in err
    monkeypatch.setattr(afbench.sweep, "execute", _fake_execute(Interrupted(0, 4, 15)))
    assert main(["run", "--activations", "relu", "--epochs", "1", "--out", str(tmp_path)]) == 143  # SIGTERM


def test_a_long_request_says_so_and_repeats_are_one_note(tmp_path, capsys, monkeypatch):
    import afbench.sweep

    monkeypatch.setattr(afbench.sweep, "execute", _fake_execute(Interrupted(0, 1)))
    names = ",".join(["relu"] * 2000)
    assert main(["run", "--activations", names, "--epochs", "100000", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert "1999 repeated activations dropped" in err and len(notes) <= 3
    # digits: 1,437 images / 128 a batch = 12 steps an epoch; 100,000 epochs x 12 x 2 ms = 0.67 h a run at least
    assert main(["run", "--activations", "relu", "--seeds", "2", "--epochs", "100000", "--out", str(tmp_path)]) == 130
    assert "for at least 1.3 hours" in capsys.readouterr().err


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """One small sweep as `afbench run > log 2>&1` sees it: (out folder, argv, stdout, stderr)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("logged")
    argv = ["run", "--activations", "relu,x * sigmoid(1.5 * x) + 0.0001 * x", "--seeds", "2", "--epochs", "1",
            "--latency-samples", "5", "--workers", "1", "--stack", "1", "--out", str(out)]
    stdout, stderr = io.StringIO(), io.StringIO()
    columns = os.environ.pop("COLUMNS", None)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            assert main(argv) == 0
    finally:
        if columns is not None:
            os.environ["COLUMNS"] = columns
    return out, argv, stdout.getvalue(), stderr.getvalue()


def test_a_log_gets_plain_lines_and_a_table_in_80_columns(logged_run):
    _, _, out, err = logged_run
    for text in (out, err):
        assert "\r" not in text and "\x1b" not in text  # no bars, no escape codes
    assert "[4/4] " in err and "runs ->" in err and "ran 4" in err  # a line per finished run, on stderr
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    row = next(line for line in lines if line.startswith("relu "))
    assert "17,226" in row and " ± " in row  # the parameter count and the spread on one line
    assert "a1 = x * sigmoid(1.5 * x) + 0.0001 * x" in out  # a long name is spelled out, never split


def test_json_then_quiet(logged_run, capsys):
    _, argv, _, _ = logged_run
    assert main(argv + ["--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # stdout holds the JSON and nothing else
    assert summary["exit_status"] == 0 and summary["counts"]["skipped"] == 4 and summary["runs"] == 4
    assert [v["activation"] for v in summary["verdicts"]] == ["x * sigmoid(1.5 * x) + 0.0001 * x"]
    assert [v["setting"] for v in summary["verdicts"]] == ["mlp / digits"]  # which setting, where a folder has several
    assert summary["paths"]["html"].endswith("report.html")
    assert main(argv + ["--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.startswith("verdict:") and "report:" in captured.out


def test_report_wide_is_markdown_without_empty_columns(logged_run, capsys):
    out, _, _, _ = logged_run
    assert main(["report", str(out), "--wide"]) == 0
    wide = capsys.readouterr().out
    assert wide.splitlines()[0].startswith("| dataset | model | activation") and "not reached" not in wide


def test_progress_bars_only_on_a_terminal(monkeypatch):
    from afbench.cli import output

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert output.progress_bars(no_progress=False)
    assert not output.progress_bars(no_progress=True)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not output.progress_bars(no_progress=False)
    monkeypatch.delenv("TQDM_DISABLE")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert not output.progress_bars(no_progress=False)


def test_no_color_and_a_log_get_plain_errors(monkeypatch, capsys):
    from afbench.cli import output

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    output.error("a [bold]name[/bold] with [/x] markup")
    assert capsys.readouterr().err == "error: a [bold]name[/bold] with [/x] markup\n"


def test_scheduler_decisions_read_as_a_sentence():
    from afbench.cli.run import schedule_sentence

    text = schedule_sentence({"workers": 2, "threads": 1, "how": "calibrated", "stack": 8, "stack_how": "calibrated",
                              "stack_gain": 3.14})
    assert text == "2 workers x 1 thread (calibrated), up to 8 seeds stacked per model: calibrated, 3.1x faster " \
                   "than one at a time"
    assert "{" not in schedule_sentence({"workers": 1, "threads": 2, "stack_how": "cannot stack layer '2' (Tanh)"})
    assert schedule_sentence({"workers": 2, "threads": 1, "how": "calibrated", "stack": 1, "stack_how": "calibrated",
                              "stack_gain": 1.04}) == \
        "2 workers x 1 thread (calibrated); no runs stacked (calibrated: stacking measured 1.04x)"


def _python(*args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.path.abspath(SRC), **env})


def test_python_m_afbench_and_help_without_torch():
    done = _python("-X", "importtime", "-m", "afbench", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: afbench")
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "afbench.cli" in imported and "torch" not in imported and "rich" not in imported
    assert "95%%" not in _python("-m", "afbench", "cost", "--help").stdout


def test_the_exit_status_leaves_the_process_as_main_returns_it(tmp_path):
    # entry() freezes the garbage collector before exiting: the status and the flushed
    # output still leave the process.
    done = _python("-m", "afbench", "report", str(tmp_path / "nothing"))
    assert done.returncode == 2 and "no results.sqlite" in done.stderr and "Traceback" not in done.stderr
    # status 0 through entry(): test_python_m_afbench_and_help_without_torch


def test_activations_from_a_file_in_the_current_folder(tmp_path, monkeypatch):
    from afbench.cli.run import import_path

    (tmp_path / "myacts.py").write_text("import torch\nclass Squareplus(torch.nn.Module):\n"
                                        "    def forward(self, x):\n        return (x + (x * x + 4).sqrt()) / 2\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    assert import_path("myacts.py:Squareplus") == "myacts:Squareplus"
    assert str(tmp_path) in sys.path and str(tmp_path) in os.environ["PYTHONPATH"]
    from afbench import activations

    module = activations.factory("myacts:Squareplus")()
    import torch

    assert float(module(torch.tensor([0.0]))) == pytest.approx(1.0)  # (0 + sqrt(4)) / 2


def test_run_lines_count_only_the_runs_this_command_trains(tmp_path):
    # A suite merges hundreds of stored runs in; a folder may hold an earlier sweep's runs:
    # neither is news, and the count must read k of the runs being trained.
    import shutil
    from pathlib import Path

    from afbench.cli.output import RunLines
    from afbench.store.reading import StoreView

    shutil.copy(Path(__file__).parent / "fixtures" / "results-v0.2.0.sqlite", tmp_path / "results.sqlite")
    with StoreView(tmp_path) as view:
        finished = [r for r in view.runs() if r["status"] == "done"]
    ours = {finished[0]["key"], finished[1]["key"]}
    said: list[str] = []
    lines = RunLines(tmp_path, len(ours), said.append, keys=ours)
    lines._report(lines._finished())
    assert len(said) == 2 and said[0].startswith("[1/2] ") and said[1].startswith("[2/2] ")
    everything: list[str] = []
    RunLines(tmp_path, None, everything.append)._report(RunLines(tmp_path, None, None)._finished())
    assert len(everything) == len(finished) > 2


def test_every_help_and_the_suite_list_fit_80_columns(monkeypatch, capsys):
    import pytest

    monkeypatch.setenv("COLUMNS", "80")
    for command in (["suite"], ["run"], ["cost"], ["report"], ["merge"], ["export"], ["list", "suites"]):
        with pytest.raises(SystemExit) if command != ["list", "suites"] else contextlib.nullcontext():
            main(command + (["--help"] if command != ["list", "suites"] else []))
        wide = [line for line in capsys.readouterr().out.splitlines() if len(line) > 80]
        assert not wide, (command, wide)
