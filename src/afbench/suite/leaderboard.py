"""What a suite run writes: suite.md (the verdict in words), suite.json (the same as
data), figures/suite_*.png and leaderboard.html, one self-contained page (figures
inlined, no network) with a table sortable by any column."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from afbench.report import figures
from afbench.suite import score as scoring

MARKS = {"better": "B", "worse": "W", "equivalent": "=", "undecided": "?"}  # direction-free: PSNR rises, bpc falls


def _figures(result: scoring.SuiteScore, folder: Path) -> dict[str, Path]:
    """The suite's figures: profiles always (when there is more than one workload), the
    critical-difference diagram only when the Friedman test rejects equal ranks."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = {}
    if result.profile is not None:
        fig = figures.plot_performance_profile(result.profile)
        fig.axes[0].set_xlabel("tau (primary metric / the best activation's, per workload)")
        fig.axes[0].set_ylabel("fraction of workloads")
        drawn["Performance profiles of the primary metrics"] = figures.save(fig, folder / "suite_profile.png")
    if result.step_profile is not None:
        fig = figures.plot_performance_profile(result.step_profile)
        fig.axes[0].set_xlabel("tau (step time / the fastest activation's, per workload)")
        fig.axes[0].set_ylabel("fraction of workloads")
        fig.axes[0].set_title("step-time profiles (cost profile on this machine)", fontsize=10)
        drawn["Performance profiles of the step times"] = figures.save(fig, folder / "suite_step_profile.png")
    ranks = result.ranks
    if ranks and ranks.get("p") == ranks.get("p") and ranks["p"] < scoring.stats.ALPHA:
        drawn["Critical-difference diagram"] = figures.save(figures.plot_critical_difference(ranks),
                                                            folder / "suite_cd.png")
    return drawn


def board(result: scoring.SuiteScore) -> pd.DataFrame:
    """One row per activation: where its runs come from, its average rank, per workload
    the mean primary metric and the verdict against the baseline, and its step time
    over the baseline's (measured here; empty for stored activations)."""
    rows = []
    ranks = result.ranks.get("average_ranks", {}) if result.ranks else {}
    for activation in result.activations:
        row = {"activation": activation,
               "role": "baseline" if activation == result.suite.baseline else
               "new" if activation in result.new else "stored",
               "rank": ranks.get(activation, math.nan)}
        for w in result.workloads:
            row[f"{w.name}"] = w.means.get(activation, math.nan)
            row[f"{w.name}_sd"] = w.sds.get(activation, math.nan)
            row[f"{w.name}_verdict"] = (w.board.loc[activation, "verdict"] if activation in w.board.index
                                        else "baseline" if activation == result.suite.baseline else "")
        row["step_x"] = scoring.step_time(result, activation)
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.sort_values(["rank", "activation"], na_position="last", ignore_index=True) if rows else frame


def text_table(result: scoring.SuiteScore, frame: pd.DataFrame) -> tuple[list[str], str]:
    """The leaderboard for a terminal (rows within 80 columns for up to 5 workloads) and
    its legend: best average rank first, per workload the mean primary metric with its
    mark against the baseline, the step time measured here."""
    if frame.empty:
        return [], ""
    widths = [max(9, len(w.name)) for w in result.workloads]
    head = (f"{'activation':<14} {'rank':>5} " + " ".join(f"{w.name:>{n}}" for w, n in zip(result.workloads, widths))
            + " step x")
    rows = [head, "-" * len(head)]
    for _, row in frame.iterrows():
        cells = []
        for w, width in zip(result.workloads, widths):
            value, mark = row[w.name], MARKS.get(row[f"{w.name}_verdict"], " ")
            cells.append(f"{'-' if value != value else f'{value:.4g}':>{width - 2}} {mark}")
        rank = "-" if row["rank"] != row["rank"] else f"{row['rank']:.2f}"
        step = "-" if row["step_x"] != row["step_x"] else f"{row['step_x']:.2f}"
        name = row["activation"] if len(row["activation"]) <= 14 else row["activation"][:13] + "…"
        rows.append(f"{name:<14} {rank:>5} " + " ".join(cells) + f" {step:>6}")
    metrics = ", ".join(f"{w.name}: {w.metric} ({'higher' if w.higher_is_better else 'lower'} is better)"
                        for w in result.workloads)
    legend = (f"{metrics}. B better, W worse, = equivalent, ? undecided against {result.suite.baseline} (paired by "
              f"seed, Holm over the workload's activations); rank: average over workloads; step x: step time / "
              f"{result.suite.baseline}'s, measured here")
    return rows, legend


def _cell(value: float, text: str = "") -> str:
    shown = text or ("-" if value != value else f"{value:.4g}")
    sort = "" if value != value else f"{value:.10g}"
    return f'<td data-v="{sort}">{html.escape(shown)}</td>'


