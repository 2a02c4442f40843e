"""`afbench report OUT`: everything a reader needs, written from the results store.

Files: summary.md, summary.csv (one row per run), summary_stats.csv (the aggregate
per activation), runs.csv (every column), epochs.csv, summary.tex (booktabs),
figures/*.png and report.html (self-contained: figures embedded as base64).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from afbench import activations
from afbench.errors import AfbenchError
from afbench.report import figures, tables, timing
from afbench.stats import paired as stats
from afbench.report.verdict import verdict_lines
from afbench.results import DIAGNOSTICS, check_epoch_metric, check_metric
from afbench.store.database import Store

EQUIVALENCE = 0.001  # practical-equivalence margin of the verdicts: 0.1 percentage points of error
TAUS = [1 + i / 20 for i in range(41)]  # performance-profile factors 1.0 .. 3.0
MARKS = (f"{tables.WORSE} / {tables.BETTER} on the error: significantly worse / better than the baseline "
         "(exact paired sign-flip permutation test on the per-seed differences, Holm-corrected across "
         "activations, at the level the Verdict states); bold: the top group, the 95% confidence set for the "
         "best error. Means over the runs that reached a target stand beside their count and are never marked; "
         "one seed marks nothing.")
SATURATION_NOTE = ("Diagnostics: saturation is the fraction of pre-activations where |f'(x)| < 0.01. For ReLU "
                   "and its relatives f' is 0 on the whole negative side, so there it counts inactive inputs, not "
                   "a flattening tail as for sigmoid or tanh. Dead units: zero output for every probe sample.")


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
    figures: dict[str, plt.Figure] = field(default_factory=dict)

    def comparison(self, bold=("**", "**")) -> list[dict[str, str]]:
        """The comparison table as strings, ``bold`` around the top group."""
        return tables.comparison_rows(self.aggregate, self.tests, bold, self.top, self.baseline)


def build(store: Store, baseline: str | None = None, equivalence: float = EQUIVALENCE,
          family: str | None = None) -> Report:
    """The report's content. ``family``: Holm over the comparisons of each "setting"
    (default) or over "all" settings at once (kept in meta so the text says which)."""
    records = store.records()
    runs = tables.runs_frame(records)
    baseline = _baseline(baseline, runs)
    kept, choices = tables.select_learning_rates(runs)
    epochs = tables.epochs_frame(store.epoch_records(), runs)
    if len(choices):
        epochs = epochs.merge(kept[["key"]].rename(columns={"key": "run_key"}), on="run_key")
    order = list(dict.fromkeys(runs["activation"])) if len(runs) else []
    aggregate = tables.aggregate(kept, order) if len(kept) else pd.DataFrame()
    cost = timing.load_cost(store.db)
    aggregate = timing.cost_times(aggregate, kept, cost)
    meta = store.meta()
    if family:
        meta["family"] = family
    alpha, design = _tested_as(meta)
    equivalence = design["margin"] if design else equivalence
    tests = tables.significance(kept, baseline, equivalence, alpha, design, meta.get("family", "setting")) \
        if len(kept) else pd.DataFrame()
    report = Report(runs, kept, epochs, aggregate, tests, choices, _ranks(aggregate), meta, baseline,
                    tables.top_groups(kept, alpha) if len(kept) else {}, cost)
    report.figures = _figures(report)
    report.figures.update(_learned_figures(records))
    report.figures.update(_cost_figures(report))
    return report


def _tested_as(meta: dict) -> tuple[float, dict | None]:
    """The familywise alpha and, for a --seeds auto sweep, its group-sequential design
    (meta ``sequential``: margin, looks, levels), so the report tests as the sweep did.
    A sweep from before the design was stored kept its per-look alpha in ``alpha``."""
    design = meta.get("sequential")
    if design:
        return design["alpha"], design
    return meta.get("alpha", stats.ALPHA), None


def _learned_figures(records) -> dict[str, plt.Figure]:
    """Each learnable activation's learned curves per layer, from its first finished seed."""
    out = {}
    for record in records:
        curves = record.summary.learned_curves if record.summary else None
        if not curves:
            continue
        config = record.config
        name = _file_name(f"learned-{config['activation']}-{config['dataset']}-{config['model']}")
        if name not in out:
            out[name] = figures.plot_learned_curves(
                curves, f"{config['activation']} learned (seed {config['seed']}), {config['model']} on "
                        f"{config['dataset']}")
    return out


