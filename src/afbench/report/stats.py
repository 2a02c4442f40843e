"""Statistics over seeds and settings: spread, paired tests, ranks.

References: Holm (1979) step-down correction; Demsar (2006), "Statistical
Comparisons of Classifiers over Multiple Data Sets" (Friedman test, Nemenyi
critical difference).
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

WILCOXON_MIN_N = 6  # below this, the exact two-sided Wilcoxon p-value cannot reach 0.05


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


def paired_tests(frame: pd.DataFrame, metric: str, baseline: str) -> pd.DataFrame:
    """Each activation against ``baseline``, runs paired by seed.

    Returns one row per other activation: n pairs, mean difference, paired t-test and
    Wilcoxon signed-rank p-values, both Holm-corrected across activations, and a note
    when n is too small for Wilcoxon to reach p < 0.05.
    """
    pivot = frame.pivot_table(index="seed", columns="activation", values=metric, aggfunc="mean")
    rows = []
    if baseline not in pivot.columns:
        return pd.DataFrame(rows)
    for activation in [a for a in pivot.columns if a != baseline]:
        pair = pivot[[activation, baseline]].dropna()
        diff = (pair[activation] - pair[baseline]).to_numpy()
        n = len(diff)
        t_p = w_p = math.nan
        if n >= 2 and np.any(diff != 0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_p = float(stats.ttest_rel(pair[activation], pair[baseline]).pvalue)
                w_p = float(stats.wilcoxon(diff).pvalue)
        elif n >= 2:
            t_p = w_p = 1.0  # identical results: no evidence of a difference
        rows.append({"activation": activation, "n": n, "mean_diff": float(diff.mean()) if n else math.nan,
                     "t_p": t_p, "wilcoxon_p": w_p,
                     "note": f"n={n} < {WILCOXON_MIN_N}: Wilcoxon cannot reach p < 0.05" if n < WILCOXON_MIN_N
                     else ""})
    result = pd.DataFrame(rows)
    if len(result):
        result["t_p_holm"] = holm(result["t_p"])
        result["wilcoxon_p_holm"] = holm(result["wilcoxon_p"])
    return result


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
