"""Time columns a reader can trust.

A run's own wall clock measures the schedule and the neighbours as much as the
activation: threads, stacking, other processes and the machine's day all move it.
When the results database holds a cost profile (``afbench cost``, or the one a
sweep measures at its start: interleaved rounds on this machine), the tables take
their times from it instead: optimizer steps x the measured step time of that
activation: mean ± sd over seeds, and a 95% CI of the mean that carries both the
seed-to-seed spread of the steps and the step time's own uncertainty. Raw wall
clock stays in runs.csv (``wall_train_s``) and is compared only between runs that
trained alike (same threads, stack size, compile flag, one run at a time).

The same holds for batch-1 latency (ms/sample): a run times it after training while
other workers may still train beside it, so it carries their load too. Where a
profile matches, the table takes the profile's latency and 95% CI; where none does,
the runs' own value stays, headed as measured in the run. runs.csv keeps every run's
own ``ms_per_sample`` where it timed one (a run whose sweep measured a profile for it
skips that: ``provenance.latency`` says so).
"""

from __future__ import annotations

import math

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
# Batch-1 latency from the cost profile (its geometric mean over rounds and 95% CI); the
# runs' own ms_per_sample stands only where no profile matched, under its own heading.
COST_LATENCY = {"cost_latency_ms": ("ms/sample (cost profile)", True, "{:.3g}")}
IN_RUN_LATENCY = {"ms_per_sample": ("ms/sample (in run)", True, "{:.4f}")}


