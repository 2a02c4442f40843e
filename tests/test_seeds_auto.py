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


class Synthetic:
    """A backend that 'trains' instantly: error = a per-activation offset + seeded noise.
    Claiming, recording and resuming stay the sweep driver's."""

    name = "synthetic"

    def __init__(self, offsets: dict[str, float], sd: float = 0.003):
        self.offsets, self.sd = offsets, sd
        self.runtime = Runtime(progress=False, cost="off")

    def check(self, configs):
        pass

    def data(self, config):
        from afbench.sweep.prepared import DataCache

        return DataCache().get(config)

    def plan(self, pending):
        return {"workers": 1, "threads": 1, "stack": 1, "how": "synthetic"}

    def call(self, task, *args, timeout_s=None):
        from afbench.sweep.prepared import DataCache

        return task(DataCache(), *args)

    def run(self, jobs, sink, plan):
        import numpy as np

        from afbench.engine.train import RunResult
        from afbench.results import EpochRecord, RunSummary, Status

        for job in jobs:
            sink.started(job)
            results = []
            for config in job.configs:
                noise = np.random.default_rng([config.seed, len(config.activation)]).standard_normal()
                error = 0.1 + self.offsets[config.activation] + self.sd * noise
                epoch = EpochRecord(1, 0.5, 0.8, 1.0, 1.0, train_steps=10, test_loss=0.4, test_acc=1 - error)
                sink.epoch(job, 0, epoch)
                summary = RunSummary(params=1000, epochs_run=1, total_train_s=1.0, train_steps=10, error_rate=error,
                                     accuracy=1 - error, f1=1 - error)
                results.append(RunResult(config, Status.DONE, [epoch], summary, {"stack_size": 1}))
            sink.finished(job, results)

    def close(self, kill=False):
        pass


def test_the_report_says_what_the_sweep_decided_with_its_margin(tmp_path):
    """The audit's case: with --equivalence 4 the console said 'tanh: equivalent' and the
    report, at its own ±0.1 pp, called it undecided and suggested more seeds."""
    from afbench.report import render

    grid = Grid(RunConfig(epochs=1), ("relu", "tanh", "sigmoid"))
    outcome = execute_until_decided(grid, tmp_path, Synthetic({"relu": 0.0, "tanh": 0.001, "sigmoid": 0.05}),
                                    baseline="relu", max_seeds=20, equivalence=0.04, device="cpu")
    report = render.write(tmp_path, "relu")
    verdicts = report.tests.set_index("activation")["verdict"].to_dict()
    assert outcome.stopped["tanh"] == verdicts["tanh"] == "equivalent"
    assert outcome.stopped["sigmoid"] == verdicts["sigmoid"] == "worse"
    text = " ".join(render.verdict_text(report))
    assert "within ±4 pp" in text and "more seeds" not in text
    store = Store(tmp_path)
    seeds = store.meta()["seeds_auto"]
    store.close()
    assert report.tests.set_index("activation").loc["sigmoid", "n"] == seeds["sigmoid"]["seeds"]


@pytest.mark.parametrize("metric,higher_is_better", [("error_rate", False), ("accuracy", True)])
def test_the_sequential_rule_follows_the_metric_direction(tmp_path, metric, higher_is_better):
    grid = Grid(RunConfig(epochs=1), ("relu", "sigmoid"))
    outcome = execute_until_decided(grid, tmp_path, Synthetic({"relu": 0.0, "sigmoid": 0.05}), baseline="relu",
                                    max_seeds=20, device="cpu", metric=metric, higher_is_better=higher_is_better)
    assert outcome.stopped == {"sigmoid": "worse"}  # more error, less accuracy: worse either way
