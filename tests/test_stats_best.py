"""Issue 29: a top group with an error guarantee (afbench.stats.best). The reference is
a simulation of the null (identical activations), where any exclusion is an error."""

import math

import numpy as np
import pandas as pd
import pytest

from afbench.stats import best


def frame(values: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "d", "model": "m", "activation": a, "seed": s, "status": "done", "e": v}
                         for a, column in values.items() for s, v in enumerate(column)])


def test_seven_identical_activations_are_kept_together_95_percent_of_the_time():
    """The audit's case: 7 identical activations, 10 seeds. Picking the lowest mean and
    testing the others against it excluded one in 11% of 500 sweeps; the confidence
    set for the best must exclude any in at most 5% (plus simulation error)."""
    rng = np.random.default_rng(11)
    sweeps, excluded = 500, 0
    for _ in range(sweeps):
        x = 0.003 * rng.standard_normal((10, 7)) + 0.01 * rng.standard_normal((10, 1))  # seed effect shared
        excluded += len(best.best_set(x, 0.05, draws=199, rng=rng)) < 7
    bound = 0.05 + 2 * math.sqrt(0.05 * 0.95 / sweeps)
    assert excluded / sweeps <= bound


def test_a_clearly_worse_activation_is_excluded_and_close_ones_stay():
    rng = np.random.default_rng(2)
    seed_effect = 0.01 * rng.standard_normal(10)
    values = {a: list(0.10 + seed_effect + 0.002 * rng.standard_normal(10)) for a in ("relu", "elu", "gelu")}
    values["sigmoid"] = list(0.30 + seed_effect + 0.002 * rng.standard_normal(10))
    group = best.top_group(frame(values), "e")
    assert not group.cannot_rank and "sigmoid" not in group.members
    assert set(group.members) == {"relu", "elu", "gelu"}


def test_direction_keeps_the_highest_when_higher_is_better():
    rng = np.random.default_rng(3)
    values = {"a": list(30 + rng.standard_normal(10) * 0.1), "b": list(25 + rng.standard_normal(10) * 0.1)}
    assert best.top_group(frame(values), "e", higher_is_better=True).members == ["a"]
    assert best.top_group(frame(values), "e", higher_is_better=False).members == ["b"]


def test_an_activation_with_fewer_seeds_is_never_the_reference():
    """--seeds auto stopped sigmoid at 3 seeds with a lucky low mean: it is listed as not
    ranked, and the ranked ones are compared over their own 10 seeds."""
    rng = np.random.default_rng(4)
    values = {"relu": list(0.10 + 0.002 * rng.standard_normal(10)),
              "elu": list(0.101 + 0.002 * rng.standard_normal(10)), "sigmoid": [0.05, 0.05, 0.05]}
    group = best.top_group(frame(values), "e")
    assert group.unranked == ["sigmoid"] and group.seeds == 10 and set(group.members) == {"relu", "elu"}


def test_cannot_rank_when_no_difference_can_be_significant():
    group = best.top_group(frame({"relu": [0.1, 0.11, 0.12], "tanh": [0.82, 0.83, 0.85]}), "e")
    assert group.members == [] and "no difference can reach p < 0.05" in group.cannot_rank
    assert best.smallest_p(2, 5) == pytest.approx(2 / 32)  # the two-sided sign-flip floor at 5 seeds
    assert best.smallest_p(3, 2) == pytest.approx(1 / 6)  # 3! relabellings of 3!^2 permutations
