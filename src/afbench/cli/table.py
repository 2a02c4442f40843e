"""The console's comparison table: the columns that decide, in 80 columns, never folded.

Per setting (a data set and model, and the values that tell that pair's settings apart, as
stats.settings labels them; runs are never pooled across settings): activation, n, the
test error (or the setting's own primary metric: mse, bits per character) mean ± sd, the
verdict against the baseline (▲ worse, ▼ better, = equivalent, ? undecided), the
training-time ratio to the baseline and the parameters. One precision per column. Names too long for the column
are replaced by a1, a2 ... and spelled out under the table; nothing is ever split.
The full table (every column) is `--wide`: Markdown rows, as in summary.md.
"""

from __future__ import annotations

import math

from afbench.cli.output import fit_line

MARKS = {"worse": "▲", "better": "▼", "equivalent": "=", "undecided": "?", "baseline": ""}
NAME_WIDTH = 22  # longer activation names get an alias (a1, ...) and a line under the table


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _verdicts(report, setting: str, dataset, model, tests_of: str = "tests") -> dict[str, str]:
    tests = getattr(report, tests_of, None)
    if tests is None or len(tests) == 0:
        return {}
    from afbench.report.tables import of_setting

    rows = of_setting(tests, setting, dataset, model)
    return dict(zip(rows["activation"], rows["verdict"].astype(str)))


MIN_CLOCK_S = 1.0  # a run's training clock under this (the baseline's) gives no time ratio


def _times(report, group, setting: str, dataset, model) -> tuple[dict[str, float], bool]:
    """Per activation, its training time, and whether the cost profile measured it:
    from the profile where one was measured (steps x measured step time), else the
    median over runs of the run's share of its clock (stacked seeds share one clock; a
    median shrugs off a busy moment)."""
    if "cost_train_s_mean" in group and group["cost_train_s_mean"].notna().all():
        return dict(zip(group["activation"], group["cost_train_s_mean"])), True
    from afbench.report.tables import of_setting

    runs = getattr(report, "kept", None)
    if runs is None or len(runs) == 0 or "total_train_s" not in runs:
        return {}, False
    runs = of_setting(runs, setting, dataset, model)
    runs = runs[runs["status"] == "done"]
    if _fused(runs):  # one clock for several activations: none of them has its own time
        return {}, False
    stack = runs["provenance.stack_size"].fillna(1) if "provenance.stack_size" in runs else 1
    share = runs.assign(share=runs["total_train_s"] / stack)
    return share.groupby("activation")["share"].median().to_dict(), False


def _fused(runs) -> bool:
    """Whether some runs trained in one stack with other activations."""
    return "provenance.stack_activations" in runs and bool((runs["provenance.stack_activations"].fillna(1) > 1).any())


def _own_metric(report, setting: str, dataset, model) -> tuple[str, dict, dict] | None:
    """A setting whose runs' primary metric is not the test error (regression, a language
    model, a PDE): its name, and per activation the mean and sd over finished runs; None
    for the test error (afbench.report.tables.own_metric, which the report's files share)."""
    from afbench.report.tables import own_metric

    own = own_metric(getattr(report, "kept", None), setting, dataset, model)
    if own is None:
        return None
    return own[0], {a: d["mean"] for a, d in own[1].items()}, {a: d["sd"] for a, d in own[1].items()}


def compact_rows(report) -> list[tuple[str, str, list[dict]]]:
    """[(heading, metric, rows)] per setting; each row holds plain values. The metric is
    "error" (the test error in %) or the setting's own primary metric."""
    table = report.aggregate
    blocks = []
    if table is None or len(table) == 0:
        return blocks
    if "setting" not in table:
        table = table.assign(setting=table["model"].map(str) + " / " + table["dataset"].map(str))
    for setting, group in table.groupby("setting", sort=False):
        dataset, model = group["dataset"].iloc[0], group["model"].iloc[0]
        own = _own_metric(report, setting, dataset, model)
        verdicts = _verdicts(report, setting, dataset, model, "workload_tests" if own else "tests")
        times, profiled = _times(report, group, setting, dataset, model)
        base_time = _number(times.get(report.baseline))
        # a run's own clock over a fraction of a second measures the machine's moment, not the activation
        too_short = not profiled and base_time is not None and base_time < MIN_CLOCK_S
        rows = []
        rankable = group["done"].max() >= 2  # as the report: a row's diverged seeds count in its test, at 100%
        for _, row in group.iterrows():
            name = row["activation"]
            verdict = "baseline" if name == report.baseline else verdicts.get(name, "") if rankable else ""
            if not verdict and row["done"] == 0 and row["diverged"]:
                verdict = "diverged"  # every run diverged and no test says more: nothing to compare
            own_time = _number(times.get(name))
            mean, sd = (own[1].get(name), own[2].get(name)) if own else (row.get("error_rate_mean"),
                                                                           row.get("error_rate_sd"))
            rows.append({"activation": str(name), "n": int(row["done"]), "failed": int(row["runs"] - row["done"]),
                         "mean": _number(mean), "sd": _number(sd),
                         "verdict": verdict,
                         "ratio": own_time / base_time if own_time and base_time and not too_short else None,
                         "too_short": too_short,
                         "params": None if _number(row.get("params")) is None else int(row["params"])})
        apart = str(setting).split(", ", 1)[1] if ", " in str(setting) else ""  # what tells settings apart
        blocks.append((f"{model} on {dataset}" + (f" ({apart})" if apart else ""), own[0] if own else "error", rows))
    return blocks


