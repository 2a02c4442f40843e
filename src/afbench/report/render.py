"""`afbench report OUT`: everything a reader needs, written from the results store.

Three steps, each in its own module: ``build`` computes the report's frames from the
store (here); afbench.report.document and .gallery turn them into the report model
(sections, tables of data cells, figures with captions); each registered writer
(afbench.report.writers: Markdown, LaTeX, HTML, or a plugin's) turns the model into
one file. ``write`` puts every file in place at once, or none (writers.files).

Files: summary.md, summary.csv (one row per run), summary_stats.csv (the aggregate
per activation), runs.csv (every column), epochs.csv, tests.csv, summary.tex
(booktabs), figures/*.png and report.html (self-contained: figures embedded as base64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from afbench import activations
from afbench.errors import AfbenchError
from afbench.report import document, gallery, tables, timing
from afbench.report.model import Document, Figure, Table, display
from afbench.report.pngs import draw_pngs
from afbench.report.verdict import family_line, too_few_seeds, verdict_lines
from afbench.report.writers import FIGURES, FORMATS
from afbench.report.writers.files import csv_bytes, write_all
from afbench.stats import paired as stats, settings as setting_labels
from afbench.store.reading import Reader, StoreView

EQUIVALENCE = 0.001  # practical-equivalence margin of the verdicts: 0.1 percentage points of error
TAUS = [1 + i / 20 for i in range(41)]  # performance-profile factors 1.0 .. 3.0
MARKS, SATURATION_NOTE = document.MARKS, document.SATURATION_NOTE
_file_name = gallery.file_name  # kept for callers of the former name


@dataclass
class Report:
    """The computed content, before it is written anywhere."""

    runs: pd.DataFrame
    kept: pd.DataFrame
    epochs: pd.DataFrame
    aggregate: pd.DataFrame
    tests: pd.DataFrame
    lr_choices: pd.DataFrame
    ranks: dict
    meta: dict
    baseline: str
    top: dict = field(default_factory=dict)  # setting -> its top group by error (stats.best.TopGroup)
    cost: pd.DataFrame = field(default_factory=pd.DataFrame)  # the cost profile, if one was measured
    records: list = field(default_factory=list)  # the store's RunRecords (learned curves)
    equivalence: float = EQUIVALENCE
    figures: dict[str, Figure] = field(default_factory=dict)  # name -> figure, in reading order
    workload_tests: pd.DataFrame = field(default_factory=pd.DataFrame)  # other workloads, in their own metric
    alpha: float = stats.ALPHA  # familywise, as tested
    design: dict | None = None  # a --seeds auto sweep's, with the keys of the runs it judged (_tested_as)

    def table(self) -> Table:
        """The comparison table as data (afbench.report.model cells)."""
        return document.comparison_table(self.aggregate, self.tests, self.top, self.baseline,
                                         document.targets_set(self.runs), self.workload_tests, self.runs)

    def all_tests(self) -> pd.DataFrame:
        """The error tests and the other workloads' (in their own metric) as one frame."""
        return tables.all_tests(self.tests, self.workload_tests)

    def comparison(self, bold=("**", "**")) -> list[dict[str, str]]:
        """The comparison table as text, ``bold`` around the top group (for a console)."""
        return self.table().records(bold)

    def document(self) -> Document:
        return document.build(self, verdict_text(self), list(self.figures.values()))


