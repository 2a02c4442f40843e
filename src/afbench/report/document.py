"""The report as a Document (afbench.report.model): sections in reading order, tables
whose cells are data, built from the computed report's frames (the aggregate, the
paired tests, the top groups, the verdict sentences) and nothing else.

The verdict comes first, then the main figure (each activation's paired difference
from the baseline), the comparison table, the tests, and the rest. A section with
nothing in it is left out by every writer.
"""

from __future__ import annotations

import pandas as pd

from afbench.report import tables, timing
from afbench.report.model import Cell, Document, Figure, Section, Table, display

MARKS = (f"{tables.WORSE} / {tables.BETTER} on the error: significantly worse / better than the baseline "
         "(exact paired sign-flip permutation test on the per-seed differences, Holm-corrected across "
         "activations, at the level the Verdict states); bold: the top group, the 95% confidence set for the "
         "best error. Means over the runs that reached a target stand beside their count and are never marked; "
         "one seed marks nothing.")
SATURATION_NOTE = ("Diagnostics: saturation is the fraction of pre-activations where |f'(x)| < 0.01. For ReLU "
                   "and its relatives f' is 0 on the whole negative side, so there it counts inactive inputs, not "
                   "a flattening tail as for sigmoid or tanh. Dead units: zero output for every probe sample.")


# ---- the comparison table ---------------------------------------------------------------------

def comparison_table(aggregate: pd.DataFrame, tests: pd.DataFrame, top: dict, baseline: str,
                     targets_set: bool = True, workload_tests: pd.DataFrame | None = None,
                     runs: pd.DataFrame | None = None) -> Table:
    """Per setting and activation: n, parameters, mean ± sd of every reported column;
    the error cell marked worse / better where the paired test says so and bold in the
    top group (``top``: setting -> stats.best.TopGroup, the confidence set for the best;
    only with two seeds or more); the verdict against the baseline. A ``setting`` column
    names what differs when one (data set, model) holds several settings. A workload
    whose primary metric is not the test error (``aggregate``'s ``primary_metric``, from
    tables.with_own_metric) has a column of its own metric, marked by its tests in
    ``workload_tests``; ``runs`` name the metric's unit."""
    if aggregate.empty:
        return Table(["dataset", "model", "activation"])
    if "setting" not in aggregate:
        aggregate = aggregate.assign(setting=aggregate["model"] + " / " + aggregate["dataset"])
    columns = tables.time_columns(aggregate)
    several = aggregate.groupby(["dataset", "model"])["setting"].nunique().max() > 1
    own = list(aggregate["primary_metric"].dropna().unique()) if "primary_metric" in aggregate else []
    own_headings = {metric: tables.metric_label(metric, runs) for metric in own}
    tests = tables.all_tests(tests, workload_tests)
    headings = ["dataset", "model", *(["setting"] if several else []), "activation", "n", "params",
                *(h for h, _, _ in columns.values()), *own_headings.values(), "vs baseline", "note"]
    rows = []
    for setting, group in aggregate.groupby("setting", sort=False):
        rankable = group["done"].max() >= 2
        members = getattr(top.get(setting), "members", top.get(setting) or [])
        for _, row in group.iterrows():
            verdict = "baseline" if row["activation"] == baseline else _verdict_of(tests, setting, row["activation"])
            cells = [Cell.text_of(row["dataset"]), Cell.text_of(row["model"])]
            if several:
                cells.append(Cell.text_of(setting.split(", ", 1)[1] if ", " in setting else "-"))
            cells += [Cell.text_of(row["activation"]), _n_cell(row),
                      Cell(None if pd.isna(row["params"]) else int(row["params"]), "{:,}")]
            for column, (_, _, fmt) in columns.items():
                cell = _stat_cell(row, column, fmt)
                if column == tables.TESTED and rankable and not cell.empty:
                    mark = verdict if verdict in ("worse", "better") else ""
                    cell = Cell(cell.value, cell.fmt, cell.spread, cell.interval, cell.suffix, mark,
                                row["activation"] in members)
                cells.append(cell)
            for metric in own:
                cell = _stat_cell(row, tables.OWN, "{:.4g}") if row["primary_metric"] == metric else Cell(None)
                if rankable and not cell.empty and verdict in ("worse", "better"):
                    cell = Cell(cell.value, cell.fmt, cell.spread, mark=verdict)
                cells.append(cell)
            cells.append(Cell(verdict if rankable else tables.unranked(row)))
            cells.append(Cell(tables.width_note(row["activation"], row["match_params"], group, baseline)))
            rows.append(cells)
    table = Table(headings, rows).without(("note",))
    if own:  # workloads alone: no column of an error or F1 they do not have
        table = table.without((tables.COLUMNS[tables.TESTED][0], tables.COLUMNS["f1"][0]))
    if not targets_set:  # no --target: "not reached" would only mislead
        table = table.without(tuple(h for c, (h, _, _) in columns.items() if "target" in c), only_if_empty=False)
    return table


