"""Tables from the results store: one row per run, one per run-epoch, and the
S1-style comparison (mean ± sd over seeds, marked only where the paired tests say
so). Columns come from the typed records (afbench.results): a metric the report
names but the records lack is an error, not an empty column."""

from __future__ import annotations

import math

import pandas as pd

from afbench.errors import AfbenchError
from afbench.stats import best, sequential, settings as setting_labels
from afbench.stats import paired as stats
from afbench.results import EPOCH_METRICS, SUMMARY_METRICS, EpochRecord, RunRecord, Status, check_metric

# The columns S1's tables report, plus F1 (S2), with how to read them.
COLUMNS = {  # column: (heading, lower is better, format)
    "total_train_s": ("total train (s)", True, "{:.3g}"),
    "ms_per_sample": ("ms/sample", True, "{:.4f}"),
    "epoch_to_target": ("epoch to target", True, "{:.1f}"),
    "time_to_target_s": ("time to target (s)", True, "{:.3g}"),
    "error_rate": ("error (%)", True, "{:.2f}"),
    "f1": ("F1", False, "{:.4f}"),
}
TESTED = "error_rate"  # the metric the paired tests, marks and verdicts are about
WORST = stats.WORST  # the value a diverged run counts as in the tests (100% error)
IDENTITY = ["activation", "model", "dataset", "seed", "lr", "status"]
RUN_COLUMNS = ["setting"] + IDENTITY + ["total_train_s", "wall_s", "time_to_target_s", "epoch_to_target",
                                        "ms_per_sample", "accuracy", "error_rate", "precision", "recall", "f1",
                                        "params"]
OWN_RUN_COLUMNS = ["primary_metric", "primary_value", "higher_is_better"]  # summary.csv, where a workload has its own
WORSE, BETTER = "▲", "▼"  # marks on the error: significantly worse / better than the baseline
for _metric in list(COLUMNS) + RUN_COLUMNS[1 + len(IDENTITY):]:
    check_metric(_metric)  # fail at import, not with an empty column, if a metric is renamed


def runs_frame(records: list[RunRecord]) -> pd.DataFrame:
    """One row per run: identity, status, summary metrics (every one, empty until the
    run finishes), config.* and provenance.* columns."""
    rows = []
    for record in records:
        summary = record.summary.to_dict() if record.summary else {}
        for bulky in ("confusion", "learned_curves"):
            summary.pop(bulky, None)
        rows.append({"key": record.key, "activation": record.config["activation"], "model": record.config["model"],
                     "dataset": record.config["dataset"], "seed": record.config["seed"], "lr": record.config["lr"],
                     "status": record.status.value, **{m: summary.get(m) for m in SUMMARY_METRICS},
                     "primary_metric": summary.get("primary_metric"),
                     "higher_is_better": summary.get("higher_is_better"),
                     "error": record.error, "attempts": record.attempts,
                     **{f"config.{k}": v for k, v in record.config.items()},
                     **{f"provenance.{k}": v for k, v in record.provenance.items()}})
    frame = pd.DataFrame(rows, columns=None if rows else ["key", *IDENTITY, *SUMMARY_METRICS, "error", "attempts"])
    for metric in SUMMARY_METRICS:
        frame[metric] = pd.to_numeric(frame[metric], errors="coerce")
    frame.insert(1, "setting", setting_labels.label(frame) if rows else pd.Series(dtype=str))
    return frame


