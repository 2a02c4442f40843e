"""The report's PNGs: drawn side by side in a forked child where a core is spare, with
the same bytes as drawn one by one, and nothing lost when the child fails."""

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from afbench.report import pngs  # noqa: E402
from afbench.report.model import Figure  # noqa: E402

PARENT = os.getpid()


def _line(slope: float):
    figure, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0, slope, 2 * slope])
    ax.set_title(f"slope {slope}")
    return figure


def _figures(n: int, draw=_line) -> list[Figure]:
    return [Figure(f"f{i}", f"figure {i}", lambda i=i: draw(i)) for i in range(n)]


def test_side_by_side_gives_the_bytes_of_one_by_one(monkeypatch):
    chosen = _figures(6)
    open_before = len(plt.get_fignums())  # figures an earlier test left open are not this one's
    monkeypatch.setattr(pngs, "_spare_core", lambda: True)
    side_by_side = pngs.draw_pngs(chosen)
    monkeypatch.setattr(pngs, "_spare_core", lambda: False)
    one_by_one = pngs.draw_pngs(chosen)
    assert list(side_by_side) == [f"f{i}" for i in range(6)]  # the figures' order, not the processes'
    assert side_by_side == one_by_one
    assert all(image.startswith(b"\x89PNG") for image in side_by_side.values())
    assert len(set(side_by_side.values())) == 6  # each figure its own picture
    assert len(plt.get_fignums()) == open_before  # every figure closed after rendering


def test_a_child_that_fails_costs_nothing_but_time(monkeypatch):
    def only_here(i):
        if os.getpid() != PARENT:
            os._exit(3)  # a child killed mid-way: no message, no bytes
        return _line(i)

    monkeypatch.setattr(pngs, "_spare_core", lambda: True)
    images = pngs.draw_pngs(_figures(5, only_here))
    assert sorted(images) == [f"f{i}" for i in range(5)] and all(images.values())


def test_a_child_that_stalls_is_given_up_and_its_share_drawn_here(monkeypatch):
    def stalls_there(i):
        if os.getpid() != PARENT:
            time.sleep(3600)  # as a child stuck on a lock it copied from its parent
        return _line(i)

    monkeypatch.setattr(pngs, "_spare_core", lambda: True)
    monkeypatch.setattr(pngs, "GRACE_S", 0.5)
    start = time.perf_counter()
    images = pngs.draw_pngs(_figures(5, stalls_there))
    assert sorted(images) == [f"f{i}" for i in range(5)] and time.perf_counter() - start < 30


def test_no_fork_beside_another_thread():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not pngs._spare_core()
    finally:
        stop.set()
        other.join()


def test_a_figure_that_cannot_be_drawn_raises_here_once(monkeypatch):
    def broken(i):
        if i == 3:
            raise ValueError("no data to draw")
        return _line(i)

    monkeypatch.setattr(pngs, "_spare_core", lambda: True)
    with pytest.raises(ValueError, match="no data to draw"):
        pngs.draw_pngs(_figures(5, broken))


AFTER_TWO_THREADS = textwrap.dedent("""
    import torch
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from afbench.report import pngs
    from afbench.report.model import Figure
    pngs._spare_core = lambda: True
    torch.set_num_threads(2)
    x = torch.randn(1000, 1000)
    (x @ x).tanh_().sum()  # the parent's OpenMP team of two threads exists, as after a sweep's training
    def draw(i):
        y = torch.tanh(torch.linspace(-3, 3, 200_000)) * (torch.randn(300, 300) @ torch.randn(300, 300)).mean()
        figure, ax = plt.subplots()
        ax.plot(y[::1000].numpy())
        return figure
    print("drew", len(pngs.draw_pngs([Figure(f"f{i}", "", lambda i=i: draw(i)) for i in range(6)])))
""")


def test_figures_that_run_torch_draw_after_the_parent_trained_on_two_threads():
    # A report's activation curves run torch in the child; after a 2-thread sweep the
    # child hung in OpenMP (a forked libgomp team) until it draws at one thread.
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run([sys.executable, "-c", AFTER_TWO_THREADS], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(src)})
    assert done.returncode == 0 and done.stdout.strip() == "drew 6", done.stderr[-2000:]


def test_an_error_in_this_process_s_share_leaves_no_child_behind(monkeypatch):
    import multiprocessing

    def broken_here(i):
        if os.getpid() == PARENT and i == 2:
            raise ValueError("no data to draw")
        return _line(i)

    monkeypatch.setattr(pngs, "_spare_core", lambda: True)
    with pytest.raises(ValueError, match="no data to draw"):
        pngs.draw_pngs(_figures(6, broken_here))
    assert not multiprocessing.active_children()  # the child was killed and joined, not left drawing


def test_a_daemonic_process_draws_alone(monkeypatch):
    import multiprocessing

    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)
    assert not pngs._spare_core()
