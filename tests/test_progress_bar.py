"""The sweep's progress bar starts no thread, and leaves other tqdm bars theirs."""

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