def epochs_frame(epochs: list[tuple[str, EpochRecord]], runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run and epoch, with the run's identity columns. Per-layer
    diagnostics become one column per layer ({metric}_layer1, ...) and their mean
    over layers ({metric}_mean)."""
    rows = []
    for key, record in epochs:
        row = {"run_key": key, **{m: getattr(record, m) for m in EPOCH_METRICS}}  # every column, even if empty
        layers = record.layers or {}
        for metric, values in layers.items():
            for i, value in enumerate(values):
                row[f"{metric}_layer{i + 1}"] = value
            finite = [v for v in values if v is not None and not math.isnan(v)]
            row[f"{metric}_mean"] = sum(finite) / len(finite) if finite else math.nan
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["run_key", "activation", "model", "dataset", "seed", "lr", "epoch"])
    ids = runs[["key", "activation", "model", "dataset", "seed", "lr"] + (["setting"] if "setting" in runs else [])]
    ids = ids.rename(columns={"key": "run_key"})
    frame = ids.merge(pd.DataFrame(rows), on="run_key")
    for metric in EPOCH_METRICS:
        frame[metric] = pd.to_numeric(frame[metric], errors="coerce")
    return frame


def select_learning_rates(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep, per (data set, model, activation), the learning rate with the best mean
    final validation accuracy over seeds (the nuisance parameter is tuned per
    activation, never on test). Returns (kept runs, the choices)."""
    finished = runs[runs["status"].isin([Status.DONE.value, Status.DIVERGED.value])]
    group = ["setting", "dataset", "model", "activation"] if "setting" in runs else ["dataset", "model", "activation"]
    if finished.empty or finished.groupby(group)["lr"].nunique().max() <= 1:
        return finished, pd.DataFrame()
    finished = finished.drop(unshared_rates(finished).index)  # one grid for all
    # Per group with several rates: one setting's validation accuracy never picks another's rate.
    several = finished.groupby(group)["lr"].transform("nunique") > 1
    unvalidated = finished[several].groupby(group)["valid_acc"].transform(lambda v: v.isna().all())
    if unvalidated.any():
        rates = ", ".join(f"{lr:g}" for lr in sorted(finished.loc[unvalidated[unvalidated].index, "lr"].unique()))
        raise AfbenchError(f"the runs hold several learning rates ({rates}) but no validation accuracy to choose "
                           "between them: give one --lr per results folder (another --out), or sweep them "
                           "together with --valid-fraction 0.1")
    means = finished.assign(valid_acc=finished["valid_acc"].fillna(0.0)).groupby(group + ["lr"])["valid_acc"].mean()
    best = means.reset_index().sort_values("valid_acc", ascending=False).drop_duplicates(group)
    chosen = set(best[group + ["lr"]].itertuples(index=False, name=None))
    kept = finished[[row in chosen for row in finished[group + ["lr"]].itertuples(index=False, name=None)]]
    tuned = finished.groupby(group)["lr"].nunique()  # the table lists choices only: one rate is no choice
    best = best[[tuned.get(tuple(row)) > 1 for row in best[group].itertuples(index=False, name=None)]]
    best = best.rename(columns={"valid_acc": "mean_valid_acc"}).round({"mean_valid_acc": 4})
    return kept, best.reset_index(drop=True)


def _tuned_grids(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame, frozenset]]:
    """(setting, its runs, the rates every activation of it ran) for each setting where
    some activation ran at several rates (the rate is tuned there)."""
    if runs.empty or "setting" not in runs or "lr" not in runs:
        return []
    out = []
    for setting, rows in runs.groupby("setting", sort=False):
        grids = rows.groupby("activation")["lr"].agg(frozenset)
        if grids.map(len).max() > 1:
            out.append((setting, rows, frozenset.intersection(*grids)))
    return out


