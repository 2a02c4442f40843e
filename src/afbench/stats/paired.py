"""Statistics over seeds and settings: spread, paired comparisons, verdicts, ranks.

The primary test is the exact sign-flip permutation test on the mean of paired
differences: valid at any n, with no normality assumption, and honest at small n
(with 2 seeds no difference can reach p < 0.5). The t-test and Wilcoxon are shown
beside it, never used to mark anything.

References: Holm (1979) step-down correction; Fisher (1935) / Pitman (1937)
permutation tests; Demsar (2006), "Statistical Comparisons of Classifiers over
Multiple Data Sets" (Friedman test, Nemenyi critical difference); Dolan and Moré
(2002), performance profiles.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from afbench.stats import settings

WILCOXON_MIN_N = 6  # below this many non-zero differences, two-sided Wilcoxon cannot reach p < 0.05
EXACT_MAX_N = 16  # sign-flip test: every one of the 2^n patterns up to here, Monte Carlo beyond
MONTE_CARLO_DRAWS = 100_000
ALPHA = 0.05
DIVERGED = "diverged"  # the verdict when both sides diverged on every seed: nothing to compare
WORST = {"error_rate": 1.0}  # a diverged run's value where the metric has a worst one: every answer wrong
# The range a metric's values lie in, where it has one (in its stored units: an error rate is a fraction), so
# that the difference of two values lies in [low - high, high - low]: +-1, +-100 pp, for an error rate. Metrics
# without a range (mse, bits per character, PSNR: unbounded above) are left out: their intervals are never clipped.
RANGE = {"error_rate": (0.0, 1.0)}
INTERVALS = (("ci_low", "ci_high"), ("sim_low", "sim_high"), ("equivalence_low", "equivalence_high"))


def describe(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample sd, n and the half-width of the 95% t confidence interval."""
    x = np.asarray([v for v in values if v is not None and not pd.isna(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"mean": math.nan, "sd": math.nan, "n": 0, "ci95": math.nan}
    sd = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
    return {"mean": float(x.mean()), "sd": sd, "n": n, "ci95": half}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full_like(p, np.nan)
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = len(order), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class PairedComparison:
    """``other`` against ``baseline``, paired by seed. Differences are other - baseline."""

    n: int  # pairs
    n_nonzero: int  # pairs whose difference is not zero (what Wilcoxon uses)
    mean_diff: float
    ci_low: float  # t interval of the mean difference at ``confidence``
    ci_high: float
    confidence: float
    p_permutation: float  # exact two-sided sign-flip test (Monte Carlo beyond EXACT_MAX_N pairs)
    permutation_draws: int  # 0: exact over all 2^n sign patterns
    p_ttest: float  # scipy's ttest_rel; NaN when every difference is equal (zero variance)
    p_wilcoxon: float  # scipy's wilcoxon signed-rank; 1 when every difference is zero
    effect_size: float  # d_z = mean / sd of the differences (Cohen's paired d); +-inf if sd = 0 and mean != 0
    note: str

    def to_dict(self) -> dict:
        return asdict(self)


def sign_flip_p(diff: np.ndarray, draws: int = MONTE_CARLO_DRAWS, seed: int = 0) -> tuple[float, int]:
    """Two-sided p of the mean of paired differences under random sign flips (the null:
    each pair's two results are exchangeable). Exact over all 2^n patterns for
    n <= EXACT_MAX_N; beyond, ``draws`` random patterns with p = (1 + hits) / (1 + draws),
    which is never below its exact value in expectation. Returns (p, draws; 0 = exact)."""
    diff = np.asarray(diff, dtype=np.float64)
    n = len(diff)
    if n == 0:
        return math.nan, 0
    observed = abs(diff.mean())
    tolerance = 1e-12 * max(1.0, float(np.abs(diff).max()))  # equal sums in another order are equal
    if n <= EXACT_MAX_N:
        patterns = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2 - 1  # (2^n, n) of +-1
        flipped = np.abs(patterns @ np.abs(diff)) / n
        return float(np.mean(flipped >= observed - tolerance)), 0
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, draws, 10_000):
        signs = rng.choice((-1.0, 1.0), size=(min(10_000, draws - start), n))
        hits += int(np.sum(np.abs(signs @ np.abs(diff)) / n >= observed - tolerance))
    return (1 + hits) / (1 + draws), draws


def paired_comparison(baseline: Sequence[float], other: Sequence[float], *, confidence: float = 0.95,
                      draws: int = MONTE_CARLO_DRAWS) -> PairedComparison:
    """Compare ``other`` with ``baseline`` (sequences paired by seed, same length)."""
    a, b = np.asarray(baseline, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    diff = b - a
    n = len(diff)
    nonzero = int(np.count_nonzero(diff))
    mean = float(diff.mean()) if n else math.nan
    sd = float(diff.std(ddof=1)) if n > 1 else math.nan
    if n > 1 and sd <= 1e-9 * float(np.abs(diff).max()):
        sd = 0.0  # equal differences summed in another order: floating-point noise, not variance
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
    p_perm, used = sign_flip_p(diff, draws)
    p_t = p_w = math.nan
    if n > 1 and sd > 0:
        p_t = float(stats.ttest_rel(b, a).pvalue)
    if n > 0 and nonzero == 0:
        p_w = 1.0
    elif nonzero > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p_w = float(stats.wilcoxon(diff).pvalue)
    effect = (mean / sd if sd > 0 else 0.0 if mean == 0 else math.copysign(math.inf, mean)) if n > 1 else math.nan
    notes = []
    if n < 2:
        notes.append("one pair tests nothing")
    if nonzero < WILCOXON_MIN_N:
        notes.append(f"{nonzero} non-zero differences < {WILCOXON_MIN_N}: Wilcoxon cannot reach p < 0.05")
    if n > 1 and sd == 0:
        notes.append("every difference is equal: t-test undefined")
    return PairedComparison(n, nonzero, mean, mean - half, mean + half, confidence, p_perm, used, p_t, p_w, effect,
                            "; ".join(notes))


def t_interval(diff: np.ndarray, confidence: float) -> tuple[float, float]:
    """The t interval of the mean of ``diff`` at ``confidence`` (NaN below 2 values)."""
    n = len(diff)
    if n < 2:
        return math.nan, math.nan
    mean, sd = float(np.mean(diff)), float(np.std(diff, ddof=1))
    if sd <= 1e-9 * float(np.abs(diff).max()):
        sd = 0.0
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n))
    return mean - half, mean + half