def _cost_figures(report: Report) -> dict[str, plt.Figure]:
    points = timing.cost_points(report.aggregate, report.cost)
    if points.empty:
        return {}
    return {_file_name(f"error-vs-cost-{dataset}-{model}"): figures.plot_error_vs_cost(
                group, f"test error against cost, {model} on {dataset}")
            for (dataset, model), group in points.groupby(["dataset", "model"], sort=False)}


def _baseline(name: str | None, runs: pd.DataFrame) -> str:
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
    raise AfbenchError(f"baseline '{name}' is not among the activations in this database "
                       f"({', '.join(present)}): choose one of them with --baseline")


def _ranks(aggregate: pd.DataFrame) -> dict:
    """Friedman over settings (data set x model), when there are several, and the
    performance profiles."""
    if aggregate.empty:
        return {}
    scores = aggregate.pivot_table(index=["dataset", "model"], columns="activation", values="error_rate_mean")
    if len(scores) < 2 or scores.shape[1] < 3:
        return {}
    result = stats.friedman(scores, higher_is_better=False)
    result["profile"] = stats.performance_profile(scores, TAUS)
    return result


def _figures(report: Report) -> dict[str, plt.Figure]:
    out = {}
    for (dataset, model), frame in report.epochs.groupby(["dataset", "model"], sort=False):
        tag = _file_name(f"{dataset}-{model}")
        for name, metric, title in (("accuracy", "test_acc", "test accuracy"), ("loss", "test_loss", "test loss"),
                                    ("train-loss", "train_loss", "training loss")):
            if frame[check_epoch_metric(metric)].notna().any():  # diverged runs have no test scores
                out[f"{name}-{tag}"] = figures.plot_curves(frame.dropna(subset=[metric]), metric,
                                                           f"{title}, {model} on {dataset}")
        if "dead_output_mean" in frame:
            out[f"dead-{tag}"] = figures.plot_curves(frame, "dead_output_mean",
                                                     f"dead units (mean over layers), {model} on {dataset}")
        for metric in DIAGNOSTICS:
            if f"{metric}_layer1" in frame:
                out[f"{metric}-{tag}"] = figures.plot_layer_heatmaps(frame, metric, f"{metric}, {model} on {dataset}")
    settings = report.aggregate.groupby(["dataset", "model"], sort=False) if len(report.aggregate) else []
    for (dataset, model), frame in settings:
        if frame["time_to_target_s_mean"].notna().any():
            tag = _file_name(f"{dataset}-{model}")
            out[f"time-to-target-{tag}"] = figures.plot_bars(frame.set_index("activation"), "time_to_target_s",
                                                             f"time to target (95% CI), {model} on {dataset}",
                                                             "seconds")
    if len(report.lr_choices):
        finished = report.runs[report.runs["status"] == "done"]
        for (dataset, model), frame in finished.groupby(["dataset", "model"], sort=False):
            tag = _file_name(f"{dataset}-{model}")
            out[f"lr-sensitivity-{tag}"] = figures.plot_lr_sensitivity(frame, check_metric("accuracy"))
    registered = [a for a in report.runs["activation"].unique() if _elementwise(a)]
    if registered:
        out["activations"] = figures.plot_activations(registered)
    for dataset, counts in report.meta.get("class_counts", {}).items():
        out[_file_name(f"classes-{dataset}")] = figures.plot_class_histogram(
            counts["counts"], counts["classes"])
    if report.ranks and report.ranks["p"] < 0.05:  # a CD diagram only when Friedman rejects equal ranks
        out["critical-difference"] = figures.plot_critical_difference(report.ranks)
    if report.ranks:
        out["performance-profiles"] = figures.plot_performance_profile(report.ranks["profile"])
    return out


def _file_name(text: str) -> str:
    """A figure name usable as a file name. Image-folder data sets carry paths: any
    text that had to change, or is long, gets a short hash of the original, so
    'a/b_c' and 'a/b/c' never share a file and no name overflows."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    if safe == text and len(text) <= 80:
        return text
    return f"{safe[:60]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def _elementwise(name: str) -> bool:
    try:
        return activations.info(name).elementwise
    except KeyError:
        return False  # custom activations have no registry entry


def _markdown(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "_no finished runs yet_\n"
    columns = columns or list(rows[0])
    cell = lambda value: str(value).replace("|", "\\|")  # noqa: E731 (a pipe would split the cell)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                   "±": r"$\pm$", tables.WORSE: r"$\blacktriangle$", tables.BETTER: r"$\blacktriangledown$",
                   "≈": r"$\approx$"}
_BOLD_OPEN, _BOLD_CLOSE = "\x00", "\x01"  # placeholders that no text contains


def latex_escape(text: str) -> str:
    """Text for a LaTeX table cell: every special character escaped."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _latex(rows: list[dict], caption: str) -> str:
    """A complete document (pdflatex summary.tex), booktabs table and its legend."""
    body = []
    if rows:
        columns = list(rows[0])
        cell = lambda v: latex_escape(v).replace(_BOLD_OPEN, r"\textbf{").replace(_BOLD_CLOSE, "}")  # noqa: E731
        body = [r"\begin{tabular}{" + "l" * len(columns) + "}", r"\toprule",
                " & ".join(latex_escape(c) for c in columns) + r" \\", r"\midrule",
                *(" & ".join(cell(r[c]) for c in columns) + r" \\" for r in rows), r"\bottomrule",
                r"\end{tabular}"]
    return "\n".join([r"\documentclass{article}", r"\usepackage[T1]{fontenc}", r"\usepackage{booktabs,amssymb}",
                      r"\usepackage[landscape,margin=1cm]{geometry}", r"\begin{document}", r"\scriptsize",
                      *body, "", latex_escape(caption), r"\end{document}"]) + "\n"


