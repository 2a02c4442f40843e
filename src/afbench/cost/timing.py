"""Interleaved timing rounds and paired ratio confidence intervals.

Every round times every activation once, in an order shuffled per round by a seeded
RNG, so drift of the machine (a neighbour starting, frequency scaling) hits all
activations alike. A ratio is paired within a round: t_act / t_baseline measured
minutes apart would carry the drift; measured in the same round it mostly cancels.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import stats

TARGET_HALF_WIDTH = 0.03  # stop when every ratio's 95% CI is within +-3% of the ratio
MIN_ROUNDS = 5  # a t interval on fewer rounds is too wide to trust the stopping rule


def ratio_ci(ratios, level: float = 0.95) -> tuple[float, float, float]:
    """Geometric mean ratio and its ``level`` confidence interval from paired per-round ratios.

    Method: a Student t interval on the log ratios (log t_act - log t_base per round),
    mapped back with exp, so the interval is multiplicative and never goes below zero.
    Fewer than two ratios: (ratio, nan, nan).
    """
    logs = np.log(np.asarray(ratios, dtype=float))
    centre = float(np.exp(logs.mean())) if len(logs) else math.nan
    if len(logs) < 2:
        return centre, math.nan, math.nan
    sem = logs.std(ddof=1) / math.sqrt(len(logs))
    half = stats.t.ppf(0.5 + level / 2, len(logs) - 1) * sem
    return centre, float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))


def within(low: float, centre: float, high: float, half_width: float = TARGET_HALF_WIDTH) -> bool:
    """True when [low, high] lies within centre x (1 +- half_width)."""
    if math.isnan(low) or math.isnan(high):
        return False
    return high <= centre * (1 + half_width) and low >= centre * (1 - half_width)


@dataclass
class Rounds:
    """What the interleaved rounds measured: per activation, one dict of phase times per round."""

    names: list[str]
    baseline: str
    orders: list[list[str]] = field(default_factory=list)  # the shuffled order of each round
    times: dict[str, list[dict]] = field(default_factory=dict)  # name -> [{phase: ms}, ...] per round
    stop: str = ""  # "converged", "budget" or "max_rounds"
    elapsed_s: float = 0.0

    @property
    def count(self) -> int:
        return len(self.orders)

    def ratios(self, name: str, phase: str = "step_ms") -> list[float]:
        """Per-round paired ratios t_name / t_baseline of ``phase``."""
        return [a[phase] / b[phase] for a, b in zip(self.times[name], self.times[self.baseline])]

    def ratio_ci(self, name: str, phase: str = "step_ms") -> tuple[float, float, float]:
        return ratio_ci(self.ratios(name, phase))

    def median(self, name: str, phase: str) -> float:
        return float(np.median([t[phase] for t in self.times[name]]))

    def converged(self, half_width: float = TARGET_HALF_WIDTH) -> bool:
        """Every ratio's 95% CI within its ratio x (1 +- half_width)."""
        for name in self.names:
            if name != self.baseline:
                centre, low, high = self.ratio_ci(name)
                if not within(low, centre, high, half_width):
                    return False
        return True


def run_rounds(names: list[str], measure: Callable[[str], dict], baseline: str, budget_s: float, *,
               seed: int = 0, min_rounds: int = MIN_ROUNDS, max_rounds: int = 200,
               half_width: float = TARGET_HALF_WIDTH, clock: Callable[[], float] = time.perf_counter) -> Rounds:
    """Call ``measure(name)`` (-> {phase: ms}) for every name once per round, in a
    shuffled order, until every ratio's CI is within ``half_width`` (after at least
    ``min_rounds``), ``budget_s`` seconds are spent, or ``max_rounds`` ran.

    A round is never cut short, so every activation has the same number of rounds.
    """
    if baseline not in names:
        raise ValueError(f"baseline '{baseline}' is not among {names}")
    rng = np.random.default_rng(seed)
    result = Rounds(list(names), baseline, times={n: [] for n in names})
    start = clock()
    while True:
        order = [names[i] for i in rng.permutation(len(names))]
        for name in order:
            result.times[name].append(measure(name))
        result.orders.append(order)
        result.elapsed_s = clock() - start
        if result.count >= min_rounds and result.converged(half_width):
            result.stop = "converged"
        elif result.elapsed_s >= budget_s and result.count >= 2:
            result.stop = "budget"
        elif result.count >= max_rounds:
            result.stop = "max_rounds"
        if result.stop:
            return result