def build(store: Reader, baseline: str | None = None, equivalence: float = EQUIVALENCE,
          family: str | None = None) -> Report:
    """The report's content. ``family``: Holm over the comparisons of each "setting"
    (default) or over "all" settings at once (kept in meta so the text says which)."""
    records = store.records()
    runs = tables.runs_frame(records)
    baseline = report_baseline(baseline, runs)
    kept, choices = tables.select_learning_rates(runs)
    once = tables.one_per_seed(kept)  # a seed repeated with other measurement settings counts once
    repeated, kept = set(kept["key"]) - set(once["key"]) if len(kept) else set(), once
    epochs = tables.epochs_frame(store.epoch_records(), runs)
    if len(choices):
        epochs = epochs.merge(kept[["key"]].rename(columns={"key": "run_key"}), on="run_key")
    if repeated:
        epochs = epochs[~epochs["run_key"].isin(repeated)]
    order = list(dict.fromkeys(runs["activation"])) if len(runs) else []
    aggregate = tables.aggregate(kept, order) if len(kept) else pd.DataFrame()
    cost = timing.load_cost(store)
    aggregate = timing.cost_latency(timing.cost_times(aggregate, kept, cost), kept, cost)
    aggregate = tables.with_own_metric(aggregate, kept)  # a workload's own metric, where it is not the error
    meta = store.meta()
    if family:
        meta["family"] = family
    alpha, design = _tested_as(meta, records)
    looks = error_design(design)
    # one margin for the tests, the verdict and the figure: the one the sweep used
    equivalence = looks["margin"] if looks else meta.get("equivalence", equivalence)
    images = kept[tables.is_classification(kept)] if len(kept) else kept  # the error tests' runs
    tests = tables.significance(images, baseline, equivalence, alpha, looks, meta.get("family", "setting")) \
        if len(images) else pd.DataFrame()
    report = Report(runs, kept, epochs, aggregate, tests, choices, _ranks(aggregate, images), meta, baseline,
                    tables.top_groups(images, alpha) if len(images) else {}, cost, records, equivalence)
    report.alpha, report.design = alpha, design
    report.workload_tests = tables.workload_tests(kept, baseline, alpha, meta.get("family", "setting"), design) \
        if len(kept) else pd.DataFrame()
    report.figures = {f.name: f for f in gallery.choose(report)}
    return report


def error_design(design: dict | None) -> dict | None:
    """The --seeds auto design where it decided on the test error, else None: a design of
    a workload's metric (mse) says nothing of how the image runs beside it were tested."""
    return design if design and design.get("metric", tables.TESTED) == tables.TESTED else None


def _tested_as(meta: dict, records: list) -> tuple[float, dict | None]:
    """The familywise alpha and, for a --seeds auto sweep, its group-sequential design
    (meta ``sequential``: margin, looks, levels), so the report tests as the sweep did
    (the runs of its settings: ``_with_keys``).
    A sweep from before the design was stored kept its per-look alpha in ``alpha``."""
    design = meta.get("sequential")
    if design:
        return design["alpha"], _with_keys(design, records)
    return meta.get("alpha", stats.ALPHA), None


def _with_keys(design: dict, records: list) -> dict:
    """The design with ``keys``, its runs: those of the settings its sweep ran (design
    ``settings``), which alone its looks judge (tables.under_design)."""
    if "settings" not in design:
        return design
    wanted = set(design["settings"])
    return {**design, "keys": {r.key for r in records if setting_labels.identity(r.config) in wanted}}


def report_baseline(name: str | None, runs: pd.DataFrame) -> str:
    """The stored spelling of ``name`` (registry aliases and case folded); an
    activation the database does not hold is an error that lists the ones it does.
    None: relu if the database holds it, else its first activation."""
    present = list(dict.fromkeys(runs["activation"])) if len(runs) else []
    if name is None:
        name = "relu" if "relu" in present or not present else present[0]
    if not present:
        return name
    try:
        name = activations.info(name).name
    except KeyError:
        pass
    for candidate in present:
        if candidate.lower() == name.lower():
            return candidate
    raise AfbenchError(f"baseline '{display(name)}' is not among the activations in this database "
                       f"({display(', '.join(present))}): choose one of them with --baseline")


