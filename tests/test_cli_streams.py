"""What the command prints around its results: the progress bar, warnings."""

import threading

import tqdm


def _monitors() -> int:
    return sum(type(t).__name__ == "TMonitor" for t in threading.enumerate())


def test_the_sweep_bar_starts_no_monitor_thread_and_tqdm_keeps_its_default():
    from afbench.sweep.backends import driver

    assert tqdm.tqdm.monitor_interval == 10  # tqdm's own default, untouched by importing afbench
    before = _monitors()
    bar = driver.ProgressBar(total=3, disable=False)
    bar.update()
    assert _monitors() == before
    bar.close()


def test_the_command_prints_a_librarys_warning_as_one_wrapped_note(monkeypatch, capsys):
    import warnings

    import pytest

    import afbench.cli as cli

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test

    def main():
        warnings.warn("Setuptools is replacing distutils. " + "A long third-party sentence. " * 8, UserWarning)
        return 0

    monkeypatch.setattr(cli, "main", main)
    monkeypatch.setattr(cli.gc, "freeze", lambda: None)  # not in the test process
    with pytest.raises(SystemExit) as stop:
        cli.entry()
    err = capsys.readouterr().err
    assert stop.value.code == 0 and err.startswith("warning: Setuptools is replacing distutils.")
    assert max(len(line) for line in err.splitlines()) <= 80 and "UserWarning" not in err and ".py:" not in err