def format_compact(report, width: int = 80) -> tuple[list[str], list[str]]:
    """The compact table as rows no longer than ``width`` (80 at least is assumed), and
    the legend as sentences (to wrap)."""
    lines: list[str] = []
    aliases: dict[str, str] = {}
    blocks = compact_rows(report)
    for heading, metric, rows in blocks:
        names = [alias(r["activation"], aliases) for r in rows]
        name_width = max([len("activation")] + [len(n) for n in names])
        means = [r["mean"] for r in rows if r["mean"] is not None]
        digits = 2 if not means or max(means) < 100 else 1
        title = "test error %" if metric == "error" else f"test {metric}"
        errors = [_error_text(r, digits if metric == "error" else None) for r in rows]
        error_width = max([len(title)] + [len(e) for e in errors])
        lines += fit_line(f"{heading}: {title.removesuffix(' %')} over seeds (mean ± sd), verdict against "
                          f"{report.baseline}", width).split("\n")
        header = (f"{'activation':<{name_width}}  {'n':>3}  {title:<{error_width}}  "
                  f"{'vs ' + str(report.baseline):<13.13}  {'time x':>6}  {'params':>10}")
        lines += [header, "-" * min(len(header), width)]
        for row, name, error in zip(rows, names, errors):
            verdict = (MARKS.get(row["verdict"], "") + " " + row["verdict"]).strip()
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
            params = "-" if row["params"] is None else f"{row['params']:,}"
            n = f"{row['n']}" + ("!" if row["failed"] else "")
            lines.append(f"{name:<{name_width}}  {n:>3}  {error:<{error_width}}  {verdict:<13}  {ratio:>6}  "
                         f"{params:>10}".rstrip())
        lines.append("")
    legend = []
    if any(r["failed"] for _, _, rows in blocks for r in rows):
        legend.append("n!: some runs failed or diverged (summary.md and runs.csv say which)")
    for name, short in aliases.items():
        legend.append(f"{short} = {name}")
    legend.append("▲ worse, ▼ better, = equivalent, ? undecided (paired test by seed, Holm-corrected); "
                 "time x: training time / the baseline's (median).")
    if any(r["verdict"] == "diverged" for _, _, rows in blocks for r in rows):
        legend.append("diverged: no seed where both it and the baseline finished, so nothing to compare "
                      "(a smaller --lr may help).")
    if any(r.get("too_short") for _, _, rows in blocks for r in rows):
        legend.append(f"time x -: the runs trained under {MIN_CLOCK_S:g} s, too short for their own clocks to "
                      "compare activations; afbench cost measures each activation's step time alone.")
    kept = getattr(report, "kept", None)
    if kept is not None and len(kept) and _fused(kept) and any(
            r["ratio"] is None for _, _, rows in blocks for r in rows):
        legend.append("time x -: activations trained together in one stack share one clock; afbench cost "
                      "measures each activation's own step time.")
    return lines, legend


def alias(name: str, aliases: dict[str, str]) -> str:
    """``name``, or its alias (a1, a2 ...; noted in ``aliases``) when longer than NAME_WIDTH."""
    if len(name) <= NAME_WIDTH:
        return name
    return aliases.setdefault(name, f"a{len(aliases) + 1}")


def _error_text(row: dict, digits: int | None) -> str:
    """mean ± sd at ``digits`` decimals (the error in %), or at 4 significant digits (None)."""
    if row["mean"] is None:
        return "-"
    style = f".{digits}f" if digits is not None else ".4g"
    return f"{row['mean']:{style}}" + ("" if row["sd"] is None else f" ± {row['sd']:{style}}")


def format_wide(report) -> list[str]:
    """Every column of the report's comparison as Markdown rows: long, never folded.
    Columns that hold nothing in any row (no target set: "not reached") are left out."""
    rows = report.comparison()
    if not rows:
        return []
    empty = {"-", "", "not reached"}
    columns = [c for c in rows[0] if any(str(r.get(c, "")) not in empty for r in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(r.get(c, "")).replace("|", "\\|") for c in columns) + " |" for r in rows]
    return lines
