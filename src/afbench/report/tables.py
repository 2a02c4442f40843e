"""Tables from the results store: one row per run, one per run-epoch, and the
S1-style comparison (mean +- sd over seeds, best marked, significance vs baseline)."""

from __future__ import annotations

import math

import pandas as pd

from afbench.report import stats

# The columns S1's tables report, plus F1 (S2), with how to read them.
COLUMNS = {  # column: (heading, lower is better, format)
    "total_train_s": ("total train (s)", True, "{:.1f}"),
    "ms_per_sample": ("ms/sample", True, "{:.4f}"),
    "epoch_to_target": ("epoch to target", True, "{:.1f}"),
    "time_to_target_s": ("time to target (s)", True, "{:.1f}"),
    "error_rate": ("error (%)", True, "{:.2f}"),
    "f1": ("F1", False, "{:.4f}"),
}
RUN_COLUMNS = ["activation", "model", "dataset", "seed", "lr", "status", "total_train_s", "wall_s",
               "time_to_target_s", "epoch_to_target", "ms_per_sample", "accuracy", "error_rate", "precision",
               "recall", "f1", "params"]


def runs_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per run: identity, status, config, summary metrics, provenance."""
    rows = []
    for run in runs:
        summary = {k: v for k, v in run["summary"].items() if k != "confusion"}
        config = {f"config.{k}": v for k, v in run["config"].items()}
        prov = {f"provenance.{k}": v for k, v in run["provenance"].items()}
        rows.append({"key": run["key"], **{c: run[c] for c in ("activation", "model", "dataset", "seed", "lr",
                                                                 "status")},
                     **summary, "error": run.get("error"), "attempts": run.get("attempts"), **config, **prov})
    frame = pd.DataFrame(rows)
    for column in RUN_COLUMNS:
        if column not in frame:
            frame[column] = math.nan
    return frame


def epochs_frame(epochs: list[dict], runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run and epoch, with the run's identity columns. Per-layer
    diagnostics become one column per layer ({metric}_layer1, ...) and their mean
    over layers ({metric}_mean)."""
    frame = pd.DataFrame(epochs)
    if frame.empty:
        return frame
    if "layers" in frame:
        layers = frame.pop("layers")
        metrics = sorted({m for value in layers.dropna() for m in value})
        for metric in metrics:
            values = layers.map(lambda v, m=metric: v.get(m) if isinstance(v, dict) else None)
            depth = int(values.dropna().map(len).max() or 0)
            for i in range(depth):
                frame[f"{metric}_layer{i + 1}"] = values.map(
                    lambda v, i=i: v[i] if isinstance(v, list) and i < len(v) else math.nan)
            frame[f"{metric}_mean"] = values.map(
                lambda v: float(pd.Series(v, dtype=float).mean()) if isinstance(v, list) and v else math.nan)
    ids = runs[["key", "activation", "model", "dataset", "seed", "lr"]].rename(columns={"key": "run_key"})
    return ids.merge(frame, on="run_key")