def _tests_rows(report: Report) -> list[dict]:
    rows = []
    for _, t in report.tests.iterrows():
        rows.append({"setting": f"{t['model']}/{t['dataset']}", "activation": t["activation"], "vs": t["baseline"],
                     "n pairs": t["n"], "mean diff (error)": f"{100 * t['mean_diff']:+.3f} pp",
                     f"{100 * t['confidence']:.4g}% CI": f"{100 * t['ci_low']:+.3f} to {100 * t['ci_high']:+.3f} pp",
                     "permutation p (Holm)": f"{t['p_permutation']:.4g} ({t['p_holm']:.4g})",
                     "effect d_z": f"{t['effect_size']:.2f}", "t-test p": f"{t['p_ttest']:.4g}",
                     "Wilcoxon p": f"{t['p_wilcoxon']:.4g}", "verdict": t["verdict"], "note": t["note"]})
    return rows


def _provenance(report: Report) -> dict[str, str]:
    columns = [c for c in report.runs.columns if c.startswith("provenance.")]
    return {c.split(".", 1)[1]: ", ".join(sorted({str(v) for v in report.runs[c].dropna()})) for c in columns}


def _timing_notes(report: Report) -> str:
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
    if "provenance.compile_s" in runs and runs["provenance.compile_s"].notna().any():
        compiled = runs["provenance.compile_s"].dropna()
        notes.append(f"{len(compiled)} of {len(runs)} runs trained through torch.compile; compiling took "
                     f"{compiled.min():.1f}-{compiled.max():.1f} s per run, in the warm-up, outside the training "
                     "times.")
    return " ".join(notes)


def verdict_text(report: Report) -> list[str]:
    alpha, design = _tested_as(report.meta)
    lines = tables.settings_notes(report.kept) + verdict_lines(
        report.aggregate, report.tests, report.top, report.ranks, report.baseline,
        design["margin"] if design else report.meta.get("equivalence", EQUIVALENCE), alpha, design,
        report.meta.get("family", "setting"))
    if design:
        levels = ", ".join(f"{level:.3g}" for level in design["levels"])
        lines.append(f"--seeds auto looked at the data at {', '.join(map(str, design['looks']))} seeds and spent "
                     f"alpha = {alpha:.3g} over the looks ({design['spending']} spending; one comparison's level at "
                     f"each look: {levels}), so the chance of any false better/worse verdict stays at "
                     f"{100 * alpha:.3g}%; equivalence means within ±{100 * design['margin']:.2g} pp.")
    elif alpha < stats.ALPHA:
        lines.append(f"--seeds auto looked at the data after each round of seeds, so every test here is at "
                     f"p < {alpha:.3g} (0.05 split over the rounds), which keeps the chance of any false "
                     "better/worse verdict at 5%.")
    return lines


