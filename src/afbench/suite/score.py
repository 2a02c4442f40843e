"""Scoring a suite: per workload, each activation against the suite's baseline in the
workload's own primary metric and direction (paired by seed, Holm-corrected); across
workloads, average ranks with the Friedman test (the Nemenyi critical difference only
when it rejects), Dolan-Moré performance profiles on the primary metrics and on the
step times this machine measured, and a verdict in plain words per new activation.

Two families: the verdicts of the new activations are corrected over the new ones
only (the stored baselines' comparisons are known already and would only dilute the
test); the leaderboard's verdicts over every activation of the workload."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from afbench.report import frames
from afbench.stats import paired as stats
from afbench.store.reading import StoreView
from afbench.suite.definition import Suite

TAUS = [1 + i / 20 for i in range(41)]  # performance-profile factors 1.0 .. 3.0
DONE = ("done", "diverged")


@dataclass
class WorkloadScore:
    name: str
    metric: str
    higher_is_better: bool
    equivalence: float
    means: pd.Series  # activation -> mean primary metric over finished seeds
    sds: pd.Series
    seeds: pd.Series  # activation -> finished seeds
    tests: pd.DataFrame  # the new activations against the baseline (their own family)
    board: pd.DataFrame  # every activation against the baseline (the leaderboard's family)
    step_ratio: pd.Series  # activation -> step time / the baseline's, measured here (NaN: not measured)


@dataclass
class SuiteScore:
    suite: Suite
    new: tuple[str, ...]
    workloads: list[WorkloadScore]
    ranks: dict = field(default_factory=dict)  # stats.friedman over the workloads, activations on all of them
    profile: pd.DataFrame | None = None  # primary-metric performance profile
    step_profile: pd.DataFrame | None = None  # step-time performance profile
    notes: list[str] = field(default_factory=list)

    @property
    def activations(self) -> list[str]:
        seen = {a for w in self.workloads for a in w.means.index}
        return sorted(seen, key=lambda a: (a != self.suite.baseline, a not in self.new, a))


def _tag_workloads(runs: pd.DataFrame, suite: Suite) -> pd.DataFrame:
    """Each run's suite workload (by workload, data set and model); other runs dropped."""
    def name_of(row) -> str | None:
        workload = suite.workload_of(row.get("config.workload") or "classification", row["dataset"], row["model"])
        return workload.name if workload else None

    if runs.empty:
        return runs.assign(suite_workload=pd.Series(dtype=str))
    runs = runs.assign(suite_workload=runs.apply(name_of, axis=1))
    return runs[runs["suite_workload"].notna()]


def _step_ratios(out, suite: Suite) -> dict[tuple[str, str], pd.Series]:
    """(model, data set) -> activation -> step time / the baseline's, from the newest
    cost profile measured in ``out`` (never from stored runs: the baselines ship none)."""
    with StoreView(out) as view:
        rows = [r for r in view.cost_rows() if r.get("baseline") == suite.baseline and r.get("step_ratio")]
    ratios: dict[tuple[str, str], dict[str, float]] = {}
    for row in sorted(rows, key=lambda r: r.get("measured_at") or 0):  # newest last, so it wins
        ratios.setdefault((row["model"], row["dataset"]), {})[row["activation"]] = float(row["step_ratio"])
    return {key: pd.Series(value, dtype=float) for key, value in ratios.items()}