def _ranks(aggregate: pd.DataFrame, images: pd.DataFrame) -> dict:
    """Friedman over the settings of the image runs (``images``), one block each, when
    there are several, and the performance profiles. An activation's score in a setting
    is its mean error with each diverged run at 100%, as the tests count it: a run that
    diverged never improves its activation's rank by leaving the mean."""
    if aggregate.empty or not len(images):
        return {}
    rows = aggregate[aggregate["setting"].isin(set(images["setting"]))]
    counted = rows["done"] + rows["diverged"]
    worst = 100 * tables.WORST[tables.TESTED]  # in %, as the aggregate's errors
    score = (rows["error_rate_mean"].fillna(0.0) * rows["done"] + worst * rows["diverged"]) / counted
    scores = rows.assign(score=score.where(counted > 0)).pivot_table(index="setting", columns="activation",
                                                                     values="score")
    scores = scores.dropna()  # Friedman's blocks hold every activation: a setting that lacks one is no block
    if len(scores) < 2 or scores.shape[1] < 3:
        return {}
    result = stats.friedman(scores, higher_is_better=False)
    result["profile"] = stats.performance_profile(scores, TAUS)
    return result


def workload_lines(tests: pd.DataFrame) -> list[str]:
    """The other workloads' verdicts in their own metric and direction."""
    lines = []
    for (setting, metric), group in tests.groupby(["setting", "metric"], sort=False) if len(tests) else []:
        first = group.iloc[0]
        direction = "higher" if first["higher_is_better"] else "lower"
        lines.append(f"On {setting}: test {metric} ({direction} is better), paired "
                     f"by seed against {first['baseline']} ({first['baseline_mean']:.4g}), Holm-corrected:")
        looked = "look" in group and group["look"].notna().all()  # a --seeds auto sweep's looks, replayed
        for _, row in group.iterrows():
            lines.append(f"  {row['activation']}: {row['verdict']}, {metric} {row['mean']:.4g} "
                         f"({row['mean_diff']:+.3g}, {_workload_interval(row)}, {_workload_p(row, looked)}, "
                         f"{int(row['n'])} seed{'s' if row['n'] != 1 else ''}"
                         f"{stats.interval_note(row['verdict'], *_shown_interval(row))})")
        if looked and (group["verdict"] == "undecided").any():
            # seeds run, not pairs compared: a seed both runs diverged on counts towards the cap
            seeds, most = int(group["seeds" if "seeds" in group else "n"].max()), int(group["max_seeds"].max())
            lines.append(f"  Undecided at --max-seeds {most}: a new sweep with a larger --max-seeds, in its own --out, "
                         "could decide it." if seeds >= most
                         else f"  Undecided after {seeds} of at most {most} seeds: rerun the same command to continue "
                              "the looks.")
        elif (group["verdict"] == "undecided").any():  # the guidance the error's undecided verdicts give
            alpha = float(first["alpha"]) if "alpha" in group and not pd.isna(first["alpha"]) else stats.ALPHA
            advice = too_few_seeds(int(first.get("family", len(group)) or len(group)), int(group["n"].max()), alpha)
            lines.append(f"  {advice}." if advice else "  Undecided: more seeds (--seeds N, or --seeds auto) would "
                         "narrow the intervals.")
    return lines


def _workload_p(row, looked: bool) -> str:
    """The test's p as the verdict used it: Holm-adjusted in a fixed design, or, in a
    --seeds auto sweep, the permutation p against the level its look allowed."""
    if looked and row["verdict"] in ("better", "worse"):
        return (f"p = {row['p_permutation']:.3g} at look {int(row['look']) + 1} against the level "
                f"{row['level']:.3g} the group-sequential design and Holm allow there")
    if looked:  # its step's level is no promise: Holm's step-down may have stopped before it
        return (f"p = {row['p_permutation']:.3g} at look {int(row['look']) + 1}, not enough for the "
                "group-sequential design with Holm")
    return f"adjusted p = {row['p_holm']:.3g}"


def _simultaneous(row) -> bool:
    return int(row.get("family", 1) or 1) > 1 and not pd.isna(row.get("sim_low"))