def within_range(tests: pd.DataFrame, bounds: tuple[float, float] | None) -> pd.DataFrame:
    """``tests`` with the ends of every interval of a difference (INTERVALS) clipped to
    the differences that can exist between two values in ``bounds`` (low, high):
    [low - high, high - low], +-100 pp for an error rate; None leaves them as they are.

    Why: a t interval knows nothing of the metric's range. Over few seeds with wildly
    different errors its half-width (t_{n-1} sd / sqrt n; 4.3 sd / sqrt 3 at 3 seeds)
    can exceed 100 pp, an impossible difference of two error rates. The true difference
    always lies within the range, so an interval that covered it still covers it once
    clipped: the coverage is unchanged, only the impossible part goes. The range is
    the plain one (+-1), not one narrowed by the baseline's observed mean error: that
    mean is an estimate, and an interval cut at it could miss the true difference.

    Only the reported ends change: call it after every p-value and verdict is computed
    (they are exact and stay so); ``margin_supported``, the farthest end from 0, follows
    the clipped ends."""
    if bounds is None or tests.empty:
        return tests
    low, high = bounds
    tests = tests.copy()
    for start, end in INTERVALS:
        if start in tests and end in tests:
            tests[start] = tests[start].clip(lower=low - high, upper=high - low)
            tests[end] = tests[end].clip(lower=low - high, upper=high - low)
    if "margin_supported" in tests:  # max(|start|, |end|) of ends clipped to +-(high - low)
        tests["margin_supported"] = tests["margin_supported"].clip(upper=high - low)
    return tests


def interval_note(verdict: str, low: float, high: float) -> str:
    """A caveat for a better/worse verdict printed beside an interval that includes 0.
    The verdict is the exact sign-flip permutation test's, which assumes no normal
    differences; the interval is a t interval, which one seed's outlying difference
    widens (seen: 9 of 10 seeds worse and one far worse, p = 0.006, a 95% CI from
    -0.005 to +0.030). '' where they agree."""
    if verdict in ("better", "worse") and low <= 0 <= high:
        return ("; the t interval includes 0: an outlying seed widens it, while the verdict is the exact "
                "permutation test's, which does not assume normal differences")
    return ""


def seeds_needed(comparisons: int, alpha: float = ALPHA) -> int:
    """The fewest paired seeds at which the exact two-sided sign-flip test can reach
    significance for one of ``comparisons`` Holm-corrected comparisons: its smallest
    p is 2 / 2^n (every difference of one sign), and Holm's first step multiplies it
    by the number of comparisons. 6 for one comparison at 0.05 (2/64 < 0.05 <= 2/32)."""
    n = 1
    while max(comparisons, 1) * 2.0 / 2 ** n >= alpha:
        n += 1
    return n


