"""The top group: the activations that the data cannot tell from the best one, with
an error guarantee. Picking the lowest mean after the fact and testing the others
against it excludes an activation truly as good as the best far more often than 5%
(11% with 7 identical activations and 10 seeds). Here instead:

A step-down max-T permutation procedure (Westfall and Young 1993, "Resampling-Based
Multiple Testing"; the closed-testing view of multiple comparisons with the best,
Hsu 1996). Within each seed the activations' results are exchangeable when they are
equally good, so the seed's values are permuted among the activations; the statistic
is the largest paired t over every ordered pair (i worse than j). An activation is
excluded when its own largest paired t exceeds the (1 - alpha) quantile of that
maximum; the excluded ones are dropped and the rest tested again until nothing more
is excluded. Under "all equally good" any exclusion has chance <= alpha exactly
(tests/test_stats_best.py checks it by simulation).

Only activations with the most finished seeds are ranked (an activation stopped
early by --seeds auto, or with missing seeds, never serves as the reference: its
mean rests on fewer seeds); the others are listed as not ranked. Diverged runs count
at the worst value (afbench.stats.paired.seed_table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from afbench.stats.paired import ALPHA, seed_table

DRAWS = 2000  # within-seed permutations; p = (1 + hits) / (1 + draws) is valid at any count


@dataclass(frozen=True)
class TopGroup:
    """``members``: the confidence set for the best (empty when ``cannot_rank``)."""

    members: list[str] = field(default_factory=list)
    ranked: list[str] = field(default_factory=list)  # the activations the procedure looked at
    unranked: list[str] = field(default_factory=list)  # fewer seeds than the most any activation has
    seeds: int = 0
    cannot_rank: str = ""  # why no top group, else ""


def _max_t(x: np.ndarray) -> np.ndarray:
    """x: (..., n, k) values per seed and activation, lower is better. Returns (..., k):
    for each activation i the largest paired t of (x_i - x_j) over j != i."""
    d = x[..., :, :, None] - x[..., :, None, :]  # (..., n, k, k): i minus j per seed
    n = x.shape[-2]
    mean = d.mean(axis=-3)
    sd = d.std(axis=-3, ddof=1)
    scale = np.abs(x).max() if x.size else 1.0
    t = mean / np.sqrt(sd ** 2 / n + (1e-12 * max(scale, 1e-300)) ** 2)  # equal values: a finite, huge t
    k = x.shape[-1]
    t[..., np.arange(k), np.arange(k)] = -np.inf
    return t.max(axis=-1)


def _permuted_maxima(x: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """The largest paired t over all ordered pairs, for ``draws`` within-seed permutations."""
    out = []
    for start in range(0, draws, 500):  # bounded memory: (500, n, k, k) at a time
        b = min(500, draws - start)
        order = np.argsort(rng.random((b, *x.shape)), axis=-1)
        permuted = np.take_along_axis(np.broadcast_to(x, (b, *x.shape)), order, axis=-1)
        out.append(_max_t(permuted).max(axis=-1))
    return np.concatenate(out)


def smallest_p(k: int, n: int) -> float:
    """The smallest p the permutation test can give with k activations and n seeds:
    relabelling the activations the same way in every seed leaves the maximum
    unchanged, so at least k! of the (k!)^n permutations tie with the data."""
    return math.exp((1 - n) * math.lgamma(k + 1)) if k >= 2 and n >= 1 else 1.0


def top_group(frame: pd.DataFrame, metric: str, *, alpha: float = ALPHA, higher_is_better: bool = False,
              worst: float | None = None, draws: int = DRAWS, seed: int = 0) -> TopGroup:
    """The activations of one setting (``frame``: its runs) not excluded from the best
    by the step-down max-T permutation procedure at ``alpha``."""
    table, _ = seed_table(frame, metric, higher_is_better=higher_is_better, worst=worst)
    if table.empty:
        return TopGroup(cannot_rank="no finished runs")
    counts = table.count()
    most = int(counts.max())
    ranked = [a for a in table.columns if counts[a] == most]
    unranked = [a for a in table.columns if counts[a] < most]
    data = table[ranked].dropna()
    n, k = data.shape
    if k < 2:
        return TopGroup(ranked=ranked, unranked=unranked, seeds=n,
                        cannot_rank=f"only {ranked[0]} has {most} seeds; the others have fewer")
    if smallest_p(k, n) >= alpha:
        return TopGroup(ranked=ranked, unranked=unranked, seeds=n,
                        cannot_rank=f"with {k} activations and {n} seed{'s' if n != 1 else ''} no difference can "
                                    f"reach p < {alpha:.3g}")
    x = data.to_numpy(dtype=np.float64) * (-1.0 if higher_is_better else 1.0)  # (n, k), lower is better
    keep = best_set(x, alpha, draws, np.random.default_rng(seed))
    return TopGroup(members=[ranked[i] for i in keep], ranked=ranked, unranked=unranked, seeds=n)


def best_set(x: np.ndarray, alpha: float = ALPHA, draws: int = DRAWS,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """Column indices of ``x`` ((n seeds, k activations), lower is better) that the
    step-down max-T procedure keeps in the confidence set for the best."""
    rng = rng or np.random.default_rng(0)
    keep = np.arange(x.shape[1])
    while len(keep) > 1:
        sub = x[:, keep]
        observed = _max_t(sub)
        maxima = _permuted_maxima(sub, draws, rng)
        tolerance = 1e-9 * np.abs(observed[np.isfinite(observed)]).max(initial=1.0)
        p = (1 + (maxima[None, :] >= observed[:, None] - tolerance).sum(axis=1)) / (1 + draws)
        out = p < alpha
        if not out.any():
            break
        keep = keep[~out]
    return keep
