"""Whiskers and bands end where the metric ends: no error rate below 0 or above 100%."""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from afbench.report import figures  # noqa: E402


def _point(activation, error_mean, error_ci95):
    return {"activation": activation, "step_ratio": 1.0, "step_ratio_low": 0.9, "step_ratio_high": 1.1,
            "saved_bytes_per_sample": 2048.0, "error_mean": error_mean, "error_ci95": error_ci95}


def _whisker_ends(ax) -> list[tuple[float, float]]:
    """(low, high) of every vertical error bar drawn on ``ax``."""
    ends = []
    for container in ax.containers:
        for collection in container.lines[2]:
            for segment in collection.get_segments():
                xs, ys = np.asarray(segment).T
                if xs[0] == xs[1]:  # vertical: the error's
                    ends.append((float(ys.min()), float(ys.max())))
    return ends


def test_error_whiskers_of_the_cost_figure_stop_at_0_and_100_percent():
    points = pd.DataFrame([_point("relu", 1.0, 3.0), _point("tanh", 98.0, 5.0), _point("elu", 50.0, 2.0)])
    fig = figures.plot_error_vs_cost(points, "t")
    for ax in fig.axes:
        assert sorted(_whisker_ends(ax)) == [(0.0, 4.0), (48.0, 52.0), (93.0, 100.0)]
    unbounded = figures.plot_error_vs_cost(points, "t", "test psnr (dB)", bounds=None)  # a workload's metric
    assert sorted(_whisker_ends(unbounded.axes[0])) == [(-2.0, 4.0), (48.0, 52.0), (93.0, 103.0)]


def test_the_sd_band_of_an_error_curve_stays_under_100_percent():
    epochs = pd.DataFrame({"activation": ["relu"] * 4, "epoch": [1, 1, 2, 2], "test_acc": [10.0, 99.0, 5.0, 95.0]})
    fig = figures.plot_curves(epochs, "test_acc", "t", log=True, ceiling=100.0)
    band = fig.axes[0].collections[0]
    ys = np.concatenate([path.vertices[:, 1] for path in band.get_paths()])
    assert ys.max() == 100.0  # mean 54.5 + sd 62.9 would reach 117
    assert ys.min() > 0


def test_a_workload_metric_is_labelled_with_the_unit_its_workload_registers():
    from afbench.report import tables

    runs = pd.DataFrame({"config.workload": ["inr", "charlm", "regression"],
                         "primary_metric": ["psnr", "bpc", "mse"]})
    assert tables.metric_label("psnr", runs) == "psnr (dB)"
    assert tables.metric_label("bpc", runs) == "bpc"  # bits per character: the name is the unit
    assert tables.metric_label("mse", runs) == "mse"