def _table(result: scoring.SuiteScore, frame: pd.DataFrame) -> str:
    head = ["activation", "runs", "average rank"]
    for w in result.workloads:
        head.append(f"{w.name}: {w.metric} ({'higher' if w.higher_is_better else 'lower'} is better)")
    head.append(f"step time x {result.suite.baseline}")
    cells = "".join(f'<th onclick="sortBy({i})">{html.escape(h)}</th>' for i, h in enumerate(head))
    lines = [f"<table id=board><thead><tr>{cells}</tr></thead><tbody>"]
    for _, row in frame.iterrows():
        parts = [f'<td data-v="{html.escape(row["activation"])}">{html.escape(row["activation"])}</td>',
                 f'<td data-v="{row["role"]}">{row["role"]}</td>', _cell(row["rank"])]
        for w in result.workloads:
            mark = MARKS.get(row[f"{w.name}_verdict"], "")
            value = row[w.name]
            text = "-" if value != value else f"{value:.4g} ± {row[f'{w.name}_sd']:.2g} {mark}".strip()
            # sorted best first whatever the direction: higher-is-better values sort negated
            parts.append(_cell(-value if w.higher_is_better and value == value else value, text))
        parts.append(_cell(row["step_x"]))
        lines.append("<tr>" + "".join(parts) + "</tr>")
    return "\n".join(lines + ["</tbody></table>"])


SORT_SCRIPT = """<script>
let order = 1, last = -1;
function sortBy(col) {
  const body = document.querySelector('#board tbody');
  order = col === last ? -order : 1; last = col;
  const rows = [...body.rows];
  const key = r => r.cells[col].dataset.v;
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === '' || y === '') return (x === '') - (y === '');
    const nx = Number(x), ny = Number(y);
    return order * (isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny);
  });
  rows.forEach(r => body.appendChild(r));
}
</script>"""

STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.4}"
         "table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}"
         "th{cursor:pointer;background:#f3f3f3}td:first-child,td:nth-child(2){text-align:left}img{max-width:100%}")


def page(result: scoring.SuiteScore, frame: pd.DataFrame, drawn: dict[str, Path], made: dict | None) -> str:
    suite = result.suite
    verdicts = "".join(f"<li>{html.escape(line)}</li>" for line in scoring.summary_lines(result))
    details = "".join(f"<li>{html.escape(line)}</li>" for line in scoring.workload_lines(result))
    images = "".join(f"<h2>{html.escape(title)}</h2><img alt=\"{html.escape(title)}\" src=\"data:image/png;base64,"
                     f"{base64.b64encode(path.read_bytes()).decode()}\">" for title, path in drawn.items())
    provenance = ("<p>" + html.escape(
        f"Stored baselines: {made['runs']} runs made with afbench {', '.join(made['afbench'])}, torch "
        f"{', '.join(made['torch'])}, Python {', '.join(made['python'])} on {', '.join(made['device'])} "
        f"({', '.join(made['device_name'])}), {', '.join(made['threads'])} threads.") + "</p>" if made else "")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>afbench suite {html.escape(suite.label)}</title>"
            f"<style>{STYLE}</style></head><body><h1>afbench suite {html.escape(suite.label)}</h1>"
            f"<p>{html.escape(suite.description)}. Each workload: {len(suite.seeds)} paired seeds per activation, "
            f"verdicts against {html.escape(suite.baseline)} by the paired permutation test. The table's marks are "
            "Holm-corrected over every activation of the workload (B better, W worse, = practically equivalent, ? "
            "undecided); the verdict sentences of the new activations over the new ones only. Click a column to "
            "sort (best first).</p>"
            f"<h2>Verdict</h2><ul>{verdicts}</ul>{_table(result, frame)}<h2>Per workload</h2><ul>{details}</ul>"
            f"{images}{provenance}{SORT_SCRIPT}</body></html>")


def _no_nan(value):
    """JSON has no NaN: a statistic that could not be computed is null."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write(out: str | Path, result: scoring.SuiteScore, made: dict | None = None) -> dict[str, Path]:
    """Write the suite's files into ``out``; returns their paths by kind."""
    out = Path(out)
    frame = board(result)
    drawn = _figures(result, out / "figures")
    lines = ([f"# afbench suite {result.suite.label}", "", "## Verdict", ""]
             + [f"- {line}" for line in scoring.summary_lines(result)] + ["", "## Per workload", ""]
             + [f"- {line}" if not line.startswith("  ") else f"  - {line.strip()}"
                for line in scoring.workload_lines(result)])
    (out / "suite.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = {"suite": result.suite.name, "version": result.suite.version, "baseline": result.suite.baseline,
            "new": list(result.new), "verdicts": {a: scoring.verdict_line(result, a) for a in result.new},
            "ranks": {k: v for k, v in result.ranks.items()} if result.ranks else {},
            "board": json.loads(frame.to_json(orient="records")), "notes": result.notes}
    (out / "suite.json").write_text(json.dumps(_no_nan(data), indent=1, allow_nan=False), encoding="utf-8")
    (out / "leaderboard.html").write_text(page(result, frame, drawn, made), encoding="utf-8")
    return {"markdown": out / "suite.md", "json": out / "suite.json", "html": out / "leaderboard.html",
            **{f"figure {title}": path for title, path in drawn.items()}}