def _n_cell(row) -> Cell:
    failed = row["runs"] - row["done"] - row["diverged"]
    suffix = " ".join(part for part in (f"({row['diverged']} diverged)" if row["diverged"] else "",
                                        f"({failed} failed)" if failed else "") if part)
    return Cell(int(row["done"]), suffix=suffix)


def _stat_cell(row, column: str, fmt: str) -> Cell:
    """mean ± sd, or mean [low, high] for a measured step time or latency; a target
    column says how many runs reached it. A run-measured cell whose cost-profile
    counterpart fills this row is empty (``tables.shown``)."""
    mean, sd = row[f"{column}_mean"], row[f"{column}_sd"]
    if pd.isna(mean) or not tables.shown(row, column):
        return Cell(None, fmt, missing="not reached" if "target" in column else "-")
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    interval = (float(low), float(high)) if low is not None and not pd.isna(low) else None
    suffix = f"({row['reached']}/{row['done']} reached)" if "target" in column and row["reached"] < row["done"] \
        else ""
    return Cell(float(mean), fmt, None if pd.isna(sd) else float(sd), interval, suffix)


def _verdict_of(tests: pd.DataFrame, setting: str, activation: str) -> str:
    if tests.empty:
        return "-"
    match = tests[(tests["setting"] == setting) & (tests["activation"] == activation)]
    return str(match["verdict"].iloc[0]) if len(match) else "-"


# ---- the other tables ---------------------------------------------------------------------------

def tests_table(tests: pd.DataFrame) -> Table:
    """The paired tests, one row per activation and setting."""
    tests = tested(tests)
    if tests.empty:
        return Table(["setting", "activation"])
    simultaneous = "sim_low" in tests and tests["sim_low"].notna().any()
    confidence = (f"simultaneous {100 * tests['confidence'].iloc[0]:.4g}% CI (pp)" if simultaneous
                  else f"{100 * tests['confidence'].iloc[0]:.4g}% CI (pp, unadjusted)")
    low, high = ("sim_low", "sim_high") if simultaneous else ("ci_low", "ci_high")
    headings = ["setting", "activation", "vs", "n pairs", "mean diff (error, pp)", confidence,
                "permutation p (Holm)", "effect d_z", "t-test p", "Wilcoxon p", "verdict", "note"]
    rows = [[Cell.text_of(t["setting"] if "setting" in t else f"{t['model']}/{t['dataset']}"),
             Cell.text_of(t["activation"]), Cell.text_of(t["baseline"]),
             Cell(int(t["n"])), Cell(100 * t["mean_diff"], "{:+.3f}"),
             Cell(f"{100 * t[low]:+.3f} to {100 * t[high]:+.3f}"),
             Cell(float(t["p_permutation"]), "{:.4g}", suffix=f"({t['p_holm']:.4g})"),
             Cell(float(t["effect_size"]), "{:.2f}"), Cell(float(t["p_ttest"]), "{:.4g}"),
             Cell(float(t["p_wilcoxon"]), "{:.4g}"), Cell(str(t["verdict"])),
             Cell.text_of("" if pd.isna(t["note"]) else t["note"])]
            for _, t in tests.iterrows()]
    return Table(headings, rows).without(("note",))