def markdown(report: Report) -> str:
    parts = ["# afbench results\n", "\n## Verdict\n\n" + "\n".join(f"- {line}" for line in verdict_text(report)) + "\n",
             f"\n## Comparison with {report.baseline}\n\nPer activation: mean ± sd over seeds. {MARKS} Times "
             "exclude evaluation; time to target is the training time at the end of the first epoch at or above the "
             f"target test accuracy. {_timing_notes(report)}\n\n", _markdown(report.comparison())]
    if len(report.lr_choices):
        parts += ["\n## Learning rate chosen per activation (best mean validation accuracy)\n",
                  _markdown(report.lr_choices.to_dict("records"))]
    cost_rows = timing.cost_rows(timing.cost_points(report.aggregate, report.cost))
    if cost_rows:
        parts += ["\n## Cost (measured apart from training; `afbench cost` for the full profile)\n",
                  _markdown(cost_rows)]
    parts += [f"\n## Paired tests against {report.baseline} (test error, runs paired by seed)\n",
              _markdown(_tests_rows(report)) if len(report.tests) else "_needs at least 2 seeds per activation_\n"]
    shared, varying = tables.settings(report.runs)
    parts.append("\n## Settings shared by every run\n\n" + ", ".join(f"{k}={v}" for k, v in shared.items())
                 + (f"\n\nVarying: {', '.join(varying)}" if varying else "") + "\n")
    parts.append(f"\n## Notes\n\n{SATURATION_NOTE}\n")
    prov = _provenance(report)
    parts.append("\n## Provenance\n\n" + "\n".join(f"- {k}: {v}" for k, v in prov.items()) + "\n")
    return "".join(parts)


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def html_page(report: Report, images: dict[str, bytes]) -> str:
    def table(rows):
        if not rows:
            return "<p><em>nothing yet</em></p>"
        page = pd.DataFrame(rows).to_html(index=False, escape=True)
        return page.replace(html.escape(_BOLD_OPEN), "<strong>").replace(html.escape(_BOLD_CLOSE), "</strong>") \
            .replace(_BOLD_OPEN, "<strong>").replace(_BOLD_CLOSE, "</strong>")

    prov = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in _provenance(report).items())
    shared, varying = tables.settings(report.runs)
    setting_text = html.escape(", ".join(f"{k}={v}" for k, v in shared.items()))
    if varying:
        setting_text += "<br>Varying: " + html.escape(", ".join(varying))
    figs = "".join(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
                   f'{base64.b64encode(png).decode()}"><figcaption>{html.escape(name)}</figcaption></figure>'
                   for name, png in images.items())
    verdict = "".join(f"<li>{html.escape(line)}</li>" for line in verdict_text(report))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>afbench report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px}}th{{background:#eee}}figure{{display:inline-block;margin:8px}}
img{{max-width:560px}}</style></head><body>
<h1>afbench report</h1>
<h2>Verdict</h2><ul class="verdict">{verdict}</ul>
<h2>Comparison with {html.escape(report.baseline)}</h2>
<p>Mean ± sd over seeds. {html.escape(MARKS)} {html.escape(_timing_notes(report))}</p>
{table(report.comparison(bold=(_BOLD_OPEN, _BOLD_CLOSE)))}
<h2>Cost</h2>{table(timing.cost_rows(timing.cost_points(report.aggregate, report.cost)))}
<h2>Paired tests against {html.escape(report.baseline)}</h2>{table(_tests_rows(report))}
<h2>Figures</h2>{figs}
<h2>Settings shared by every run</h2><p>{setting_text}</p>
<h2>Notes</h2><p>{html.escape(SATURATION_NOTE)}</p>
<h2>Provenance</h2><ul>{prov}</ul>
</body></html>
"""


def write(folder: str | Path, baseline: str | None = None, family: str | None = None) -> Report:
    """Compute the report from ``folder``/results.sqlite and write every file, for
    any state of the database (empty, all failed, all diverged, one run)."""
    folder = Path(folder)
    if not (folder / "results.sqlite").exists():
        raise FileNotFoundError(f"{folder} holds no results.sqlite: run `afbench run --out {folder}` first")
    (folder / "tests.csv").unlink(missing_ok=True)  # never left stale from an earlier baseline
    store = Store(folder)
    try:
        report = build(store, baseline, family=family)
    finally:
        store.close()
    report.runs[[c for c in tables.RUN_COLUMNS if c in report.runs]].to_csv(folder / "summary.csv", index=False)
    report.runs.to_csv(folder / "runs.csv", index=False)
    report.epochs.to_csv(folder / "epochs.csv", index=False)
    stats_table = tables.with_verdicts(report.aggregate, report.tests, report.baseline)
    stats_table.to_csv(folder / "summary_stats.csv", index=False)
    if len(report.tests):
        report.tests.to_csv(folder / "tests.csv", index=False)
    (folder / "summary.md").write_text(markdown(report))
    (folder / "summary.tex").write_text(_latex(report.comparison(bold=(_BOLD_OPEN, _BOLD_CLOSE)), MARKS))
    images = {}
    (folder / "figures").mkdir(exist_ok=True)
    for name, fig in report.figures.items():
        images[name] = _png(fig)  # rendered once: the same bytes go to the file and into report.html
        (folder / "figures" / f"{name}.png").write_bytes(images[name])
        plt.close(fig)
    (folder / "report.html").write_text(html_page(report, images))
    return report