def _same(a, b) -> bool:
    """Config values equal across JSON and pandas (15 and 15.0, None and NaN)."""
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v))
    if missing(a) or missing(b):
        return missing(a) and missing(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return str(a) == str(b)


IGNORED = ("activation", "seed", "device", "data_fingerprint")  # device: one class per folder (check_folder)


def _suite_runs(w, group: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """The runs of ``w``'s own configuration: runs of the same workload, data and model
    at another learning rate, budget or setting (a folder may hold them) never count."""
    expected = w.configs(("relu",), (0,))[0]
    keep = pd.Series(True, index=group.index)
    for name in expected.__dataclass_fields__:
        column = f"config.{name}"
        if name in IGNORED or column not in group:
            continue
        keep &= group[column].map(lambda v, want=getattr(expected, name): _same(v, want))
    if (~keep).any():
        notes.append(f"{w.name}: {int((~keep).sum())} runs of other settings (learning rate, budget, ...) in this "
                     "folder are left out")
    return group[keep]


def _worst(group: pd.DataFrame, metric: str, higher: bool) -> float:
    """The value a diverged run counts as: the metric's worst (100% error) where it has
    one, else the worst finished value of any activation on the workload."""
    if metric in stats.WORST:
        return stats.WORST[metric]
    finished = group.loc[group["status"] == "done", "primary_value"].dropna()
    return float(finished.min() if higher else finished.max()) if len(finished) else math.nan


def _tests(group: pd.DataFrame, baseline: str, equivalence: float, higher: bool, worst: float,
           metric: str) -> pd.DataFrame:
    # the intervals are clipped to what a difference of ``metric`` can be (+-1 for an error rate), if it has a range
    tests = stats.verdicts(group, "primary_value", baseline, equivalence=equivalence, higher_is_better=higher,
                           worst=worst, bounds=stats.RANGE.get(metric))
    if not len(tests):
        return pd.DataFrame(columns=["verdict"])
    # an activation that diverged is never "equivalent": the margin says nothing of a run that failed
    tests.loc[(tests["verdict"] == "equivalent") & (tests["diverged"] + tests["diverged_reference"]
                                                 + tests.get("both_diverged", 0) > 0),
              "verdict"] = "undecided"
    return tests.set_index("activation")


def _workload(w, group: pd.DataFrame, suite: Suite, new: tuple[str, ...], ratios, notes: list[str]):
    group = _suite_runs(w, group, notes)
    finished = group[group["status"] == "done"]
    metric = str(finished["primary_metric"].dropna().iloc[0]) if finished["primary_metric"].notna().any() \
        else "error_rate"
    higher = bool(finished["higher_is_better"].dropna().iloc[0]) if finished["higher_is_better"].notna().any() \
        else False
    worst = _worst(group, metric, higher)
    values = group.assign(primary_value=group["primary_value"].where(group["status"] == "done", worst))
    by = values.groupby("activation")["primary_value"]  # diverged seeds counted at the worst value
    ours = group[group["activation"].isin((suite.baseline,) + new)]
    step = ratios.get((w.study.models[0], w.study.datasets[0]), pd.Series(dtype=float))
    return WorkloadScore(w.name, metric, higher, w.equivalence, by.mean(), by.std(), by.count(),
                         _tests(ours, suite.baseline, w.equivalence, higher, worst, metric),
                         _tests(group, suite.baseline, w.equivalence, higher, worst, metric), step)


def score(out, suite: Suite, new: tuple[str, ...]) -> SuiteScore:
    """The suite's results in ``out`` scored; ``new``: the activations being judged."""
    runs = _tag_workloads(frames.load(out), suite)
    runs = runs[runs["status"].isin(DONE)]
    ratios = _step_ratios(out, suite)
    result = SuiteScore(suite, tuple(new), [])
    for w in suite.workloads:
        group = runs[runs["suite_workload"] == w.name]
        if group.empty:
            result.notes.append(f"{w.name}: no finished runs")
            continue
        result.workloads.append(_workload(w, group, suite, tuple(new), ratios, result.notes))
    _across(result)
    return result


def _costs(w: WorkloadScore) -> pd.Series:
    """Positive, lower-is-better costs for the performance profile: the metric itself,
    or its reciprocal where higher is better (PSNR): either way the ratio to the best
    is how many times worse an activation is."""
    return 1.0 / w.means if w.higher_is_better else w.means


def _across(result: SuiteScore) -> None:
    """Ranks, Friedman and profiles over the activations that ran on every workload."""
    if len(result.workloads) < 2:
        return
    everywhere = set.intersection(*(set(w.means.dropna().index) for w in result.workloads))
    names = [a for a in result.activations if a in everywhere]
    oriented = pd.DataFrame({w.name: (-w.means if w.higher_is_better else w.means) for w in result.workloads}).T
    if len(names) >= 2:
        result.ranks = stats.friedman(oriented[names], higher_is_better=False)
    costs = pd.DataFrame({w.name: _costs(w) for w in result.workloads}).T[names] if names else None
    if costs is not None and (costs > 0).all().all() and np.isfinite(costs.to_numpy()).all():
        result.profile = stats.performance_profile(costs, TAUS)
    elif costs is not None:
        result.notes.append("no performance profile of the metrics: a workload's metric is not positive")
    steps = pd.DataFrame({w.name: w.step_ratio for w in result.workloads if len(w.step_ratio)}).T
    measured = [a for a in names if a in steps.columns and steps[a].notna().all()]
    if len(steps) >= 1 and len(measured) >= 2:
        result.step_profile = stats.performance_profile(steps[measured], TAUS)


# ---- in plain words -------------------------------------------------------------------------------


def _difference(w: WorkloadScore, row) -> str:
    return f"{w.name}, {row['mean_diff']:+.3g} {w.metric}, p = {row['p_holm']:.2g}"


def step_time(result: SuiteScore, activation: str) -> float:
    """The geometric mean over workloads of the step time over the baseline's."""
    values = [w.step_ratio[activation] for w in result.workloads if activation in w.step_ratio
              and w.step_ratio[activation] > 0]
    return float(math.exp(np.mean(np.log(values)))) if values else math.nan


def verdict_line(result: SuiteScore, activation: str, board: bool = False) -> str:
    """'x: better than relu on 2 of 5 workloads (inr, pinn), equivalent on 1, worse
    on 1 (charlm, +0.04 bpc, p = 0.01), undecided on 1; 1.3x relu's step time'."""
    baseline = result.suite.baseline
    counted = {"better": [], "equivalent": [], "worse": [], "undecided": [], "diverged": []}
    for w in result.workloads:
        tests = w.board if board else w.tests
        if activation in tests.index:
            counted[tests.loc[activation, "verdict"]].append((w, tests.loc[activation]))
    total = sum(len(v) for v in counted.values())
    if not total:
        return f"{activation}: no paired comparison with {baseline} (no finished runs on the same seeds)"
    relation = {"better": f"better than {baseline}", "worse": f"worse than {baseline}",
                "equivalent": f"equivalent to {baseline}", "undecided": f"undecided against {baseline}",
                "diverged": f"not comparable with {baseline} (both diverged on every seed)"}
    parts = []
    for verdict in ("better", "equivalent", "worse", "undecided", "diverged"):
        found = counted[verdict]
        if not found:
            continue
        first = not parts  # the first part says against what and out of how many
        text = f"{relation[verdict] if first else verdict} on {len(found)}{f' of {total} workloads' if first else ''}"
        if verdict in ("better", "worse"):
            text += f" ({'; '.join(_difference(w, row) for w, row in found)})"
        elif verdict in ("undecided", "diverged"):
            text += f" ({', '.join(w.name for w, _ in found)})"
        parts.append(text)
    ratio = step_time(result, activation)
    cost = (f"; {ratio:.2f}x {baseline}'s step time (cost profile on this machine, geometric mean over "
            "workloads)" if ratio == ratio else "; step time not measured here")
    return f"{activation}: " + ", ".join(parts) + cost


def ranks_line(result: SuiteScore) -> str:
    ranks = result.ranks
    if not ranks:
        return ""
    order = ", ".join(f"{a} {r:.2f}" for a, r in ranks["average_ranks"].items())
    head = f"Average ranks over the {ranks['blocks']} workloads (1 = best): {order}"
    if ranks["p"] != ranks["p"]:
        return head + "; the Friedman test needs at least 3 activations on 2 workloads."
    if ranks["p"] < stats.ALPHA:
        return (head + f". The Friedman test rejects equal ranks (p = {ranks['p']:.3g}); ranks further apart than "
                f"the Nemenyi critical difference {ranks['cd']:.2f} differ (critical-difference diagram).")
    return (head + f". The Friedman test does not reject equal ranks (p = {ranks['p']:.3g}): no ranking across "
            "workloads is supported, so no critical-difference diagram is drawn.")


def summary_lines(result: SuiteScore) -> list[str]:
    """The suite verdict: one line per new activation, the ranks, the notes."""
    lines = [verdict_line(result, a) for a in result.new]
    ranks = ranks_line(result)
    return lines + ([ranks] if ranks else []) + result.notes


def workload_lines(result: SuiteScore) -> list[str]:
    """Per workload: the metric, the baseline's mean and each new activation's verdict."""
    lines = []
    baseline = result.suite.baseline
    for w in result.workloads:
        direction = "higher" if w.higher_is_better else "lower"
        head = (f"{w.name}: {w.metric} ({direction} is better, equal within ±{w.equivalence:g}); {baseline} "
                f"{w.means.get(baseline, math.nan):.4g} over {int(w.seeds.get(baseline, 0))} seeds")
        lines.append(head)
        for activation in result.new:
            if activation not in w.tests.index:
                lines.append(f"  {activation}: no paired runs")
                continue
            t = w.tests.loc[activation]
            lines.append(f"  {activation}: {t['verdict']}, {w.metric} {w.means.get(activation, math.nan):.4g} "
                         f"({t['mean_diff']:+.3g}, 95% CI {t['ci_low']:+.3g} to {t['ci_high']:+.3g}, adjusted p = "
                         f"{t['p_holm']:.2g}, {int(t['n'])} seeds"
                         f"{stats.interval_note(t['verdict'], t['ci_low'], t['ci_high'])})")
    return lines
