"""``--seeds auto`` as a group-sequential design: seeds are added in rounds (looks) and
a comparison with the baseline stops as soon as it is decided.

Looking after every round and stopping at the first small p makes false verdicts
likelier than alpha. Testing each look at alpha / looks (Bonferroni) prevents that
but spends alpha badly (1.3-1.5% familywise in simulation, not 5%) and loses power.
Here instead the alpha is spent over the looks by a Lan-DeMets spending function
(Lan and DeMets 1983; O'Brien-Fleming type by default: almost nothing at 3 seeds,
nearly the whole alpha at the last look), with boundaries from the joint normal
distribution of the test statistic across looks (Armitage, McPherson and Rowe 1969:
recursive numerical integration), turned into a nominal p-level per look and applied
to the exact sign-flip permutation test. A look where the exact test cannot reach its
level at all (2 / 2^n above it) spends nothing and its share carries to the next.

Several comparisons: Holm within each look with the boundaries of level
alpha / (comparisons not yet rejected), recomputed as hypotheses are rejected (the
group-sequential Holm procedure of Maurer and Bretz 2013, Stat. Biopharm. Res. 5).
Equivalence (the futility side) at the same levels: the (1 - 2 level) t interval of
the difference within +-margin (two one-sided tests, Schuirmann 1987), level
alpha / comparisons at that look. bench/sequential.py simulates the familywise
false-verdict rate, the power and the runs used.

The report replays the same looks from the stored runs with the design stored in the
database (meta ``sequential``), so the report and the sweep cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

from afbench.rules import FIRST_SEEDS  # paired seeds every activation starts with (the flags' rule too)
from afbench.stats import settings
from afbench.stats.paired import (ALPHA, DIVERGED, RANGE, WORST, paired_comparison, seed_table,  # noqa: F401
                                  sign_flip_p, t_interval, within_range)

GRID_STEP = 0.01  # of the score grid; boundaries within about 2e-3 in z of a 2x finer grid
SPENDING = ("obrien-fleming", "pocock", "bonferroni")


def seed_rounds(max_seeds: int, first: int = FIRST_SEEDS) -> list[int]:
    """The seed counts at which the data is looked at: ``first``, then about 1.5x
    (at least 3 more) per round, up to ``max_seeds``: 3, 6, 9, 14, 20 for 20."""
    rounds = [min(first, max_seeds)]
    while rounds[-1] < max_seeds:
        rounds.append(min(max_seeds, max(rounds[-1] + 3, math.ceil(1.5 * rounds[-1]))))
    return rounds


@dataclass(frozen=True)
class Design:
    """A group-sequential design, stored with the sweep (meta ``sequential``)."""

    alpha: float = ALPHA  # familywise chance of any false better/worse verdict, over every look
    margin: float = 0.001  # equivalence margin in the metric's units (0.001 = 0.1 pp of error)
    looks: tuple[int, ...] = (3, 6, 9, 14, 20)  # seed counts at which the data is looked at
    spending: str = "obrien-fleming"  # obrien-fleming | pocock | bonferroni (the old alpha / looks)
    metric: str = "error_rate"
    higher_is_better: bool = False
    worst: float | None = None  # a diverged run's value (None: the worst any run reached)
    draws: int = 100_000  # Monte Carlo sign patterns beyond 16 seeds

    def __post_init__(self) -> None:
        if self.spending not in SPENDING:
            raise ValueError(f"unknown spending '{self.spending}': choose one of {', '.join(SPENDING)}")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["looks"] = list(self.looks)
        out["levels"] = list(self.levels(self.alpha))  # for a reader: one comparison's level at each look
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "Design":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "looks": tuple(known.get("looks", cls.looks))})

    def levels(self, alpha: float) -> tuple[float, ...]:
        """The nominal two-sided p-level at each look for a design of overall ``alpha``."""
        return nominal_levels(float(alpha), tuple(self.looks), self.spending)


def spent(t: float, alpha: float, spending: str) -> float:
    """Lan-DeMets spending function: the alpha used up by information fraction t."""
    if t <= 0:
        return 0.0
    if spending == "pocock":
        return alpha * math.log(1 + (math.e - 1) * min(t, 1.0))
    z = stats.norm.isf(alpha / 2)
    return float(2 * stats.norm.sf(z / math.sqrt(min(t, 1.0))))


@lru_cache(maxsize=512)
def nominal_levels(alpha: float, looks: tuple[int, ...], spending: str = "obrien-fleming",
                   exact_floor: bool = True) -> tuple[float, ...]:
    """Two-sided nominal p-levels, one per look at ``looks`` seeds. ``exact_floor``:
    a look whose level is below the smallest p the exact sign-flip test can give
    (2 / 2^n) gets level 0 and spends nothing; its alpha carries to later looks."""
    if spending == "bonferroni":
        return tuple(alpha / len(looks) for _ in looks)
    fractions = np.asarray(looks, dtype=np.float64) / looks[-1]
    h = GRID_STEP
    x = np.arange(-8.0, 8.0 + h / 2, h)  # the score S(t) (Brownian motion, var t), t in (0, 1]
    mass = np.array([1.0])  # continuing paths: probability mass at the points ``at``
    at = np.array([0.0])
    previous, used, out = 0.0, 0.0, []
    for n, t in zip(looks, fractions):
        sigma = math.sqrt(t - previous)
        target = spent(t, alpha, spending) - used
        z, crossed = _boundary(at, mass, sigma, math.sqrt(t), target)
        level = float(2 * stats.norm.sf(z))
        if exact_floor and n <= 16 and level < 2.0 / 2 ** n:
            z, crossed, level = math.inf, 0.0, 0.0
        used += crossed
        inside = x[np.abs(x) <= z * math.sqrt(t)]
        mass = stats.norm.pdf(inside[:, None], loc=at[None, :], scale=sigma) @ mass * h  # continuing at look
        at = inside
        out.append(level)
        previous = t
    return tuple(out)


def _boundary(at: np.ndarray, mass: np.ndarray, sigma: float, root_t: float, target: float) -> tuple[float, float]:
    """The z boundary at which the paths still continuing (``mass`` at ``at``, then a
    step of sd ``sigma``) cross |S| > z sqrt t with probability ``target``, and that
    probability (exact normal tails, so it is continuous in z)."""
    if target <= 0:
        return math.inf, 0.0

    def crossing(z: float) -> float:
        edge = z * root_t
        return float(mass @ (stats.norm.sf((edge - at) / sigma) + stats.norm.cdf((-edge - at) / sigma)))

    low, high = 0.0, 12.0
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if crossing(mid) > target else (low, mid)
    return high, crossing(high)


def decide(diffs: list[np.ndarray], design: Design, look: int, comparisons: int, rejected: int,
           full: bool = True) -> list[dict]:
    """Verdicts at one look for the open comparisons: ``diffs`` their paired
    differences (other - baseline, lower is better), ``comparisons`` how many the
    family holds, ``rejected`` how many earlier looks already decided better/worse.
    ``full``: every column of the paired comparison (t-test, Wilcoxon, ...), else
    only what the decision needs (simulations)."""
    results = [(paired_comparison(np.zeros(len(diff)), diff, draws=design.draws) if full else _brief(diff, design))
               if len(diff) else None for diff in diffs]
    order = sorted(range(len(diffs)), key=lambda i: results[i].p_permutation if results[i] else math.inf)
    verdict = ["undecided"] * len(diffs)
    levels = [0.0] * len(diffs)
    reached = [False] * len(diffs)  # did Holm's step-down test it against its level (not stop before)?
    stepping = True
    for rank, i in enumerate(order):  # Holm: the r-th smallest p against alpha / (open - r)
        levels[i] = design.levels(design.alpha / max(comparisons - rejected - rank, 1))[look]
        reached[i] = stepping
        result = results[i]
        stepping = stepping and result is not None and result.n >= 2 and result.p_permutation < levels[i] \
            and result.mean_diff != 0
        if stepping:
            verdict[i] = "worse" if result.mean_diff > 0 else "better"
    # the t-based equivalence test is not bounded by 2 / 2^n: its levels spend without the exact floor
    equivalence_level = nominal_levels(design.alpha / max(comparisons, 1), tuple(design.looks), design.spending,
                                       exact_floor=False)[look]
    adjusted, running = {}, 0.0
    for i in order:  # p scaled to the overall alpha, monotone as Holm's adjusted p
        p = results[i].p_permutation if results[i] else math.nan
        running = max(running, min(1.0, p * design.alpha / levels[i]) if levels[i] > 0 else 1.0)
        adjusted[i] = running
    out = []
    for i, diff in enumerate(diffs):
        low, high = t_interval(diff, 1 - 2 * equivalence_level) if equivalence_level > 0 else (-math.inf, math.inf)
        if verdict[i] == "undecided" and design.margin > 0 and len(diff) >= 2 and -design.margin <= low \
                and high <= design.margin:  # no margin: no equivalence, even for identical values
            verdict[i] = "equivalent"
        result = results[i].to_dict() if results[i] else {"n": 0, "mean_diff": math.nan, "ci_low": math.nan,
                                                           "ci_high": math.nan, "p_permutation": math.nan}
        # A level only where the step-down got to it: past a stop, no level was ever on offer.
        out.append({**result, "verdict": verdict[i], "level": levels[i] if reached[i] else math.nan,
                    "p_holm": adjusted[i],
                    "equivalence_level": equivalence_level, "equivalence_low": low, "equivalence_high": high,
                    "margin_supported": max(abs(low), abs(high))})
    return out


@dataclass(frozen=True)
class _Brief:
    n: int
    mean_diff: float
    p_permutation: float

    def to_dict(self) -> dict:
        return asdict(self)


def _brief(diff: np.ndarray, design: Design) -> _Brief:
    return _Brief(len(diff), float(np.mean(diff)), sign_flip_p(diff, design.draws)[0])


def replay(frame: pd.DataFrame, baseline: str, design: Design) -> pd.DataFrame:
    """Every comparison with ``baseline`` judged look by look as the sweep judged it:
    at look k the first looks[k] seeds, the open comparisons only. One row per setting
    and activation with its verdict, the look that decided it (or its last look),
    the level tested there and the paired test at that look."""
    parts = []
    frame = settings.with_settings(frame)
    for setting, group in frame.groupby("setting", sort=False):
        table, flags = seed_table(group, design.metric, higher_is_better=design.higher_is_better,
                                  worst=design.worst)
        if baseline not in table.columns:
            continue
        sign = -1.0 if design.higher_is_better else 1.0
        others = [a for a in table.columns if a != baseline]
        final: dict[str, dict] = {}
        rejected = 0
        for look, n in enumerate(design.looks):
            open_now = [a for a in others if a not in final or final[a]["verdict"] == "undecided"]
            ready = [a for a in open_now if _complete(table, baseline, a, n)]
            if not ready:
                break
            # seeds where both diverged are two fills at the worst value: left out, as in paired.compare_with
            both = {a: (flags[a] & flags[baseline]).iloc[:n].to_numpy() for a in ready}
            diffs = [sign * (table[a].iloc[:n] - table[baseline].iloc[:n]).to_numpy()[~both[a]] for a in ready]
            decided = decide(diffs, design, look, len(others), rejected)
            for a, row in zip(ready, decided):
                row.update(mean_diff=sign * row["mean_diff"], ci_low=sign * (row["ci_high"] if sign < 0 else
                           row["ci_low"]), ci_high=sign * (row["ci_low"] if sign < 0 else row["ci_high"]))
                if row["n"] == 0 and both[a].any():
                    row["verdict"] = DIVERGED  # both diverged on every seed: nothing to compare, stop
                kept = ~both[a]
                final[a] = {**row, "look": look, "seeds": n,
                            "diverged": int(flags[a].iloc[:n][kept].sum()),
                            "diverged_reference": int(flags[baseline].iloc[:n][kept].sum()),
                            "both_diverged": int(both[a].sum())}
                rejected += row["verdict"] in ("worse", "better")
            if len(ready) < len(open_now):
                break  # the sweep has not run this look for every open comparison yet
        for a in others:
            if a in final:
                parts.append({"setting": setting, "dataset": group["dataset"].iloc[0],
                              "model": group["model"].iloc[0], "activation": a, **final[a],
                              "family": len(others), "alpha": design.alpha,
                              "max_seeds": design.looks[-1]})
    out = pd.DataFrame(parts)
    if not len(out):
        return pd.DataFrame(columns=["setting", "dataset", "model", "activation", "n", "verdict"])
    return within_range(out, RANGE.get(design.metric))  # the reported ends only: every verdict is made


def _complete(table: pd.DataFrame, baseline: str, activation: str, n: int) -> bool:
    """Both have the first ``n`` seeds (seeds are numbered 0, 1, ... in a sweep)."""
    if len(table) < n:
        return False
    return bool(table[[baseline, activation]].iloc[:n].notna().all().all())


def judged_interval(row) -> tuple[float, float, float, bool]:
    """The interval a comparison row was judged on: (low, high, confidence, looked). A
    --seeds auto look decides equivalence (and what it rules out) on the t interval at
    1 - 2 x the look's level (``decide``); a fixed design on the row's CI."""
    low, high = row.get("equivalence_low"), row.get("equivalence_high")
    if low is not None and high is not None and not pd.isna(low) and not pd.isna(high) \
            and math.isfinite(low) and math.isfinite(high):
        return low, high, 1 - 2 * row["equivalence_level"], True
    return row["ci_low"], row["ci_high"], row.get("confidence", 0.95), False