def select_learning_rates(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep, per (data set, model, activation), the learning rate with the best mean
    final validation accuracy over seeds (the nuisance parameter is tuned per
    activation, never on test). Returns (kept runs, the choices)."""
    finished = runs[runs["status"].isin(["done", "diverged"])]
    group = ["dataset", "model", "activation"]
    if finished.empty or finished.groupby(group)["lr"].nunique().max() <= 1:
        return finished, pd.DataFrame()
    if "valid_acc" not in finished:
        raise ValueError("several learning rates but no validation accuracy: sweep with --valid-fraction > 0")
    means = finished.assign(valid_acc=finished["valid_acc"].fillna(0.0)).groupby(group + ["lr"])["valid_acc"].mean()
    best = means.reset_index().sort_values("valid_acc", ascending=False).drop_duplicates(group)
    chosen = set(best[group + ["lr"]].itertuples(index=False, name=None))
    kept = finished[[row in chosen for row in finished[group + ["lr"]].itertuples(index=False, name=None)]]
    best = best.rename(columns={"valid_acc": "mean_valid_acc"}).round({"mean_valid_acc": 4})
    return kept, best.reset_index(drop=True)


def settings(runs: pd.DataFrame) -> tuple[dict, list[str]]:
    """The config values every run shares, and the names of those that vary."""
    columns = [c for c in runs.columns if c.startswith("config.")]
    shared, varying = {}, []
    for column in columns:
        values = runs[column].map(lambda v: "none" if v is None or (isinstance(v, float) and math.isnan(v))
                                  else str(v)).unique()
        (shared.__setitem__(column.split(".", 1)[1], values[0]) if len(values) == 1
         else varying.append(column.split(".", 1)[1]))
    return shared, varying


def aggregate(runs: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Per (data set, model, activation): n, diverged, targets reached, and mean, sd,
    n and 95% CI of every reported column (error in %). Activations in ``order``
    (default: first appearance)."""
    if order:
        rank = {name: i for i, name in enumerate(order)}
        runs = runs.iloc[sorted(range(len(runs)), key=lambda i: rank.get(runs["activation"].iloc[i], len(rank)))]
    rows = []
    for (dataset, model, activation), group in runs.groupby(["dataset", "model", "activation"], sort=False):
        done = group[group["status"] == "done"]
        row = {"dataset": dataset, "model": model, "activation": activation, "runs": len(group),
               "diverged": int((group["status"] == "diverged").sum()),
               "reached": int(done["epoch_to_target"].notna().sum())}
        for column in list(COLUMNS) + ["accuracy", "precision", "recall"]:
            values = done[column] * (100 if column == "error_rate" else 1)
            for stat, value in stats.describe(values.tolist()).items():
                row[f"{column}_{stat}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def significance(runs: pd.DataFrame, baseline: str, metric: str = "error_rate") -> pd.DataFrame:
    """Paired tests of ``metric`` against the baseline, per (data set, model)."""
    parts = []
    for (dataset, model), group in runs[runs["status"] == "done"].groupby(["dataset", "model"], sort=False):
        tests = stats.paired_tests(group, metric, baseline)
        tests = tests[tests["n"] >= 2] if len(tests) else tests  # one pair tests nothing
        if len(tests):
            parts.append(tests.assign(dataset=dataset, model=model, metric=metric, baseline=baseline))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _marker(p: float) -> str:
    return "" if p is None or pd.isna(p) else "**" if p < 0.01 else "*" if p < 0.05 else ""


def comparison_rows(table: pd.DataFrame, tests: pd.DataFrame, bold=("**", "**")) -> list[dict[str, str]]:
    """The S1-style table as strings: mean +- sd, best of each column in bold, and
    '*' / '**' on the error when Holm-corrected paired t-test p < 0.05 / 0.01."""
    rows = []
    for (dataset, model), group in table.groupby(["dataset", "model"], sort=False):
        best = {}
        for column, (_, lower, _) in COLUMNS.items():
            means = group[f"{column}_mean"].dropna()
            if len(means):
                best[column] = means.min() if lower else means.max()
        for _, row in group.iterrows():
            cells = {"dataset": dataset, "model": model, "activation": row["activation"],
                     "n": f"{row['runs']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")}
            for column, (heading, _, fmt) in COLUMNS.items():
                mean, sd = row[f"{column}_mean"], row[f"{column}_sd"]
                if pd.isna(mean):
                    text = "not reached" if "target" in column else "-"
                else:
                    text = fmt.format(mean) + ("" if pd.isna(sd) else " ± " + fmt.format(sd))
                    if column in best and math.isclose(mean, best[column]):
                        text = f"{bold[0]}{text}{bold[1]}"
                if "target" in column and row["reached"] < row["runs"] - row["diverged"] and not pd.isna(mean):
                    text += f" ({row['reached']}/{row['runs'] - row['diverged']} reached)"
                cells[heading] = text
            if len(tests):
                match = tests[(tests["dataset"] == dataset) & (tests["model"] == model)
                              & (tests["activation"] == row["activation"])]
                if len(match):
                    cells[COLUMNS["error_rate"][0]] += _marker(match["t_p_holm"].iloc[0])
            rows.append(cells)
    return rows
