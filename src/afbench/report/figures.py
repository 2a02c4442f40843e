"""Figures: activation shapes, training curves, bars and diagnostics.

Every function takes plain data (names, DataFrames) and returns a matplotlib
Figure; callers decide where it goes (a PNG, or base64 inside report.html).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: afbench never opens a window
# A report builds all its figures (30 or more) before rendering and closing them.
matplotlib.rcParams["figure.max_open_warning"] = 0
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from afbench import activations  # noqa: E402
from afbench.report.model import BETTER, WORSE, display  # noqa: E402
from afbench.stats.sequential import judged_interval  # noqa: E402

# Even count: the grid holds no exact 0 or +-3, where piecewise derivatives have kinks.
_X = torch.linspace(-3, 3, 600, dtype=torch.float64)


def plain(text: object) -> str:
    """``text`` drawn as it reads: a name holding '$' ('$\\notacommand{x}$' as a class
    folder) is not parsed as mathtext (which fails or draws something else), and
    bytes that are not UTF-8 are shown escaped (set_text refuses lone surrogates)."""
    return display(text).replace("$", r"\$")


def _integer_epochs(ax) -> None:
    """Epochs are whole numbers: no 1.0, 1.2, ... 2.0 ticks on a 2-epoch run."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _legend_outside(ax, **kwargs) -> None:
    """The legend right of the axes, where it cannot cover a line."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, **kwargs)


def _log_axis(ax) -> None:
    """A log y axis labelled in plain numbers (2, 5, 10, 20), not 2x10^0."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def activation_curves(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """f(x), the closed-form f'(x) and its largest deviation from autograd on [-3, 3].
    A formula or a user's activation has no closed form: f' is autograd's, deviation 0."""
    spec = _spec(name)
    module = (activations.create(spec.name) if spec else activations.factory(name)()).eval().double()
    x = _X.clone().requires_grad_(True)
    y = module(x)
    y.sum().backward()
    if spec is None:
        return _X.numpy(), y.detach().numpy(), x.grad.numpy(), 0.0
    closed = spec.derivative(_X)
    deviation = float((closed - x.grad).abs().max())
    return _X.numpy(), y.detach().numpy(), closed.numpy(), deviation


def _spec(name: str):
    """The registry's entry for ``name``, or None for a formula or PATH.py:NAME."""
    try:
        return activations.info(name)
    except KeyError:
        return None


def plot_activations(names: Sequence[str]) -> plt.Figure:
    """One panel pair per activation: f on the left, f' on the right."""
    specs = {n: _spec(n) for n in names}
    elementwise = [spec.name if spec else n for n, spec in specs.items() if spec is None or spec.elementwise]
    skipped = [n for n, spec in specs.items() if spec is not None and not spec.elementwise]
    if skipped:
        warnings.warn(f"not drawn, not elementwise functions: {', '.join(skipped)}", stacklevel=2)
    if not elementwise:
        raise ValueError("nothing to plot: give at least one elementwise activation")
    fig, axes = plt.subplots(len(elementwise), 2, figsize=(7, 2.2 * len(elementwise)), squeeze=False)
    for row, name in zip(axes, elementwise):
        x, y, dy, deviation = activation_curves(name)
        if deviation > 1e-6:
            raise AssertionError(f"{name}: closed-form derivative deviates from autograd by {deviation:.2e}")
        row[0].plot(x, y, color="C0")
        row[0].set_title(plain(f"{name}: f(x)"), fontsize=9)
        row[1].plot(x, dy, color="C1")
        row[1].set_title(plain(f"{name}: f'(x) " + ("(closed form, = autograd)" if _spec(name) else "(autograd)")),
                         fontsize=9)
        for ax in row:
            ax.axhline(0, color="0.7", lw=0.6)
            ax.axvline(0, color="0.7", lw=0.6)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _band(ax, frame: pd.DataFrame, x: str, y: str, label: str, color, floor: float | None = None,
          ceiling: float | None = None) -> None:
    """Mean over seeds with a +-1 sd band; ``floor`` keeps the band above 0 on a log axis,
    ``ceiling`` below what the metric can reach (100% error, a fraction's 1)."""
    stats = frame.groupby(x)[y].agg(["mean", "std"]).reset_index()
    mean = stats["mean"] if floor is None else stats["mean"].clip(lower=floor)
    ax.plot(stats[x], mean, label=plain(label), color=color, marker="o" if len(stats) < 12 else None, ms=3)
    if stats["std"].notna().any():
        low, high = stats["mean"] - stats["std"].fillna(0), stats["mean"] + stats["std"].fillna(0)
        ax.fill_between(stats[x], low.clip(lower=floor, upper=ceiling), high.clip(lower=floor, upper=ceiling),
                        color=color, alpha=0.15, lw=0)