def workload_tests_table(tests: pd.DataFrame) -> Table:
    """The other workloads' paired tests in their own metric's units (report.workload_tests):
    the difference from the baseline and the interval that matches the Holm p (simultaneous
    over the family where it holds several comparisons)."""
    tests = tested(tests)
    if tests.empty:
        return Table(["setting", "activation"])
    headings = ["setting", "activation", "vs", "metric", "n pairs", "mean diff", "CI of the diff",
                "permutation p (Holm)", "effect d_z", "verdict"]
    rows = []
    for _, t in tests.iterrows():
        simultaneous = int(t.get("family", 1) or 1) > 1 and not pd.isna(t.get("sim_low"))
        low, high, level = (t["sim_low"], t["sim_high"], t["sim_confidence"]) if simultaneous else \
            (t["ci_low"], t["ci_high"], t["confidence"])
        interval = f"{low:+.4g} to {high:+.4g} ({100 * level:.4g}%{', simultaneous' if simultaneous else ''})"
        rows.append([Cell.text_of(t["setting"]), Cell.text_of(t["activation"]), Cell.text_of(t["baseline"]),
                     Cell.text_of(f"{t['metric']} ({'higher' if t['higher_is_better'] else 'lower'} is better)"),
                     Cell(int(t["n"])), Cell(float(t["mean_diff"]), "{:+.4g}"), Cell(interval),
                     Cell(float(t["p_permutation"]), "{:.4g}", suffix=f"({t['p_holm']:.4g})"),
                     Cell(float(t["effect_size"]), "{:.2f}"), Cell(str(t["verdict"]))])
    return Table(headings, rows)


def tested(tests: pd.DataFrame) -> pd.DataFrame:
    """The comparisons a test could be run on: two pairs or more (one pair has no spread,
    no interval and no p-value worth a row)."""
    return tests if tests.empty else tests[tests["n"] >= 2]


def frame_table(frame: pd.DataFrame) -> Table:
    """Any small frame as a table of text cells (the learning-rate choices)."""
    return Table([display(c) for c in frame.columns],
                 [[Cell.text_of(v) for v in row] for row in frame.itertuples(index=False, name=None)])


def cost_table(points: pd.DataFrame, runs: pd.DataFrame | None = None) -> Table:
    """The cost profile beside each setting's result: the test error, or a workload's own
    metric (``runs`` names its unit); a table of both says the metric in each cell."""
    if points.empty:
        return Table(["setting", "activation"])
    own = points["primary_metric"] if "primary_metric" in points else pd.Series(None, index=points.index, dtype=object)
    labels = {m: tables.metric_label(str(m), runs) for m in own.dropna().unique()}
    mixed = len(labels) > 1 or (len(labels) == 1 and own.isna().any())
    heading = "error (%)" if not labels else "result" if mixed else next(iter(labels.values()))

    def result(p) -> Cell:
        metric = own.get(p.name)
        if pd.isna(metric):
            return Cell(float(p["error_mean"]), "{:.2f}", suffix="% error" if mixed else "")
        return Cell(float(p[f"{tables.OWN}_mean"]), "{:.4g}", suffix=labels[metric] if mixed else "")

    rows = [[Cell.text_of(f"{p['model']}/{p['dataset']}"), Cell.text_of(p["activation"]),
             Cell(float(p["step_ms"]), "{:.3g}"),
             Cell(float(p["step_ratio"]), "{:.3f}", interval=(float(p["step_ratio_low"]), float(p["step_ratio_high"]))),
             Cell(float(p["saved_bytes_per_sample"]), "{:,.0f}"), Cell.text_of(p["threads"]), result(p)]
            for _, p in points.iterrows()]
    return Table(["setting", "activation", "step (ms)", "ratio [95% CI]", "saved B/sample", "threads", heading], rows)