def _shown_interval(row) -> tuple[float, float]:
    """The ends of the interval ``_workload_interval`` shows (NaN where it shows none)."""
    if pd.isna(row.get("ci_low")) or row["n"] < 2:
        return math.nan, math.nan
    return (row["sim_low"], row["sim_high"]) if _simultaneous(row) else (row["ci_low"], row["ci_high"])


def _workload_interval(row) -> str:
    """The interval that matches a Holm p (simultaneous over the family), or why none."""
    if pd.isna(row.get("ci_low")) or row["n"] < 2:
        return "no interval from one seed"
    if _simultaneous(row):
        return (f"{100 * row['sim_confidence']:.3g}% CI {row['sim_low']:+.3g} to {row['sim_high']:+.3g}, "
                f"simultaneous over the {int(row['family'])} comparisons")
    unadjusted = " (unadjusted)" if int(row.get("family", 1) or 1) > 1 or not pd.isna(row.get("look")) else ""
    return f"{100 * row.get('confidence', 0.95):.4g}% CI {row['ci_low']:+.3g} to {row['ci_high']:+.3g}{unadjusted}"


def verdict_text(report: Report) -> list[str]:
    alpha, design = report.alpha, report.design  # as build tested, not read again
    looks = error_design(design)
    images = set(report.kept.loc[tables.is_classification(report.kept), "setting"]) if len(report.kept) else set()
    aggregate = report.aggregate[report.aggregate["setting"].isin(images)] if len(report.aggregate) else \
        report.aggregate  # the other workloads say theirs in their own metric (workload_lines)
    lines = tables.settings_notes(report.runs)  # before one_per_seed: it counts the repeats
    if len(aggregate) or report.workload_tests.empty:
        lines += verdict_lines(aggregate, report.tests, report.top, report.ranks, report.baseline,
                               looks["margin"] if looks else report.meta.get("equivalence", EQUIVALENCE), alpha,
                               looks, report.meta.get("family", "setting"), report.all_tests())
    lines += workload_lines(report.workload_tests)
    if not len(aggregate) and len(report.workload_tests):  # workloads alone: their families, said once
        lines.append(family_line(report.workload_tests, report.baseline, alpha, report.meta.get("family", "setting")))
    if design:
        lines += seeds_auto_lines(report, design, alpha, bool(len(aggregate)))
    elif alpha < stats.ALPHA:
        lines.append(f"--seeds auto looked at the data after each round of seeds, so every test here is at "
                     f"p < {alpha:.3g} (0.05 split over the rounds), which keeps the chance of any false "
                     "better/worse verdict at 5%.")
    return [display(line) for line in lines]


def seeds_auto_lines(report: Report, design: dict, alpha: float, images: bool) -> list[str]:
    """What a --seeds auto sweep's design means, in the units of the metric it tested
    (design ``metric``): ±0.1 pp of test error, or ±0.001 mse. Its looks test that one
    metric: a workload whose primary metric it is not (sweeps that decided on the test
    error, which regression, language-model or PDE runs do not have) is said to have been
    judged by the fixed-design tests above, without a margin, never by the looks."""
    metric = design.get("metric", tables.TESTED)
    levels = ", ".join(f"{level:.3g}" for level in design["levels"])
    margin = (f"within ±{100 * design['margin']:.2g} pp" if metric == tables.TESTED
              else f"within ±{design['margin']:.3g} {tables.metric_label(metric, report.runs)}" if design["margin"]
              else f"nothing: no margin is defined in {tables.metric_label(metric, report.runs)}, so each comparison "
                   "ran until it was better or worse, or to the most seeds")
    own = list(dict.fromkeys(report.workload_tests["metric"])) if len(report.workload_tests) else []
    tested = [m for m in own if m == metric] or (images and metric == tables.TESTED)
    lines = []
    if tested:
        lines.append(f"--seeds auto{_where(report, design)} looked at the data at "
                     f"{', '.join(map(str, design['looks']))} seeds and spent "
                     f"alpha = {alpha:.3g} over the looks ({design['spending']} spending; one comparison's level at "
                     f"each look: {levels}), so the chance of any false better/worse verdict stays at "
                     f"{100 * alpha:.3g}%{' in each setting it judged' if len(design.get('settings', [])) > 1 else ''}; "
                     f"equivalence means {margin}.")
    untested = [m for m in own if m != metric] + (["test error"] if images and metric != tables.TESTED else [])
    if untested:
        names = " / ".join(m if m == "test error" else tables.metric_label(m, report.runs) for m in untested)
        what = "the test error" if metric == tables.TESTED else f"the test {metric}"
        lines.append(f"--seeds auto decided on {what}, which the {names} runs do not have: their verdicts above "
                     f"are the fixed-design Holm tests of the {names} over the seeds run, with no equivalence "
                     "margin.")
    return lines