def unshared_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs at a learning rate that not every activation of their setting ran at.
    Tuning picks each activation's best rate from the grid all of them share: a rate
    given to one activation alone (a later sweep into the folder) would tune it over
    more chances than the others, and could move a verdict by that alone. Where they
    share none, nothing is left out (``disjoint_rates`` names those settings)."""
    parts = [rows[~rows["lr"].isin(shared)] for _, rows, shared in _tuned_grids(runs) if shared]
    return pd.concat(parts) if parts else runs.iloc[:0]


def disjoint_rates(runs: pd.DataFrame) -> list[str]:
    """The settings whose tuned activations share no learning rate at all."""
    return [setting for setting, _, shared in _tuned_grids(runs) if not shared]


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
    """Per setting (afbench.stats.settings) and activation: runs, diverged, targets
    reached, parameters, and mean, sd, n and 95% CI of every reported column (error
    in %) over the finished runs. Activations in ``order`` (default: first
    appearance)."""
    runs = setting_labels.with_settings(runs)
    if order:
        rank = {name: i for i, name in enumerate(order)}
        runs = runs.iloc[sorted(range(len(runs)), key=lambda i: rank.get(runs["activation"].iloc[i], len(rank)))]
    rows = []
    for (setting, dataset, model, activation), group in runs.groupby(["setting", "dataset", "model", "activation"],
                                                                      sort=False):
        done = group[group["status"] == Status.DONE.value]
        row = {"setting": setting, "dataset": dataset, "model": model, "activation": activation, "runs": len(group),
               "done": len(done), "diverged": int((group["status"] == Status.DIVERGED.value).sum()),
               "reached": int(done["epoch_to_target"].notna().sum()),
               "params": int(group["params"].dropna().iloc[0]) if group["params"].notna().any() else None,
               "match_params": bool(group.get("config.match_params", pd.Series([False])).fillna(False).any())}
        for column in list(COLUMNS) + ["accuracy", "precision", "recall"]:
            values = done[column] * (100 if column == "error_rate" else 1)
            for stat, value in stats.describe(values.tolist()).items():
                row[f"{column}_{stat}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def significance(runs: pd.DataFrame, baseline: str, equivalence: float = 0.001,
                 alpha: float = stats.ALPHA, design: dict | None = None, family: str = "setting") -> pd.DataFrame:
    """Paired tests of the error against the baseline per setting, with a verdict per
    activation: the fixed-design Holm tests (stats.verdicts), or, for a ``--seeds
    auto`` sweep (``design``: its meta ``sequential``), the sweep's own looks replayed
    with its margin and levels (stats.sequential.replay). Diverged runs count at
    100% error. ``family``: Holm within each setting, or over "all" of them."""
    tests = _judged(runs, design,
                    lambda looked: sequential.replay(looked, baseline,
                                                     sequential.Design.from_dict({**design, "metric": TESTED})),
                    lambda fixed: stats.verdicts(fixed, TESTED, baseline, equivalence, alpha, worst=WORST[TESTED],
                                                 family=family))
    if tests.empty:
        return tests
    return tests.assign(metric=TESTED, baseline=baseline)


def _judged(runs: pd.DataFrame, design: dict | None, replayed, fixed) -> pd.DataFrame:
    """One frame of tests: ``replayed`` (the design's looks) on the runs ``design`` chose,
    ``fixed`` (fixed-design Holm) on the rest."""
    looked, rest = under_design(runs, design)
    parts = [t for t in (replayed(looked) if len(looked) else None, fixed(rest) if len(rest) else None)
             if t is not None and len(t)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def under_design(runs: pd.DataFrame, design: dict | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the runs a --seeds auto design chose, the rest): only the settings that sweep ran
    (design ``keys``, the report's read of its ``settings``) are judged by its looks;
    another setting's runs in the folder never are, whatever their seeds. A design
    stored before it named its settings covers every run, as it did then."""
    if not design:
        return runs.iloc[:0], runs
    if "keys" not in design:
        return runs, runs.iloc[:0]
    mine = runs["key"].isin(design["keys"])
    return runs[mine], runs[~mine]


def is_classification(runs: pd.DataFrame) -> pd.Series:
    """Runs whose primary metric is the test error (image classification, and every run
    stored before workloads): the ones the error tables and tests cover."""
    metric = runs["primary_metric"] if "primary_metric" in runs else pd.Series(None, index=runs.index)
    return metric.isna() | (metric == TESTED)


def workload_tests(runs: pd.DataFrame, baseline: str, alpha: float = stats.ALPHA,
                   family: str = "setting", design: dict | None = None) -> pd.DataFrame:
    """Paired tests of each other workload's own primary metric against the baseline, in
    its own direction (bits per character lower, PSNR higher, ...), per setting, Holm-
    corrected. No equivalence margin is defined in another metric's units, so a verdict
    is better, worse or undecided. Diverged runs count at the worst finished value. A
    --seeds auto sweep that decided on this metric (``design``, its meta ``sequential``)
    is judged by its own looks replayed, as ``significance`` does for the error: a fixed-
    design test of data whose size the looks chose would not hold its 5%."""
    other = runs[~is_classification(runs)]
    parts = []
    for (metric, higher), group in other.groupby(["primary_metric", "higher_is_better"], sort=False):
        own = design if design and design.get("metric") == metric else None
        tests = _judged(group, own,
                        lambda looked: sequential.replay(looked, baseline, sequential.Design.from_dict(
                            {**own, "metric": "primary_value", "higher_is_better": bool(higher)})),
                        lambda fixed: stats.verdicts(fixed, "primary_value", baseline, equivalence=0.0, alpha=alpha,
                                                     higher_is_better=bool(higher), family=family))
        if len(tests):  # each setting's own means: never pooled across settings
            group = setting_labels.with_settings(group)
            means = group[group["status"] == Status.DONE.value].groupby(["setting", "activation"])["primary_value"]\
                .mean()
            parts.append(tests.assign(metric=metric, higher_is_better=bool(higher), baseline=baseline,
                                      mean=[means.get((s, a)) for s, a in zip(tests["setting"], tests["activation"])],
                                      baseline_mean=[means.get((s, baseline)) for s in tests["setting"]]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def all_tests(tests: pd.DataFrame, workload_tests: pd.DataFrame | None) -> pd.DataFrame:
    """The error tests and the other workloads' tests (``workload_tests``) as one frame
    (their settings never overlap): what the files and the table's verdicts are read from."""
    parts = [t for t in (tests, workload_tests) if t is not None and len(t)]
    if not parts:
        return tests if tests is not None else pd.DataFrame()
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def of_setting(frame: pd.DataFrame, setting: str, dataset=None, model=None) -> pd.DataFrame:
    """The rows of one setting (of one data set and model, in a frame without labels)."""
    if "setting" in frame:
        return frame[frame["setting"] == setting]
    return frame[(frame["dataset"] == dataset) & (frame["model"] == model)]


def own_metric(runs: pd.DataFrame, setting: str, dataset=None, model=None) -> tuple[str, dict] | None:
    """A setting whose runs' primary metric is not the test error (regression, a language
    model, a PDE): its name, and per activation ``stats.describe`` (mean, sd, n, ci95) of
    that metric over its finished runs; None for the test error. The one source of the
    workload's numbers for the console table, the report's tables and the CSV files."""
    if runs is None or len(runs) == 0 or "primary_metric" not in runs or "primary_value" not in runs:
        return None
    runs = of_setting(runs, setting, dataset, model)
    metric = runs["primary_metric"].dropna()
    if metric.empty or metric.iloc[0] == TESTED:
        return None
    done = runs[runs["status"] == Status.DONE.value]
    return str(metric.iloc[0]), {a: stats.describe(pd.to_numeric(done.loc[done["activation"] == a, "primary_value"],
                                                                 errors="coerce").tolist())
                                 for a in dict.fromkeys(runs["activation"])}


OWN = "primary_value"  # the aggregate's columns of a workload's own metric: primary_value_mean, ..._sd, ...


def with_own_metric(aggregate: pd.DataFrame, kept: pd.DataFrame) -> pd.DataFrame:
    """``aggregate`` with each other workload's primary metric (``primary_metric``, the
    metric's name, and ``primary_value_{mean,sd,n,ci95}``) in the rows of its settings;
    unchanged where every setting's metric is the test error."""
    if aggregate.empty or kept is None or len(kept) == 0 or is_classification(kept).all():
        return aggregate
    aggregate = aggregate.copy()
    aggregate["primary_metric"] = None
    for stat in ("mean", "sd", "n", "ci95"):
        aggregate[f"{OWN}_{stat}"] = math.nan
    for setting, group in aggregate.groupby("setting", sort=False):
        own = own_metric(kept, setting, group["dataset"].iloc[0], group["model"].iloc[0])
        if own is None:
            continue
        for index, row in group.iterrows():
            aggregate.at[index, "primary_metric"] = own[0]
            for stat, value in own[1].get(row["activation"], {}).items():
                aggregate.at[index, f"{OWN}_{stat}"] = value
    return aggregate


def metric_label(metric: str, runs: pd.DataFrame | None = None) -> str:
    """A workload metric's name with its unit ("psnr (dB)", "mse"), the unit from the
    registered workload its runs name (a user's workload is never loaded for it)."""
    unit = ""
    if runs is not None and len(runs) and "config.workload" in runs and "primary_metric" in runs:
        from afbench import workloads

        for name in runs.loc[runs["primary_metric"] == metric, "config.workload"].dropna().unique():
            try:
                if not workloads.is_user_workload(str(name)):
                    unit = workloads.get(str(name)).primary.unit
                    break
            except Exception:  # a plugin no longer installed: the name alone
                continue
    return f"{metric} ({unit})" if unit and unit not in metric else metric


def top_groups(runs: pd.DataFrame, alpha: float = stats.ALPHA) -> dict[str, best.TopGroup]:
    """setting -> its top group: the confidence set for the best error (stats.best),
    or why none can be given."""
    runs = setting_labels.with_settings(runs)
    return {setting: best.top_group(group, TESTED, alpha=alpha, worst=WORST[TESTED])
            for setting, group in runs.groupby("setting", sort=False)}


SAME_RUN = ["setting", "activation", "lr", "seed"]  # one experiment: NOT_SETTING's measurement values aside


def one_per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """The last stored finished run of each seed of an activation (at a learning rate)
    in a setting. Runs that differ only in what is measured beside the result (the
    latency samples, the diagnostics' probe size) are one experiment repeated: both
    counted, a seed would count twice, in n, the sd and the tests."""
    if not len(runs) or not set(SAME_RUN) <= set(runs.columns):
        return runs
    return runs[~runs.duplicated(SAME_RUN, keep="last")]


def settings_notes(runs: pd.DataFrame) -> list[str]:
    """One sentence per (data set, model) whose runs form several settings (for the
    console and the report): the values that differ, compared apart; and how many
    runs repeat a seed (``one_per_seed``), of which only the last counts."""
    notes = setting_labels.several(runs) if len(runs) else []
    finished = runs[runs["status"].isin([Status.DONE.value, Status.DIVERGED.value])] if len(runs) else runs
    open_runs = len(runs) - len(finished)
    if open_runs:  # an interrupted sweep's verdict rests on what finished: say so
        plural = open_runs != 1
        notes.append(f"{open_runs} run{'s' if plural else ''} of this folder {'are' if plural else 'is'} "
                     "not finished (queued, running or failed): the tables and tests use the finished runs; "
                     "rerun the sweep's command to finish them.")
    for setting in disjoint_rates(finished):
        notes.append(f"On {setting}, no learning rate was run by every activation: each is tuned over its own "
                     "rates, so a difference may be the rates' as much as the activations'.")
    apart = unshared_rates(finished)
    for (setting, activation), rows in apart.groupby(["setting", "activation"], sort=False):
        rates = ", ".join(f"{lr:g}" for lr in sorted(rows["lr"].unique()))
        notes.append(f"On {setting}, {activation}'s runs at lr {rates} are left out of the tuning: not every "
                     "activation ran at that rate, and tuning over more rates than the others would favour it.")
    repeats = len(finished) - len(one_per_seed(finished))
    if repeats:
        notes.append(f"{repeats} run{'s' if repeats != 1 else ''} repeat{'s' if repeats == 1 else ''} a seed of an "
                     "activation in its setting, differing only in what was measured beside the result (latency "
                     "samples, probe size): each seed counts once, its last run.")
    return notes


def width_note(activation: str, match_params: bool, group: pd.DataFrame | None = None,
               baseline: str | None = None) -> str:
    """A note for activations that widen the layer before them (maxout, gated ones) where
    that costs parameters: none where the row's model has no more parameters than the
    baseline's in its setting (``group``: the setting's aggregate rows), as a workload
    whose model keeps its size by design (the transformer's GLU at 2/3 of the width)."""
    from afbench import activations  # the registry knows which activations widen their layer

    try:
        multiplier = activations.info(activation).width_multiplier
    except KeyError:
        return ""
    if multiplier <= 1 or match_params:
        return ""
    mine, theirs = _params_of(group, activation), _params_of(group, baseline)
    if mine and theirs:
        if mine <= theirs * 1.01:  # within 1%: a bias or a gate's own parameters
            return ""
        return (f"{multiplier}x the width before each activation: {100 * (mine / theirs - 1):.0f}% more parameters "
                f"than {baseline} (use --match-params)")
    return f"{multiplier}x the width before each activation: more parameters (use --match-params)"


def _params_of(group: pd.DataFrame | None, activation: str | None) -> float | None:
    """The parameter count of ``activation``'s model in ``group`` (aggregate rows), if known."""
    if group is None or activation is None or "params" not in group:
        return None
    values = group.loc[group["activation"] == activation, "params"].dropna()
    return float(values.iloc[0]) if len(values) else None


def time_columns(table: pd.DataFrame) -> dict:
    """The table's columns: times from the cost profile where one was measured
    (steps x step time, with its CI), else the runs' own wall clocks; ms/sample as
    ``latency_columns`` says."""
    from afbench.report.timing import COST_TIMES

    columns = COLUMNS
    if "cost_train_s_mean" in table and table["cost_train_s_mean"].notna().any():
        wall_clock = ("total_train_s", "time_to_target_s")  # replaced by steps x step time
        columns = {**COST_TIMES, **{k: v for k, v in COLUMNS.items() if k not in wall_clock}}
    out = {}
    for column, spec in columns.items():
        out.update(latency_columns(table) if column == "ms_per_sample" else {column: spec})
    return out


def latency_columns(table: pd.DataFrame) -> dict:
    """ms/sample under a heading naming its source, never two sources in one column: the
    cost profile's latency (with its CI) for the rows a profile matched, the runs' own
    (timed while other runs may train beside them) for the rest. A table with both
    kinds of row has both columns; ``shown`` leaves each row's other one empty."""
    from afbench.report.timing import COST_LATENCY, IN_RUN_LATENCY

    profiled = has_value(table, "cost_latency_ms_mean")
    # Runs trained side by side without a profile timed none: no column of dashes for them.
    in_run = "ms_per_sample_mean" not in table or has_value(table, "ms_per_sample_mean")[~profiled].any()
    return {**(COST_LATENCY if profiled.any() else {}), **(IN_RUN_LATENCY if in_run and not profiled.all() else {})}


def has_value(frame: pd.DataFrame, column: str) -> pd.Series:
    """Per row: does ``column`` hold a value (False throughout where the frame lacks it)?"""
    return frame[column].notna() if column in frame else pd.Series(False, index=frame.index)


REPLACED_BY = {"ms_per_sample": "cost_latency_ms"}  # a run's own measurement -> the profile's, where one matched


def shown(row, column: str) -> bool:
    """False for a run-measured column in a row where the cost profile's measurement of
    the same thing stands in for it (the row shows that one, in its own column)."""
    replacement = REPLACED_BY.get(column)
    return replacement is None or pd.isna(row.get(f"{replacement}_mean", math.nan))


def comparison_rows(table: pd.DataFrame, tests: pd.DataFrame, bold=("**", "**"), top: dict | None = None,
                    baseline: str | None = None) -> list[dict[str, str]]:
    """The S1-style table as strings, one row per setting and activation: mean ± sd
    per column; on the error, ▲ / ▼ when the paired test finds it worse / better than
    the baseline, and ``bold`` around the top group (``top``: setting -> TopGroup, the
    confidence set for the best). Means over the runs that reached a target stand
    beside their count and are never marked; with one seed nothing is marked. A
    ``setting`` column names what differs when a (data set, model) holds several."""
    rows = []
    top = top or {}
    if table.empty:
        return rows
    table = table if "setting" in table else table.assign(setting=table["model"] + " / " + table["dataset"])
    columns = time_columns(table)
    several = table.groupby(["dataset", "model"])["setting"].nunique().max() > 1
    for setting, group in table.groupby("setting", sort=False):
        rankable = group["done"].max() >= 2
        members = getattr(top.get(setting), "members", top.get(setting) or [])
        for _, row in group.iterrows():
            cells = {"dataset": row["dataset"], "model": row["model"]}
            if several:
                cells["setting"] = setting.split(", ", 1)[1] if ", " in setting else "-"
            cells.update({"activation": row["activation"],
                          "n": f"{row['done']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
                          + (f" ({row['runs'] - row['done'] - row['diverged']} failed)"
                             if row["runs"] - row["done"] - row["diverged"] else ""),
                          "params": "-" if row["params"] is None or pd.isna(row["params"])
                          else f"{int(row['params']):,}"})
            for column, (heading, _, fmt) in columns.items():
                cells[heading] = _cell(row, column, fmt)
            verdict = "baseline" if row["activation"] == baseline else \
                _verdict_of(tests, setting, row["activation"])
            error = COLUMNS[TESTED][0]
            if rankable and verdict in ("worse", "better"):
                cells[error] += " " + (WORSE if verdict == "worse" else BETTER)
            if rankable and row["activation"] in members and cells[error] != "-":
                cells[error] = f"{bold[0]}{cells[error]}{bold[1]}"
            cells["vs baseline"] = verdict if rankable else unranked(row)
            cells["note"] = width_note(row["activation"], row["match_params"], group, baseline)
            rows.append(cells)
    return rows


def with_verdicts(aggregate: pd.DataFrame, tests: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """``aggregate`` with a verdict column ('worse (n=8)', 'baseline', '-'), matched
    by setting and activation (summary_stats.csv)."""
    if aggregate.empty or tests.empty:
        return aggregate
    return aggregate.assign(verdict=[
        "baseline" if r["activation"] == baseline else _verdict_of(tests, r["setting"], r["activation"], with_n=True)
        for _, r in aggregate.iterrows()])


def _cell(row, column: str, fmt: str) -> str:
    mean, sd = row[f"{column}_mean"], row[f"{column}_sd"]
    if pd.isna(mean) or not shown(row, column):
        return "not reached" if "target" in column else "-"
    text = fmt.format(mean) + ("" if pd.isna(sd) else " ± " + fmt.format(sd))
    if f"{column}_low" in row and not pd.isna(row[f"{column}_low"]):  # steps x step time: the mean's 95% CI
        text += f" [{fmt.format(row[f'{column}_low'])}, {fmt.format(row[f'{column}_high'])}]"
    if "target" in column and row["reached"] < row["done"]:
        text += f" ({row['reached']}/{row['done']} reached)"
    return text


def unranked(row) -> str:
    """Why an aggregate row (fewer than 2 finished seeds) has no verdict."""
    return "every run diverged" if row["done"] == 0 and row["diverged"] else "one seed cannot rank"


def _verdict_of(tests: pd.DataFrame, setting: str, activation: str, with_n: bool = False) -> str:
    if tests.empty:
        return "-"
    match = tests[(tests["setting"] == setting) & (tests["activation"] == activation)]
    if not len(match):
        return "-"
    return str(match["verdict"].iloc[0]) + (f" (n={match['n'].iloc[0]})" if with_n else "")


def target_words(aggregate: pd.DataFrame, runs: pd.DataFrame) -> str:
    """What reaching the target means for these aggregate rows: 'the target test accuracy'
    for images, 'the test mse at or below the target' for a workload's own metric."""
    own = aggregate["primary_metric"].dropna() if "primary_metric" in aggregate else pd.Series(dtype=object)
    if not len(own):
        return "the target test accuracy"
    metrics = list(dict.fromkeys(own))
    higher = runs.loc[runs["primary_metric"].isin(metrics), "higher_is_better"].dropna() \
        if "higher_is_better" in runs else pd.Series(dtype=bool)
    side = "" if len(metrics) > 1 or not len(higher) else " at or above" if bool(higher.iloc[0]) else " at or below"
    return f"the test {' / '.join(metric_label(m, runs) for m in metrics)}{side} the target"