def within(mean: float, half: float, bounds: tuple[float, float] | None) -> list[list[float]] | float:
    """The whiskers of mean +- half, cut where the metric ends (an error rate's 0 and
    100%): matplotlib's asymmetric [[below], [above]], or ``half`` without bounds."""
    if bounds is None:
        return half
    low, high = bounds
    return [[mean - max(mean - half, low)], [min(mean + half, high) - mean]]


def plot_curves(epochs: pd.DataFrame, metric: str, title: str, ylabel: str | None = None,
                log: bool = False, ceiling: float | None = None) -> plt.Figure:
    """Per-epoch ``metric`` per activation, mean over seeds with a sd band. ``log``: a
    log y axis, so that curves a few tenths apart near the end stay apart when one
    activation starts far above the rest. The legend sits beside the axes, never on a
    line; epochs are whole-number ticks."""
    fig, ax = plt.subplots(figsize=(7.5, 4), layout="constrained")
    values = epochs
    floor = None
    if log:
        positive = values[metric][values[metric] > 0]
        floor = float(positive.min()) / 2 if len(positive) else 1e-3  # a 0 error would fall off a log axis
    for i, (name, frame) in enumerate(values.groupby("activation", sort=False)):
        _band(ax, frame, "epoch", metric, name, f"C{i % 10}", floor, ceiling)
    if log:
        _log_axis(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel(plain(ylabel or metric.replace("_", " ")))
    ax.set_title(plain(title), fontsize=10)
    ax.grid(alpha=0.3, which="both")
    _integer_epochs(ax)
    _legend_outside(ax)
    return fig


_VERDICT_COLOURS = {"worse": "C3", "better": "C2", "equivalent": "0.45", "undecided": "black"}
_VERDICT_WORDS = {"worse": f"{WORSE} red: significantly worse", "better": f"{BETTER} green: significantly better",
                  "equivalent": "grey: practically equivalent", "undecided": "black: undecided"}


def plot_forest(tests: pd.DataFrame, baseline: str, equivalence: float, title: str) -> plt.Figure:
    """The main result: each activation's mean paired difference in test error from the
    baseline (percentage points) with its confidence interval, one row per activation,
    marked as in the tables (WORSE / BETTER where the Holm-corrected paired test says
    so). The baseline is the vertical line at 0; the grey band is the practical-
    equivalence margin. Rows run from the lowest difference (best) at the top."""
    rows = tests.sort_values("mean_diff", ascending=False).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.5, 1.4 + 0.38 * len(rows)), layout="constrained")
    margin = 100 * equivalence
    ax.axvspan(-margin, margin, color="0.88", lw=0, label=f"within ±{margin:.2g} pp (equivalent)")
    ax.axvline(0, color="0.3", lw=1)
    ax.annotate(plain(baseline), (0, 1), xycoords=("data", "axes fraction"), xytext=(3, -2),
                textcoords="offset points", ha="left", va="top", fontsize=8, color="0.3")
    looked = False
    for y, t in rows.iterrows():
        colour = _VERDICT_COLOURS.get(str(t["verdict"]), "black")
        low, high, _, at_look = judged_interval(t)
        looked |= at_look
        low, mean, high = 100 * low, 100 * t["mean_diff"], 100 * high
        ax.plot([low, high], [y, y], color=colour, lw=2, solid_capstyle="butt")
        ax.plot([mean], [y], "o", color=colour, ms=6)
    marks = {"worse": f" {WORSE}", "better": f" {BETTER}"}
    labels = [plain(f"{t['activation']}{marks.get(str(t['verdict']), '')}") for _, t in rows.iterrows()]
    ax.set_yticks(range(len(rows)), labels, fontsize=9)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    confidence = 100 * float(rows["confidence"].iloc[0]) if "confidence" in rows and len(rows) else 95
    interval = "the interval each --seeds auto look decided on" if looked else f"{confidence:.4g}% CI"
    ax.set_xlabel(plain(f"test error minus {baseline}'s, percentage points (mean over paired seeds, "
                        f"{interval})"), fontsize=9)
    fig.suptitle(plain(title), fontsize=11)
    present = [v for v in _VERDICT_WORDS if v in set(rows["verdict"].astype(str))]
    ax.set_title(plain("; ".join(_VERDICT_WORDS[v] for v in present)), fontsize=8, color="0.3")
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_bars(table: pd.DataFrame, column: str, title: str, ylabel: str, floor: float | None = None) -> plt.Figure:
    """Bars of ``{column}_mean`` per activation with 95% confidence intervals."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    means = table[f"{column}_mean"]
    half = table.get(f"{column}_ci95", pd.Series(0.0, index=table.index)).fillna(0.0)
    ax.bar([plain(n) for n in table.index.astype(str)], means, yerr=half, capsize=3, color="C0", alpha=0.8)
    ax.set_ylabel(plain(ylabel))
    if floor is not None:  # e.g. 0 for times: a CI of few seeds may reach below what can be
        ax.set_ylim(bottom=floor)
    ax.set_title(plain(title), fontsize=10)
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_class_histogram(counts: dict[str, Sequence[int]], class_names: Sequence[str]) -> plt.Figure:
    """Samples per class for each split, as S2 shows."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    width = 0.8 / max(len(counts), 1)
    positions = np.arange(len(class_names))
    for i, (split, values) in enumerate(counts.items()):
        ax.bar(positions + i * width, values, width=width, label=plain(split))
    ax.set_xticks(positions + width * (len(counts) - 1) / 2, [plain(c) for c in class_names], rotation=45,
                  fontsize=8)
    ax.set_ylabel("samples")
    ax.set_title("samples per class")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_critical_difference(ranks: dict) -> plt.Figure:
    """Demsar's diagram: activations on the average-rank axis (1 = best), the
    Nemenyi critical difference as a bar, and a line joining each group of
    activations whose ranks differ by less than it (not significantly different)."""
    average = ranks["average_ranks"]  # name -> rank, best first
    names, values = list(average), list(average.values())
    k, cd = ranks["k"], ranks["cd"]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.3 * len(names)))
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-len(names) - 1, 2)
    ax.hlines(0, 1, k, color="black")
    for r in range(1, k + 1):
        ax.vlines(r, -0.1, 0.1, color="black")
        ax.text(r, 0.3, str(r), ha="center", fontsize=8)
    if cd == cd:  # not NaN
        ax.hlines(1.3, 1, 1 + cd, color="C3", lw=2)
        ax.text(1 + cd / 2, 1.5, f"CD = {cd:.2f}", ha="center", fontsize=8, color="C3")
    for i, (name, value) in enumerate(zip(names, values)):
        y = -(i + 1)
        ax.plot([value, value], [0, y], color="0.5", lw=0.8)
        ax.text(value + 0.05, y, plain(f"{name} ({value:.2f})"), va="center", fontsize=8)
    if cd == cd:
        for i, start in enumerate(values):
            group = [v for v in values[i:] if v - start < cd]
            if len(group) > 1:
                ax.hlines(-0.4 - 0.15 * i, start, group[-1], color="C0", lw=3, alpha=0.7)
    ax.axis("off")
    fig.tight_layout()
    return fig


