"""Two tiny real sweeps (digits, MLP, 1 epoch) shared by the workflow tests: one with
relu and tanh, one with elu and tanh, same settings and seeds, and their merge."""

from __future__ import annotations

import tempfile
from pathlib import Path

_BUILT: dict[str, Path] = {}
ACTIVATIONS = {"a": ("relu", "tanh"), "b": ("elu", "tanh")}
SEEDS = (0,)  # one seed keeps the default tests fast; the tanh run still repeats across the sweeps


def base_config():
    from afbench.config import RunConfig

    return RunConfig(dataset="digits", model="mlp", epochs=1, batch_size=64, latency_samples=10, probe_size=64,
                     train_subset=300, target=0.5)


def sweeps() -> dict[str, Path]:
    """Out folders 'a' and 'b', swept once per test session, and 'merged' (a + b)."""
    if not _BUILT:
        from afbench.store.merge import merge
        from afbench.sweep import LocalBackend, Runtime
        from afbench.store.database import Store

        root = Path(tempfile.mkdtemp(prefix="afbench-workflow-"))
        for name, names in ACTIVATIONS.items():
            configs = [base_config().with_(activation=a, seed=s) for s in SEEDS for a in names]
            store = Store(root / name)
            try:
                LocalBackend(Runtime(workers=1, stack=1, progress=False)).execute(configs, store)
            finally:
                store.close()
            _BUILT[name] = root / name
        # no report here: rendering its figures takes seconds; test_merge checks it (slow)
        _BUILT["summary"] = merge([root / "a", root / "b"], root / "merged")
        _BUILT["merged"] = root / "merged"
    return dict(_BUILT)