# ---- the document -----------------------------------------------------------------------------

def build(report, verdict: list[str], figures: list[Figure]) -> Document:
    """The whole report: ``report`` is afbench.report.render.Report, ``verdict`` its
    sentences, ``figures`` in reading order (the forest plots first)."""
    main = [f for f in figures if f.name.startswith("difference-from-baseline")]
    rest = [f for f in figures if f not in main]
    baseline = display(report.baseline)
    comparison = report.table()
    sections = [
        Section("Verdict", bullets=[display(line) for line in verdict], key="verdict"),
        Section(f"Difference from {baseline}", figures=main, key="main-figure"),
        Section(f"Comparison with {baseline}",
                [f"Per activation: mean ± sd over seeds. {marks_text(report.aggregate, report.runs)} Times "
                 "exclude evaluation"
                 + (f"; time to target is the training time at the end of the first epoch {target_text(report)}. "
                    if targets_set(report.runs) else ". ")
                 + timing_notes(report)] if len(comparison) else [], tables=[comparison], key="comparison"),
        Section("Learning rate chosen per activation (best mean validation accuracy)",
                tables=[frame_table(report.lr_choices)] if len(report.lr_choices) else [], key="learning-rates"),
        Section("Cost (measured apart from training; `afbench cost` for the full profile)",
                tables=[cost_table(timing.cost_points(report.aggregate, report.cost), report.runs)], key="cost"),
        Section(f"Paired tests against {baseline} (test error, runs paired by seed)",
                tables=[tests_table(report.tests)], key="tests"),
        Section(f"Paired tests against {baseline} in each workload's own metric (runs paired by seed)",
                tables=[workload_tests_table(report.workload_tests)], key="workload-tests"),
        Section("Figures", figures=rest, key="figures"),
        settings_section(report.runs),
        Section("Notes", [SATURATION_NOTE] if _has_diagnostics(report.epochs) else [], key="notes"),
        Section("Provenance", bullets=[f"{k}: {v}" for k, v in provenance(report.runs).items()], key="provenance"),
    ]
    return Document("afbench results", sections)


def marks_text(aggregate: pd.DataFrame, runs: pd.DataFrame) -> str:
    """The marks' legend (MARKS), naming the metric the marks are on where a workload's
    own metric (mse, bpc, ...) is marked rather than the error."""
    own = list(dict.fromkeys(aggregate["primary_metric"].dropna())) if "primary_metric" in aggregate else []
    if not own:
        return MARKS
    names = " / ".join(tables.metric_label(m, runs) for m in own)
    images = aggregate["primary_metric"].isna().any()
    return MARKS.replace("on the error:", f"on the {'error and the ' if images else ''}test {names}:", 1)


def target_text(report) -> str:
    """Where the first epoch stands against the target, in the settings' own metric."""
    words = tables.target_words(report.aggregate, report.runs)
    return "at or above the target test accuracy" if words == "the target test accuracy" else f"with {words}"


def targets_set(runs: pd.DataFrame) -> bool:
    """Whether any run trained toward a target accuracy (else the target columns say nothing)."""
    return "config.target" in runs and runs["config.target"].notna().any()


def settings_section(runs: pd.DataFrame) -> Section:
    shared, varying = tables.settings(runs)
    paragraphs = [display(", ".join(f"{k}={v}" for k, v in shared.items()))] if shared else []
    if varying:
        paragraphs.append(display(f"Varying: {', '.join(varying)}"))
    return Section("Settings shared by every run", paragraphs, key="settings")


def provenance(runs: pd.DataFrame) -> dict[str, str]:
    columns = [c for c in runs.columns if c.startswith("provenance.")]
    return {display(c.split(".", 1)[1]): display(", ".join(sorted({str(v) for v in runs[c].dropna()})))
            for c in columns}