def plot_layer_heatmaps(epochs: pd.DataFrame, metric: str, title: str) -> plt.Figure:
    """``metric`` as one heatmap: a row per activation and hidden layer, a column per
    epoch, averaged over seeds. One axes, so it stays cheap to draw for 24 activations."""
    layer_columns = sorted((c for c in epochs.columns if c.startswith(f"{metric}_layer")),
                           key=lambda c: int(c.rsplit("layer", 1)[1]))
    names = list(dict.fromkeys(epochs["activation"]))
    means = epochs.groupby(["activation", "epoch"])[layer_columns].mean()
    blocks = [means.loc[name].to_numpy(dtype=float).T for name in names]  # each (layers, epochs)
    width = max(block.shape[1] for block in blocks)
    grid = np.vstack([np.pad(b, ((0, 0), (0, width - b.shape[1])), constant_values=np.nan) for b in blocks])
    labels = [plain(f"{name} L{layer + 1}") for name, block in zip(names, blocks) for layer in range(block.shape[0])]
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.16 * len(labels)))
    image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis",
                      extent=(0.5, width + 0.5, len(labels) - 0.5, -0.5))
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xticks(range(1, width + 1, max(1, width // 10)))
    ax.set_xlabel("epoch")
    row = -0.5
    for block in blocks[:-1]:  # separate the activations
        row += block.shape[0]
        ax.axhline(row, color="white", lw=1)
    ax.set_title(plain(title), fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def plot_init_histograms(samples: dict, activation: str, inits: Sequence[str], kind: str,
                         value_range: tuple[float, float]) -> plt.Figure:
    """Lecture S5's figure: rows = initialisations, columns = hidden layers, each a
    histogram of that layer's activations (kind 'acts') or weight gradients ('grads')."""
    layers = len(samples[(activation, inits[0])][kind])
    fig, axes = plt.subplots(len(inits), layers, figsize=(1.6 * layers, 1.5 * len(inits) + 0.6), squeeze=False,
                             sharex=True)
    for row, init in zip(axes, inits):
        for layer, ax in enumerate(row):
            values = samples[(activation, init)][kind][layer]
            ax.hist(np.clip(values, *value_range), bins=40, range=value_range, color="C0" if kind == "acts" else "C3")
            ax.set_yticks([])
            ax.tick_params(labelsize=6)
            if layer == 0:
                ax.set_ylabel(plain(init), fontsize=8)
            if init == inits[0]:
                ax.set_title(f"layer {layer + 1}", fontsize=8)
    what = "activations at initialisation" if kind == "acts" else "weight gradients after one backward pass"
    fig.suptitle(plain(f"{activation}: {what}"), fontsize=10)
    fig.tight_layout()
    return fig


def plot_init_std(layers: pd.DataFrame, column: str = "act_std") -> plt.Figure:
    """Per-layer standard deviation, one line per initialisation, one panel per activation."""
    names = list(dict.fromkeys(layers["activation"]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        for i, (init, frame) in enumerate(layers[layers["activation"] == name].groupby("init", sort=False)):
            ax.plot(frame["layer"], frame[column].clip(lower=1e-12), marker="o", ms=3, label=plain(init),
                    color=f"C{i}")
        ax.set_yscale("log")
        ax.set_title(plain(name), fontsize=9)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(column.replace("_", " "))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_lr_sensitivity(runs: pd.DataFrame, metric: str = "accuracy") -> plt.Figure:
    """Mean ``metric`` (+- sd over seeds) against the learning rate, per activation."""
    fig, ax = plt.subplots(figsize=(7.5, 4), layout="constrained")
    for i, (name, frame) in enumerate(runs.groupby("activation", sort=False)):
        stats = frame.groupby("lr")[metric].agg(["mean", "std"]).reset_index()
        ax.errorbar(stats["lr"], stats["mean"], yerr=stats["std"].fillna(0), marker="o", ms=4, capsize=3,
                    label=plain(name), color=f"C{i % 10}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} against learning rate", fontsize=10)
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    return fig


def plot_performance_profile(profile: pd.DataFrame) -> plt.Figure:
    """Dolan-Moré performance profiles: for each activation, the fraction of settings
    (y) where its error is within a factor tau (x) of the best activation's."""
    fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    for name in profile.columns:
        ax.step(profile.index, profile[name], where="post", label=plain(name))
    ax.set_xlabel("tau (error / best error in the setting)")
    ax.set_ylabel("fraction of settings")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("performance profiles (Dolan and Moré 2002)", fontsize=10)
    _legend_outside(ax)
    return fig


def plot_learned_curves(curves: list[dict], title: str) -> plt.Figure:
    """One panel per layer of a learnable activation: its initial curve dashed, the
    learned one solid (the median over channels, with the 10-90% band when per channel)."""
    fig, axes = plt.subplots(1, len(curves), figsize=(2.8 * len(curves), 2.6), squeeze=False)
    for ax, curve in zip(axes[0], curves):
        x = np.asarray(curve["x"])
        if curve.get("initial") is not None:
            ax.plot(x, curve["initial"], "--", color="0.5", lw=1, label="initial")
        ax.plot(x, curve["y"], color="C0", lw=1.5, label="learned")
        if curve["low"] != curve["high"]:
            ax.fill_between(x, curve["low"], curve["high"], color="C0", alpha=0.2, lw=0)
        ax.set_title(plain(curve["layer"]), fontsize=8)
        ax.axhline(0, color="0.8", lw=0.5)
        ax.axvline(0, color="0.8", lw=0.5)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(plain(title), fontsize=9)
    fig.tight_layout()
    return fig


def plot_error_vs_cost(points: pd.DataFrame, title: str, ylabel: str = "test error (%)",
                       bounds: tuple[float, float] | None = (0.0, 100.0)) -> plt.Figure:
    """Accuracy against cost, one point per activation: test error (mean, 95% CI over
    seeds, cut to ``bounds``) against the step-time ratio to the baseline (its 95% CI)
    and against the bytes saved for backward per sample. The lower-left points are the
    Pareto front."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for _, p in points.iterrows():
        xerr = [[p["step_ratio"] - p["step_ratio_low"]], [p["step_ratio_high"] - p["step_ratio"]]]
        yerr = None if pd.isna(p["error_ci95"]) else within(p["error_mean"], p["error_ci95"], bounds)
        axes[0].errorbar(p["step_ratio"], p["error_mean"], xerr=xerr, yerr=yerr, fmt="o", capsize=3)
        axes[0].annotate(plain(p["activation"]), (p["step_ratio"], p["error_mean"]), fontsize=7, xytext=(3, 3),
                         textcoords="offset points")
        axes[1].errorbar(p["saved_bytes_per_sample"] / 1024, p["error_mean"], yerr=yerr, fmt="o", capsize=3)
        axes[1].annotate(plain(p["activation"]), (p["saved_bytes_per_sample"] / 1024, p["error_mean"]), fontsize=7,
                         xytext=(3, 3), textcoords="offset points")
    axes[0].set_xlabel("training step time / baseline's (95% CI)")
    axes[1].set_xlabel("KiB saved for backward per sample")
    for ax in axes:
        ax.set_ylabel(plain(ylabel))
        ax.grid(alpha=0.3)
    fig.suptitle(plain(title), fontsize=10)
    fig.tight_layout()
    return fig