def seed_table(frame: pd.DataFrame, metric: str, *, higher_is_better: bool = False,
               worst: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """seed x activation table of ``metric`` over finished runs, diverged runs counted
    at ``worst`` (None: the worst value any run of ``frame`` reached), so that an
    activation is judged with its divergences, never over its survivors only. Returns
    (values, diverged: a boolean table of the same shape). Failed runs (a crash, not
    the activation's doing) stay out."""
    kept = frame[frame["status"].isin(["done", "diverged"])]
    values = kept.pivot_table(index="seed", columns="activation", values=metric, aggfunc="mean", dropna=False)
    flags = kept.assign(_diverged=kept["status"] == "diverged").pivot_table(
        index="seed", columns="activation", values="_diverged", aggfunc="max", dropna=False)
    flags = flags.reindex(index=values.index, columns=values.columns).fillna(False).astype(bool)
    if worst is None:
        finished = kept.loc[kept["status"] == "done", metric].dropna()
        worst = (finished.min() if higher_is_better else finished.max()) if len(finished) else math.nan
    values = values.mask(flags, worst)
    return values, flags


def compare_with(frame: pd.DataFrame, metric: str, reference: str, alpha: float = ALPHA,
                 confidence: float | None = None, *, higher_is_better: bool = False,
                 worst: float | None = None) -> pd.DataFrame:
    """Every other activation of one setting against ``reference``, paired by seed,
    Holm-corrected (permutation p) across them. One row per activation, with the
    unadjusted (1 - alpha) CI (ci_low, ci_high) and the simultaneous one that matches
    the family (sim_low, sim_high: Bonferroni over the comparisons, so every interval
    of the family covers its difference with probability >= 1 - alpha together);
    ``diverged``: pairs where this activation diverged (counted at ``worst``);
    ``both_diverged``: seeds where both diverged, left out of the test (two fills at
    the worst value differ by 0, which measures nothing): when that is every seed, n is
    0 and the verdict is "diverged" (nothing to compare), never "equivalent"."""
    table, flags = seed_table(frame, metric, higher_is_better=higher_is_better, worst=worst)
    rows = []
    if reference not in table.columns:
        return pd.DataFrame(rows)
    others = [a for a in table.columns if a != reference]
    for activation in others:
        both = flags[reference] & flags[activation]
        pair = table.loc[~both, [reference, activation]].dropna()
        result = paired_comparison(pair[reference], pair[activation], confidence=confidence or 1 - alpha)
        if not len(pair) and both.any():
            result = replace(result, note="both diverged on every seed: nothing to compare")
        sim_confidence = 1 - alpha / max(len(others), 1)
        low, high = t_interval((pair[activation] - pair[reference]).to_numpy(), sim_confidence)
        rows.append({"activation": activation, **result.to_dict(), "sim_low": low, "sim_high": high,
                     "sim_confidence": sim_confidence, "diverged": int(flags.loc[pair.index, activation].sum()),
                     "diverged_reference": int(flags.loc[pair.index, reference].sum()),
                     "both_diverged": int(both.sum())})
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"] = holm(out["p_permutation"])
    return out


def verdicts(frame: pd.DataFrame, metric: str = "error_rate", baseline: str = "relu", equivalence: float = 0.001,
             alpha: float = ALPHA, higher_is_better: bool = False, worst: float | None = None,
             family: str = "setting", bounds: tuple[float, float] | None = None) -> pd.DataFrame:
    """Per setting (afbench.stats.settings: data set, model and every other config
    value but activation, seed and learning rate) and activation: is it better or
    worse than ``baseline`` (Holm-corrected permutation p < ``alpha``, direction from
    the mean difference and ``higher_is_better``), practically equivalent (the
    (1 - alpha) CI of the mean difference lies within +-``equivalence``, in the
    metric's units: 0.001 = 0.1 percentage points of error), or undecided? Diverged
    runs count at ``worst`` (see seed_table) where the other side of the pair
    finished; seeds where both diverged are left out, and "diverged" is the verdict
    when that is every seed (n = 0: nothing to compare). ``frame``: one row per run with dataset,
    model, activation, seed, status and ``metric`` (and config.* columns, if any).
    ``margin_supported``: the smallest equivalence margin the data supports (the CI's
    farthest end from 0); ``family``: how many comparisons Holm corrects over, those
    of one setting (``family="setting"``) or of every setting (``family="all"``).
    ``bounds``: the range of the metric's values (default RANGE[metric], if any), to
    which the reported intervals are clipped once the verdicts are made (within_range)."""
    parts = []
    frame = settings.with_settings(frame)
    for setting, group in frame.groupby("setting", sort=False):
        tests = compare_with(group, metric, baseline, alpha, higher_is_better=higher_is_better, worst=worst)
        if tests.empty:
            continue
        tests.insert(0, "model", group["model"].iloc[0])
        tests.insert(0, "dataset", group["dataset"].iloc[0])
        tests.insert(0, "setting", setting)
        tests["verdict"] = [_verdict(row, alpha, equivalence, higher_is_better) for _, row in tests.iterrows()]
        tests["margin_supported"] = np.maximum(tests["ci_low"].abs(), tests["ci_high"].abs())
        tests["family"] = len(tests)
        tests["alpha"] = alpha
        parts.append(tests)
    if not parts:
        return pd.DataFrame(columns=["setting", "dataset", "model", "activation", "n", "verdict"])
    out = pd.concat(parts, ignore_index=True)
    if family == "all" and len(parts) > 1:
        out = _one_family(out, alpha, equivalence, higher_is_better)  # scales the unclipped intervals
    return within_range(out, bounds or RANGE.get(metric))


def _one_family(tests: pd.DataFrame, alpha: float, equivalence: float, higher_is_better: bool) -> pd.DataFrame:
    """Holm and the simultaneous intervals over every comparison of every setting."""
    m = len(tests)
    tests = tests.assign(p_holm=holm(tests["p_permutation"]), family=m, sim_confidence=1 - alpha / m)
    n = tests["n"].clip(lower=2) - 1
    unadjusted = stats.t.ppf(0.5 + tests["confidence"] / 2, n)
    scale = np.where(unadjusted > 0, stats.t.ppf(1 - alpha / (2 * m), n) / unadjusted, np.nan)
    half = (tests["ci_high"] - tests["ci_low"]) / 2 * scale
    tests["sim_low"], tests["sim_high"] = tests["mean_diff"] - half, tests["mean_diff"] + half
    tests["verdict"] = [_verdict(row, alpha, equivalence, higher_is_better) for _, row in tests.iterrows()]
    return tests


def _verdict(row, alpha: float, equivalence: float, higher_is_better: bool) -> str:
    if row["n"] == 0 and row.get("both_diverged", 0) > 0:
        return DIVERGED  # every pair diverged on both sides: no error rate to compare
    if row["n"] >= 2 and row["p_holm"] < alpha and row["mean_diff"] != 0:
        return "better" if (row["mean_diff"] > 0) == higher_is_better else "worse"
    # No margin (a workload's metric has none): no equivalence, even for identical values.
    if equivalence > 0 and row["n"] >= 2 and -equivalence <= row["ci_low"] and row["ci_high"] <= equivalence:
        return "equivalent"
    return "undecided"


def performance_profile(scores: pd.DataFrame, taus: Sequence[float]) -> pd.DataFrame:
    """Dolan-Moré: for each activation (column), the fraction of settings (rows) where
    its score (lower is better, positive) is within a factor tau of the best one."""
    scores = scores.dropna()
    ratios = scores.div(scores.min(axis=1), axis=0)
    return pd.DataFrame({a: [(ratios[a] <= tau).mean() for tau in taus] for a in scores.columns}, index=list(taus))


def nemenyi_cd(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks for k methods over n blocks:
    q_alpha * sqrt(k (k + 1) / (6 N)), q_alpha the studentized range quantile / sqrt 2."""
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n_blocks)))


def friedman(scores: pd.DataFrame, higher_is_better: bool = True) -> dict:
    """Average ranks (1 = best) of the columns over the rows (blocks, e.g. settings),
    the Friedman test and the Nemenyi critical difference."""
    scores = scores.dropna()
    ranks = (-scores if higher_is_better else scores).rank(axis=1, method="average")
    out = {"average_ranks": ranks.mean().sort_values().to_dict(), "blocks": len(scores), "k": scores.shape[1],
           "statistic": math.nan, "p": math.nan, "cd": math.nan}
    if scores.shape[1] >= 3 and len(scores) >= 2:
        result = stats.friedmanchisquare(*[scores[c] for c in scores.columns])
        out.update(statistic=float(result.statistic), p=float(result.pvalue),
                   cd=nemenyi_cd(scores.shape[1], len(scores)))
    return out
