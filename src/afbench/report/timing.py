"""Time columns a reader can trust.

A run's own wall clock measures the schedule and the neighbours as much as the
activation: threads, stacking, other processes and the machine's day all move it.
When the results database holds a cost profile (``afbench cost``, or the one a
sweep measures at its start: interleaved rounds on this machine), the tables take
their times from it instead: optimizer steps x the measured step time of that
activation, with the 95% CI of its ratio to the baseline's step time. Raw wall
clock stays in runs.csv (``wall_train_s``) and is compared only between runs that
trained alike (same threads, stack size, compile flag, one run at a time).
"""

from __future__ import annotations

import pandas as pd

from afbench.stats import paired as stats
from afbench.store import cost as cost_store

COST_COLUMNS = ["model", "activation", "device", "threads", "step_ms", "step_ratio", "step_ratio_low",
                "step_ratio_high"]
# Times from the cost profile: (heading, lower is better, format)
COST_TIMES = {
    "cost_epoch_s": ("epoch (s, steps x step time)", True, "{:.3g}"),
    "cost_train_s": ("train (s, steps x step time)", True, "{:.3g}"),
    "cost_target_s": ("to target (s, steps x step time)", True, "{:.3g}"),
}


def load_cost(store) -> pd.DataFrame:
    """The cost table of a results database (a Store, a StoreView or an open connection),
    or an empty frame when it has none."""
    frame = pd.DataFrame(cost_store.all_rows(store))
    if frame.empty:
        return pd.DataFrame(columns=COST_COLUMNS)
    missing = [c for c in COST_COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"the cost table lacks the columns {missing}")
    return frame


def wall_clock_caveat(runs: pd.DataFrame) -> str | None:
    """None when every finished run trained alike, so raw wall clocks compare; else why not."""
    done = runs[runs["status"] == "done"]
    reasons = []
    for column, what in (("provenance.threads", "threads"), ("provenance.stack_size", "stack sizes"),
                         ("provenance.compiled", "compile settings")):
        if column in done and done[column].nunique(dropna=False) > 1:
            reasons.append(f"runs used different {what}")
    if "provenance.concurrent_runs" in done and (done["provenance.concurrent_runs"].fillna(1) > 1).any():
        reasons.append("runs trained beside other runs")
    if "provenance.stack_size" in done and (done["provenance.stack_size"].fillna(1) > 1).any():
        reasons.append("stacked runs share one clock")
    return "; ".join(reasons) or None


def _match(cost: pd.DataFrame, model: str, activation: str, device: str, threads, dataset: str,
           batch_size=None) -> pd.Series | None:
    """The latest cost row of exactly this setting: a row of the same model on another data set
    (other input shape, other step time) or batch size never stands in (issue 29)."""
    if "dataset" not in cost:
        return None
    rows = cost[(cost["model"] == model) & (cost["activation"] == activation) & (cost["device"] == device)
                & (cost["dataset"] == dataset)]
    if batch_size is not None and "batch_size" in cost:
        rows = rows[rows["batch_size"] == batch_size]
    if threads is not None and len(rows):
        same = rows[rows["threads"] == threads]
        rows = same if len(same) else rows.iloc[0:0]
    return rows.iloc[-1] if len(rows) else None


def cost_times(aggregate: pd.DataFrame, runs: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    """``aggregate`` with cost-based times: per activation, epoch, training and time-to-
    target seconds as optimizer steps x its measured step time, each with the 95% CI
    that the step-time ratio's CI gives. Activations without a profile measured under
    the runs' device and threads keep NaN there."""
    if aggregate.empty or cost.empty:
        return aggregate
    out = aggregate.copy()
    for column in COST_TIMES:
        for stat in ("mean", "low", "high", "sd"):
            out[f"{column}_{stat}"] = float("nan")
    done = runs[runs["status"] == "done"]
    for index, row in aggregate.iterrows():
        group = done[(done["dataset"] == row["dataset"]) & (done["model"] == row["model"])
                     & (done["activation"] == row["activation"])]
        if group.empty:
            continue
        device = str(group["config.device"].iloc[0]) if "config.device" in group else "cpu"
        threads = group["provenance.threads"].mode().iloc[0] if "provenance.threads" in group else None
        batch_size = group["config.batch_size"].iloc[0] if "config.batch_size" in group else None
        profile = _match(cost, row["model"], row["activation"], device, threads, row["dataset"], batch_size)
        if profile is None:
            continue
        step_s = profile["step_ms"] / 1000
        baseline_s = step_s / profile["step_ratio"]  # the CI is the ratio's: relative to the baseline's step
        low, high = baseline_s * profile["step_ratio_low"], baseline_s * profile["step_ratio_high"]
        steps = {"cost_epoch_s": group["train_steps"] / group["epochs_run"], "cost_train_s": group["train_steps"],
                 "cost_target_s": group["steps_to_target"].dropna()}
        for column, values in steps.items():
            if values.empty:
                continue
            described = stats.describe((values * step_s).tolist())
            out.loc[index, f"{column}_mean"] = described["mean"]
            out.loc[index, f"{column}_sd"] = described["sd"]
            out.loc[index, f"{column}_low"] = values.mean() * low
            out.loc[index, f"{column}_high"] = values.mean() * high
    return out


def cost_points(aggregate: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    """Per setting and activation: the error (mean, CI) beside the cost profile's step
    ratio and memory: the points of the accuracy-against-cost (Pareto) figure."""
    if cost.empty or aggregate.empty or "saved_bytes_per_sample" not in cost:
        return pd.DataFrame()
    if "dataset" not in cost:
        return pd.DataFrame()
    latest = cost.drop_duplicates(["dataset", "model", "activation", "device", "threads"], keep="last")
    points = aggregate.merge(latest, on=["dataset", "model", "activation"], how="inner", suffixes=("", "_cost"))
    return points.rename(columns={"error_rate_mean": "error_mean", "error_rate_ci95": "error_ci95"})


def cost_rows(points: pd.DataFrame) -> list[dict]:
    """The report's cost table: one row per activation of the profile."""
    return [{"setting": f"{p['model']}/{p['dataset']}", "activation": p["activation"],
             "step (ms)": f"{p['step_ms']:.3g}",
             "ratio [95% CI]": f"{p['step_ratio']:.3f} [{p['step_ratio_low']:.3f}, {p['step_ratio_high']:.3f}]",
             "saved B/sample": f"{p['saved_bytes_per_sample']:,.0f}", "threads": p["threads"],
             "error (%)": f"{p['error_mean']:.2f}"} for _, p in points.iterrows()]
