"""The console's comparison table: the columns that decide, in 80 columns, never folded.

Per setting (a data set and model, and the values that tell that pair's settings apart, as
stats.settings labels them; runs are never pooled across settings): activation, n, test error mean ± sd, the verdict against the
baseline (▲ worse, ▼ better, = equivalent, ? undecided), the training-time ratio to the
baseline and the parameters. One precision per column. Names too long for the column
are replaced by a1, a2 ... and spelled out under the table; nothing is ever split.
The full table (every column) is `--wide`: Markdown rows, as in summary.md.
"""

from __future__ import annotations

import math

MARKS = {"worse": "▲", "better": "▼", "equivalent": "=", "undecided": "?", "baseline": ""}
NAME_WIDTH = 22  # longer activation names get an alias (a1, ...) and a line under the table


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _of_setting(frame, setting: str, dataset, model):
    """The rows of one setting (of one data set and model, in a frame without labels)."""
    if "setting" in frame:
        return frame[frame["setting"] == setting]
    return frame[(frame["dataset"] == dataset) & (frame["model"] == model)]


def _verdicts(report, setting: str, dataset, model) -> dict[str, str]:
    tests = getattr(report, "tests", None)
    if tests is None or len(tests) == 0:
        return {}
    rows = _of_setting(tests, setting, dataset, model)
    return dict(zip(rows["activation"], rows["verdict"].astype(str)))


def _times(report, group, setting: str, dataset, model) -> dict[str, float]:
    """Per activation, its training time: from the cost profile where one was measured
    (steps x measured step time), else the median over runs of the run's share of its
    clock (stacked seeds share one clock; a median shrugs off a busy moment)."""
    if "cost_train_s_mean" in group and group["cost_train_s_mean"].notna().all():
        return dict(zip(group["activation"], group["cost_train_s_mean"]))
    runs = getattr(report, "kept", None)
    if runs is None or len(runs) == 0 or "total_train_s" not in runs:
        return {}
    runs = _of_setting(runs, setting, dataset, model)
    runs = runs[runs["status"] == "done"]
    if _fused(runs):  # one clock for several activations: none of them has its own time
        return {}
    stack = runs["provenance.stack_size"].fillna(1) if "provenance.stack_size" in runs else 1
    share = runs.assign(share=runs["total_train_s"] / stack)
    return share.groupby("activation")["share"].median().to_dict()


def _fused(runs) -> bool:
    """Whether some runs trained in one stack with other activations."""
    return "provenance.stack_activations" in runs and bool((runs["provenance.stack_activations"].fillna(1) > 1).any())


def compact_rows(report) -> list[tuple[str, list[dict]]]:
    """[(heading, rows)] per setting; each row holds plain values."""
    table = report.aggregate
    blocks = []
    if table is None or len(table) == 0:
        return blocks
    if "setting" not in table:
        table = table.assign(setting=table["model"].map(str) + " / " + table["dataset"].map(str))
    for setting, group in table.groupby("setting", sort=False):
        dataset, model = group["dataset"].iloc[0], group["model"].iloc[0]
        verdicts = _verdicts(report, setting, dataset, model)
        times = _times(report, group, setting, dataset, model)
        base_time = _number(times.get(report.baseline))
        rows = []
        for _, row in group.iterrows():
            name = row["activation"]
            rankable = row["done"] >= 2
            verdict = "baseline" if name == report.baseline else verdicts.get(name, "") if rankable else \
                "diverged" if row["done"] == 0 and row["diverged"] else ""  # every run diverged: nothing to compare
            own_time = _number(times.get(name))
            rows.append({"activation": str(name), "n": int(row["done"]), "failed": int(row["runs"] - row["done"]),
                         "mean": _number(row.get("error_rate_mean")), "sd": _number(row.get("error_rate_sd")),
                         "verdict": verdict,
                         "ratio": own_time / base_time if own_time and base_time else None,
                         "params": None if _number(row.get("params")) is None else int(row["params"])})
        apart = str(setting).split(", ", 1)[1] if ", " in str(setting) else ""  # what tells settings apart
        blocks.append((f"{model} on {dataset}" + (f" ({apart})" if apart else ""), rows))
    return blocks


def format_compact(report, width: int = 80) -> tuple[list[str], list[str]]:
    """The compact table as rows no longer than ``width`` (80 at least is assumed), and
    the legend as sentences (to wrap)."""
    lines: list[str] = []
    aliases: dict[str, str] = {}
    blocks = compact_rows(report)
    for heading, rows in blocks:
        names = [_alias(r["activation"], aliases) for r in rows]
        name_width = max([len("activation")] + [len(n) for n in names])
        means = [r["mean"] for r in rows if r["mean"] is not None]
        digits = 2 if not means or max(means) < 100 else 1
        errors = [_error_text(r, digits) for r in rows]
        error_width = max([len("test error %")] + [len(e) for e in errors])
        lines.append(f"{heading}: test error over seeds (mean ± sd), verdict against {report.baseline}")
        header = (f"{'activation':<{name_width}}  {'n':>3}  {'test error %':<{error_width}}  "
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
    if any(r["failed"] for _, rows in blocks for r in rows):
        legend.append("n!: some runs failed or diverged (summary.md and runs.csv say which)")
    for name, alias in aliases.items():
        legend.append(f"{alias} = {name}")
    legend.append("▲ worse, ▼ better, = equivalent, ? undecided (paired test by seed, Holm-corrected); "
                 "time x: training time / the baseline's (median).")
    kept = getattr(report, "kept", None)
    if kept is not None and len(kept) and _fused(kept) and any(
            r["ratio"] is None for _, rows in blocks for r in rows):
        legend.append("time x -: activations trained together in one stack share one clock; afbench cost "
                      "measures each activation's own step time.")
    return lines, legend


def _alias(name: str, aliases: dict[str, str]) -> str:
    if len(name) <= NAME_WIDTH:
        return name
    return aliases.setdefault(name, f"a{len(aliases) + 1}")


def _error_text(row: dict, digits: int) -> str:
    if row["mean"] is None:
        return "-"
    text = f"{row['mean']:.{digits}f}"
    return text + ("" if row["sd"] is None else f" ± {row['sd']:.{digits}f}")


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