def load_cost(store) -> pd.DataFrame:
    """The cost table of a results database (a Store, a StoreView or an open connection),
    or an empty frame when it has none."""
    frame = pd.DataFrame(cost_store.all_rows(store))
    if frame.empty:
        return pd.DataFrame(columns=COST_COLUMNS)
    missing = [c for c in COST_COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"the cost table lacks the columns {missing}")
    for column in frame.columns:  # a withheld figure is stored as null: NaN, even when every row's is
        if column.endswith(("_ms", "_ms_low", "_ms_high")) or column.startswith("step_ratio"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
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
    if "provenance.stack_activations" in done and (done["provenance.stack_activations"].fillna(1) > 1).any():
        reasons.append("activations trained together in one stack share one clock: none of them has its own")
    return "; ".join(reasons) or None


def _match(cost: pd.DataFrame, setting: dict, activation: str) -> pd.Series | None:
    """The latest cost row measured for exactly this setting: model, activation, device,
    threads, and (where the row records them) data set and batch size. A row of the
    same model on another data set (other input shape) never applies."""
    if "dataset" not in cost:  # rows from before data sets were recorded fit no setting for sure
        return None
    rows = cost[(cost["model"] == setting["model"]) & (cost["activation"] == activation)
                & (cost["device"] == setting["device"])]
    for column in ("threads", "dataset", "batch_size"):
        if setting.get(column) is not None and column in rows and len(rows):
            rows = rows[_equal(rows[column], setting[column])]
    return rows.iloc[-1] if len(rows) else None


def _equal(values: pd.Series, wanted) -> pd.Series:
    """``values == wanted``, numbers as numbers: a runs frame with a failed run (no
    provenance) holds its threads as floats, 1.0 for the profile's 1."""
    try:
        return pd.to_numeric(values, errors="coerce") == float(wanted)
    except (TypeError, ValueError):
        return values.astype(str) == str(wanted)


def _log_half(low: float, high: float) -> float:
    """Half the width of [low, high] on the log scale (a relative uncertainty)."""
    return (math.log(high) - math.log(low)) / 2 if low > 0 and high > 0 else math.nan


def cost_times(aggregate: pd.DataFrame, runs: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    """``aggregate`` with cost-based times: per activation, epoch, training and time-to-
    target seconds as optimizer steps x its measured step time: mean and sd over
    seeds (steps vary by seed), and a 95% CI of the mean time that carries both
    uncertainties, the seed-to-seed spread of the steps (t interval of their mean)
    and the step time's own CI (the baseline's too), combined on the log scale.
    Activations without a profile measured for the runs' setting keep NaN there."""
    if aggregate.empty or cost.empty:
        return aggregate
    out = _with_empty(aggregate, COST_TIMES)
    for index, group, profile in _matched_profiles(aggregate, runs, cost):
        if pd.isna(profile["step_ms"]):  # withheld (its rounds varied too much): no time from it
            continue
        step_s = profile["step_ms"] / 1000
        if pd.notna(profile.get("step_ms_low")) and pd.notna(profile.get("step_ms_high")):
            step_half = _log_half(profile["step_ms_low"], profile["step_ms_high"])  # its own CI
        else:  # older rows: the ratio's CI, the closest measure of the step's own
            step_half = _log_half(profile["step_ratio_low"], profile["step_ratio_high"])
        steps = {"cost_epoch_s": group["train_steps"] / group["epochs_run"], "cost_train_s": group["train_steps"],
                 "cost_target_s": group["steps_to_target"].dropna()}
        for column, values in steps.items():
            if values.empty:
                continue
            described = stats.describe(values.tolist())
            seed_half = described["ci95"] / described["mean"] if described["n"] > 1 and described["mean"] > 0 \
                else 0.0
            half = math.sqrt(seed_half ** 2 + (step_half if not math.isnan(step_half) else 0.0) ** 2)
            mean = described["mean"] * step_s
            out.loc[index, f"{column}_mean"] = mean
            out.loc[index, f"{column}_sd"] = described["sd"] * step_s
            out.loc[index, f"{column}_low"] = mean * math.exp(-half)
            out.loc[index, f"{column}_high"] = mean * math.exp(half)
    return out


def cost_latency(aggregate: pd.DataFrame, runs: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    """``aggregate`` with ``cost_latency_ms_{mean,low,high,sd}``: per activation, the batch-1
    latency of the cost profile measured for the runs' setting and its 95% CI (NaN for
    rows measured before the CI was). Measured once, alone, it has no seed-to-seed
    spread (sd NaN). Activations without a matching profile keep NaN, so their table
    row shows the runs' own ms/sample instead (``afbench.report.tables.time_columns``)."""
    if aggregate.empty or cost.empty or "latency_ms" not in cost:
        return aggregate
    out = _with_empty(aggregate, COST_LATENCY)
    for index, _, profile in _matched_profiles(aggregate, runs, cost):
        if pd.isna(profile.get("latency_ms")):
            continue
        out.loc[index, "cost_latency_ms_mean"] = float(profile["latency_ms"])
        for bound in ("low", "high"):
            value = profile.get(f"latency_ms_{bound}")
            out.loc[index, f"cost_latency_ms_{bound}"] = float(value) if pd.notna(value) else math.nan
    return out


def _with_empty(aggregate: pd.DataFrame, columns: dict) -> pd.DataFrame:
    """A copy of ``aggregate`` with mean, low, high and sd of each of ``columns``, all NaN."""
    out = aggregate.copy()
    for column in columns:
        for stat in ("mean", "low", "high", "sd"):
            out[f"{column}_{stat}"] = math.nan
    return out


def _matched_profiles(aggregate: pd.DataFrame, runs: pd.DataFrame, cost: pd.DataFrame):
    """(index, finished runs, cost row) for every aggregate row whose runs' setting a cost
    row was measured for (``_match``); rows without one are skipped. All rows of one
    (data set, model, setting) take their rows from profiles of one thread count, so their
    times compare (``_threads_for``)."""
    done = runs[runs["status"] == "done"]
    by_setting: dict[tuple, list] = {}
    for index, row in aggregate.iterrows():
        group = done[(done["dataset"] == row["dataset"]) & (done["model"] == row["model"])
                     & (done["activation"] == row["activation"])]
        if "setting" in row and "setting" in group:
            group = group[group["setting"] == row["setting"]]
        if not group.empty:
            by_setting.setdefault((row["dataset"], row["model"], row.get("setting")), []).append((index, row, group))
    for members in by_setting.values():
        threads = _threads_for([(row, group) for _, row, group in members], cost)
        for index, row, group in members:
            profile = _match(cost, {**_setting_of(row, group), "threads": threads}, row["activation"])
            if profile is not None:
                yield index, group, profile


def _setting_of(row, group: pd.DataFrame) -> dict:
    """What a cost row must have been measured in to stand for ``group``'s runs (threads apart)."""
    return {"model": row["model"], "dataset": row["dataset"],
            "device": str(group["config.device"].iloc[0]) if "config.device" in group else "cpu",
            "batch_size": group["config.batch_size"].iloc[0] if "config.batch_size" in group else None}


def _threads_for(rows: list, cost: pd.DataFrame):
    """The one thread count whose profiles stand for these rows (one setting's activations):
    of the counts their runs trained with (sweeps into one folder, or --seeds auto's rounds,
    may choose other layouts), the one whose profiles cover the most activations, the most
    common among the runs on a tie; None when the runs record no threads."""
    threads = [group["provenance.threads"].dropna() for _, group in rows if "provenance.threads" in group]
    counts = pd.concat(threads).value_counts() if threads else pd.Series(dtype=float)
    if counts.empty:
        return None

    def covered(threads) -> int:
        return sum(_match(cost, {**_setting_of(row, group), "threads": threads}, row["activation"]) is not None
                   for row, group in rows)

    return max(counts.index, key=lambda t: (covered(t), counts[t]))  # max keeps the first on a tie: most common


def cost_points(aggregate: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    """Per setting and activation: the error (mean, CI) beside the cost profile's step
    ratio and memory: the points of the accuracy-against-cost (Pareto) figure."""
    if cost.empty or aggregate.empty or "saved_bytes_per_sample" not in cost:
        return pd.DataFrame()
    keys = ["model", "activation"] + (["dataset"] if "dataset" in cost else [])  # a row is one setting's
    latest = cost.drop_duplicates(keys + ["device", "threads"], keep="last")
    points = aggregate.merge(latest, on=keys, how="inner", suffixes=("", "_cost"))
    return points.rename(columns={"error_rate_mean": "error_mean", "error_rate_ci95": "error_ci95"})


UNSETTLED = 0.10  # a ratio CI wider than +-10% (log scale) is flagged: the profile did not converge


def unsettled(profile) -> str:
    """Why a cost row's figures are not to be trusted as a ranking, or ''."""
    reasons = []
    if str(profile.get("stop", "converged")) not in ("converged", "", "nan", "None"):
        reasons.append(f"stopped on its {profile['stop']}, not converged")
    half = _log_half(profile["step_ratio_low"], profile["step_ratio_high"])
    if not math.isnan(half) and half > UNSETTLED:
        reasons.append(f"ratio CI ±{100 * (math.exp(half) - 1):.0f}%")
    return "; ".join(reasons)


def _step_text(profile) -> str:
    """The step time with its own CI (the baseline's too: its ratio CI is [1, 1] by definition)."""
    text = f"{profile['step_ms']:.3g}"
    if pd.notna(profile.get("step_ms_low")) and pd.notna(profile.get("step_ms_high")):
        text += f" [{profile['step_ms_low']:.3g}, {profile['step_ms_high']:.3g}]"
    return text


def cost_rows(points: pd.DataFrame) -> list[dict]:
    """The report's cost table: one row per activation of the profile; a profile that
    did not converge is flagged in ``note``."""
    return [{"setting": f"{p['model']}/{p['dataset']}", "activation": p["activation"],
             "step (ms) [95% CI]": _step_text(p),
             "ratio [95% CI]": f"{p['step_ratio']:.3f} [{p['step_ratio_low']:.3f}, {p['step_ratio_high']:.3f}]",
             "saved B/sample": f"{p['saved_bytes_per_sample']:,.0f}", "threads": p["threads"],
             "error (%)": f"{p['error_mean']:.2f}", "note": unsettled(p)} for _, p in points.iterrows()]
