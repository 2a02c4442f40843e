"""The report's PNGs: drawn side by side in a forked child where a core is spare, with
the same bytes as drawn one by one, and nothing lost when the child fails."""

import os

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
    monkeypatch.setattr(pngs, "_spare_core", lambda: True)
    side_by_side = pngs.draw_pngs(chosen)
    monkeypatch.setattr(pngs, "_spare_core", lambda: False)
    one_by_one = pngs.draw_pngs(chosen)
    assert list(side_by_side) == [f"f{i}" for i in range(6)]  # the figures' order, not the processes'
    assert side_by_side == one_by_one
    assert all(image.startswith(b"\x89PNG") for image in side_by_side.values())
    assert len(set(side_by_side.values())) == 6  # each figure its own picture
    assert not plt.get_fignums()  # every figure closed after rendering


def test_a_child_that_fails_costs_nothing_but_time(monkeypatch):
    def only_here(i):
        if os.getpid() != PARENT:
            os._exit(3)  # a child killed mid-way: no message, no bytes
        return _line(i)

    monkeypatch.setattr(pngs, "_spare_core", lambda: True)
    images = pngs.draw_pngs(_figures(5, only_here))
    assert sorted(images) == [f"f{i}" for i in range(5)] and all(images.values())


def test_a_figure_that_cannot_be_drawn_raises_here_once(monkeypatch):
    def broken(i):
        if i == 3:
            raise ValueError("no data to draw")
        return _line(i)

    monkeypatch.setattr(pngs, "_spare_core", lambda: True)
    with pytest.raises(ValueError, match="no data to draw"):
        pngs.draw_pngs(_figures(5, broken))