def _has_diagnostics(epochs: pd.DataFrame) -> bool:
    return any(c.startswith(("saturation", "dead_")) for c in epochs.columns)


def timing_notes(report) -> str:
    """Where the table's times come from, and whether raw wall clocks compare."""
    notes, runs = [], report.runs
    measured = "cost_train_s_mean" in report.aggregate and report.aggregate["cost_train_s_mean"].notna().any()
    caveat = timing.wall_clock_caveat(runs) if len(runs) else None
    if measured:
        notes.append("Times are optimizer steps x each activation's step time measured apart from training "
                     "(interleaved rounds, see the cost profile): mean ± sd over seeds, and in brackets the 95% CI "
                     "of the mean carrying both the seed-to-seed spread of the steps and the step time's own "
                     "uncertainty (measured in one process); each run's raw wall clock is in runs.csv "
                     "(wall_train_s).")
    elif caveat:
        notes.append(f"Times are the runs' own wall clocks, which measure more than the activation here ({caveat}): "
                     "do not rank activations by them. Run `afbench cost` for step times measured apart.")
    notes += latency_notes(tables.latency_columns(report.aggregate), _unmeasured_latency(report.aggregate, runs))
    if "provenance.compile_s" in runs and runs["provenance.compile_s"].notna().any():
        compiled = runs["provenance.compile_s"].dropna()
        notes.append(f"{len(compiled)} of {len(runs)} runs trained through torch.compile; compiling took "
                     f"{compiled.min():.1f}-{compiled.max():.1f} s per run, in the warm-up, outside the training "
                     "times.")
    return " ".join(notes)


def _unmeasured_latency(aggregate: pd.DataFrame, runs: pd.DataFrame) -> dict[str, list[str]]:
    """Activations with finished runs but no ms/sample from either source, because their
    runs skipped their own timing: {"side by side": [...], "profile": [...]} by why they
    skipped it (several workers at once, or a profile stood for them that no longer matches)."""
    if aggregate.empty or "provenance.latency" not in runs:
        return {}
    done = runs[(runs["status"] == "done") & runs["provenance.latency"].notna()]
    measured = tables.has_value(aggregate, "cost_latency_ms_mean") | tables.has_value(aggregate, "ms_per_sample_mean")
    missing = {str(a) for a in aggregate.loc[~measured, "activation"]}
    beside = done["provenance.concurrent_runs"].fillna(1) > 1 if "provenance.concurrent_runs" in done else \
        pd.Series(False, index=done.index)
    return {why: sorted(missing & set(done.loc[mask, "activation"].astype(str)))
            for why, mask in (("side by side", beside), ("profile", ~beside))}


def latency_notes(columns: dict, unmeasured: dict[str, list[str]] | None = None) -> list[str]:
    """Where each ms/sample column of the table comes from (``tables.latency_columns``),
    and which activations have none, and why (``_unmeasured_latency``)."""
    notes = []
    if "cost_latency_ms" in columns:
        notes.append("ms/sample (cost profile): batch-1 inference latency measured apart from training, in the "
                     "profile's interleaved rounds: geometric mean over rounds and its 95% CI in brackets.")
    if "ms_per_sample" in columns:
        notes.append("ms/sample (in run): batch-1 latency each run timed after its training, while other runs may "
                     "have trained beside it; no cost profile matched these rows (`afbench cost` measures one).")
    unmeasured = unmeasured or {}
    if unmeasured.get("side by side"):
        notes.append(f"No ms/sample for {', '.join(unmeasured['side by side'])}: the runs trained side by side, "
                     "where no run can time its own latency, and no cost profile matched them (`afbench cost` "
                     "measures it alone).")
    if unmeasured.get("profile"):
        notes.append(f"No ms/sample for {', '.join(unmeasured['profile'])}: the runs left it to the cost profile "
                     "measured for their sweep, and no stored profile matches them now (`afbench cost` measures "
                     "one).")
    return notes