def _where(report: Report, design: dict) -> str:
    """' (on mlp / digits, epochs=1)': the settings the design judged, where the folder
    also holds others (which the fixed-design tests judged); else ''."""
    if "keys" not in design or not len(report.kept):
        return ""
    mine = report.kept["key"].isin(design["keys"])
    if mine.all():
        return ""
    return f" (on {'; '.join(dict.fromkeys(report.kept.loc[mine, 'setting']))})"


def files(report: Report) -> dict[str, bytes]:
    """Every file of the report: relative path -> content."""
    tests = report.all_tests()
    own = [] if not len(report.runs) or tables.is_classification(report.runs).all() else tables.OWN_RUN_COLUMNS
    # counted: whether the tables and tests use the run (not another rate's, nor a repeated seed's)
    runs = report.runs.assign(counted=report.runs["key"].isin(report.kept["key"]) if len(report.kept) else False) \
        if "key" in report.runs else report.runs
    at = len(tables.IDENTITY) + 1  # after the setting and the identity, status last
    columns = tables.RUN_COLUMNS[:at] + ["counted"] + tables.RUN_COLUMNS[at:]
    out = {"summary.csv": csv_bytes(runs[[c for c in columns + own if c in runs]]),
           "runs.csv": csv_bytes(report.runs), "epochs.csv": csv_bytes(report.epochs),
           "summary_stats.csv": csv_bytes(tables.with_verdicts(report.aggregate, tests, report.baseline))}
    if len(tests):
        out["tests.csv"] = csv_bytes(tests)
    images = draw_pngs(list(report.figures.values()))  # drawn once: the same bytes go to the file and the html
    out.update({f"{FIGURES}/{name}.png": image for name, image in images.items()})
    model = report.document()
    for _, writer in FORMATS.items():
        writer = writer() if isinstance(writer, type) else writer  # a plugin may name its class
        out[writer.file_name] = writer.render(model, images).encode("utf-8")
    return out


def write(folder: str | Path, baseline: str | None = None, family: str | None = None) -> Report:
    """Compute the report from ``folder``/results.sqlite and write every file, for
    any state of the database (empty, all failed, all diverged, one run): all of them,
    or (a full disk) none, with an AfbenchError naming them."""
    folder = Path(folder)
    if not (folder / "results.sqlite").exists():
        raise FileNotFoundError(f"{folder} holds no results.sqlite: run `afbench run --out {folder}` first")
    store = StoreView(folder)  # read-only: a report never changes the results
    try:
        report = build(store, baseline, family=family)
    except AfbenchError:
        (folder / "tests.csv").unlink(missing_ok=True)  # an earlier baseline's tests never pass for this one
        raise
    finally:
        store.close()
    write_all(folder, files(report))
    if not len(report.all_tests()):
        (folder / "tests.csv").unlink(missing_ok=True)  # never left stale beside a report without tests
    return report
