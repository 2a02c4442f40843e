"""--seeds auto: seeds are added in rounds, only where the comparison is undecided."""

import pandas as pd
import pytest

from afbench.config import RunConfig
from afbench.stats import sequential
from afbench.sweep import Grid, LocalBackend, Runtime, execute_until_decided
from afbench.sweep.execute import seed_rounds
from afbench.store.database import Store

QUIET = Runtime(progress=False, workers=1, stack=1)


def test_rounds_grow_and_end_at_the_maximum():
    assert seed_rounds(20) == [3, 6, 9, 14, 20]
    assert seed_rounds(8) == [3, 6, 8]
    assert seed_rounds(3) == [3]


def test_seeds_are_added_only_where_undecided(tmp_path, monkeypatch):
    """A stand-in decision rule: tanh is decided once it has 6 seeds, sigmoid never."""
    seen = []

    def replay(frame: pd.DataFrame, baseline, design):
        seen.append((frame.groupby("activation")["seed"].nunique().to_dict(), design))
        counts = frame.groupby("activation")["seed"].nunique()
        return pd.DataFrame([{"dataset": "digits", "model": "mlp", "activation": a,
                              "verdict": "worse" if a == "tanh" and counts[a] >= 6 else "undecided"}
                             for a in counts.index if a != baseline])

    monkeypatch.setattr(sequential, "replay", replay)
    grid = Grid(RunConfig(epochs=1, latency_samples=5), ("relu", "tanh", "sigmoid"))
    outcome = execute_until_decided(grid, tmp_path, LocalBackend(QUIET), baseline="relu", max_seeds=8, device="cpu")
    assert [s for s, _ in seen] == [{"relu": 3, "tanh": 3, "sigmoid": 3}, {"relu": 6, "tanh": 6, "sigmoid": 6},
                                    {"relu": 8, "tanh": 6, "sigmoid": 8}]
    assert all(design.looks == (3, 6, 8) and design.alpha == 0.05 for _, design in seen)
    assert outcome.stopped == {"tanh": "worse", "sigmoid": "undecided at 8 seeds (max seeds)"}
    store = Store(tmp_path)
    assert store.meta()["seeds_auto"]["tanh"] == {"stopped": "worse", "seeds": 6}
    stored = store.meta()["sequential"]  # the report replays the looks with the sweep's own design
    assert stored["margin"] == 0.001 and stored["looks"] == [3, 6, 8] and stored["baseline"] == "relu"
    assert stored["levels"] == pytest.approx(list(sequential.nominal_levels(0.05, (3, 6, 8))))
    assert len(store.records()) == 8 + 6 + 8
    # Rerun (as after kill -9): everything is read back, nothing retrained.
    again = execute_until_decided(grid, tmp_path, LocalBackend(QUIET), baseline="relu", max_seeds=8, device="cpu")
    assert again.counts["ran"] == 0 and again.stopped == outcome.stopped


def test_the_baseline_must_be_in_the_sweep(tmp_path):
    from afbench.errors import AfbenchError

    with pytest.raises(AfbenchError, match="not among the activations"):
        execute_until_decided(Grid(RunConfig(epochs=1), ("tanh", "elu")), tmp_path, baseline="relu")
