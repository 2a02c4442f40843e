"""Entry points: ``run_cost`` (what `afbench cost` does), and for sweeps
``sweep_groups`` / ``stored_profile`` / ``measure_for_sweep`` (which profiles a sweep
needs, a stored one to reuse, a new one measured) with ``profile_for_sweep`` doing all
three. Nothing here imports the sweep or the report: they import this."""

from __future__ import annotations

from pathlib import Path

import torch

from afbench.cost.profile import CostProfile, profile
from afbench.store.cost import load_cost, save_cost, write_csv
from afbench.errors import AfbenchError, folder_problem


def run_cost(out: str | Path, dataset: str, model: str, activation_names: list[str], *, baseline: str = "relu",
             batch_size: int = 128, threads: int | None = None, budget_s: float | None = None,
             price_per_hour: float | None = None, data_dir: str | None = None, device: str = "cpu",
             epochs: int | None = None, steps_to_target: dict[str, int] | None = None,
             figure: bool = True) -> CostProfile:
    """Load ``dataset``, profile every activation in ``model`` and write OUT/cost.csv,
    OUT/cost.png and the ``cost`` table of OUT/results.sqlite."""
    from afbench import data, workloads
    from afbench.store.database import Store

    if batch_size < 1:
        raise AfbenchError(f"--batch-size must be at least 1, got {batch_size}")
    if threads is not None and threads < 1:
        raise AfbenchError(f"--threads must be at least 1, got {threads}")
    if price_per_hour is not None and price_per_hour < 0:
        raise AfbenchError(f"--price-per-hour must not be negative, got {price_per_hour}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AfbenchError("--device cuda, but torch sees no CUDA GPU: use --device cpu")
    problem = folder_problem(out)  # now, not after the measurement: it takes minutes
    if problem:
        raise AfbenchError(f"--out: {problem}")
    if (Path(out) / "results.sqlite").is_file():  # a damaged database is refused now, not after measuring
        Store(out).close()
    from afbench import models

    if models.is_user_model(model):
        model = models.identity(model)  # rows name the file's version: an edited model is another model
    prepared = data.prepare(workloads.load(dataset, data_dir), device=device)
    result = profile(model, prepared, activation_names, dataset=dataset, baseline=baseline, batch_size=batch_size,
                     threads=threads, budget_s=budget_s, price_per_hour=price_per_hour, epochs=epochs,
                     steps_to_target=steps_to_target)
    out = Path(out)
    store = Store(out)  # the database first: if it refuses, no cost.csv or cost.png is left beside it
    try:
        save_cost(store, result.rows)
    finally:
        store.close()
    write_csv(result.rows, out / "cost.csv")
    if figure:
        from afbench.cost.figures import plot_cost

        plot_cost(result.rows, out / "cost.png")
    return result


def sweep_groups(configs, baseline: str) -> list[tuple[object, list[str]]]:
    """The profiles a sweep needs: per (model, batch size, optimizer, norm, match_params),
    the first ``RunConfig`` and the sorted activation names with ``baseline``. Names are
    used as the configs hold them (already canonical), so no user module is imported here."""
    groups: dict[tuple, tuple[object, set[str]]] = {}
    for config in configs:
        # Step time depends on the optimizer and the model's norm and widths too.
        key = (config.model, config.batch_size, config.optimizer, config.norm, config.match_params)
        groups.setdefault(key, (config, set()))[1].add(config.activation)
    return [(first, sorted(names | {baseline})) for first, names in groups.values()]


def stored_profile(store, first, wanted: list[str], baseline: str, input_shape, device: str,
                   threads: int) -> dict[str, dict] | None:
    """activation -> row of the newest stored profile (one ``profile_id``, so its ratios are
    paired) that covers every name in ``wanted`` under ``first``'s conditions, with its
    ratios to ``baseline``; None when there is none."""
    # A row applies to its own data set only (issue 29).
    rows = [r for r in load_cost(store, first.model, input_shape, wanted, device, threads, first.batch_size,
                                 dataset=first.dataset)
            if (r.get("optimizer"), r.get("norm"), r.get("match_params")) == (first.optimizer, first.norm,
                                                                               first.match_params)
            and r.get("baseline") == baseline]
    by_profile: dict[str, dict] = {}
    for row in rows:
        by_profile.setdefault(row["profile_id"], {})[row["activation"]] = row
    complete = [p for p in by_profile.values() if set(wanted) <= set(p)]
    return complete[-1] if complete else None


def measure_for_sweep(first, prepared, wanted: list[str], baseline: str, threads: int,
                      budget_s: float | None) -> list[dict]:
    """One interleaved profile of ``wanted`` in ``first``'s model, optimizer and norm.
    Numerics and ONNX are skipped here (they do not depend on the sweep); `afbench
    cost` measures them."""
    return profile(first.model, prepared, wanted, dataset=first.dataset, baseline=baseline,
                   batch_size=first.batch_size, threads=threads,
                   budget_s=budget_s, check_onnx=False, check_numerics=False, config=first,
                   threads_from="training").rows


def profile_for_sweep(configs, prepared, threads: int, store, *, baseline: str = "relu",
                      budget_s: float | None = None) -> dict[tuple[str, str], dict]:
    """Cost rows for every (model, activation) of ``configs`` (``RunConfig``s sharing
    ``prepared`` data), keyed by (model, activation name): a stored profile covering them
    under the same conditions and baseline (``stored_profile``) is reused; otherwise all
    of them (and ``baseline``) are measured now, in one interleaved profile, and stored."""
    from afbench import activations

    baseline = activations.factory(baseline).name
    device = prepared.train.x.device.type
    found: dict[tuple[str, str], dict] = {}
    for first, wanted in sweep_groups(configs, baseline):
        chosen = stored_profile(store, first, wanted, baseline, prepared.input_shape, device, threads)
        if chosen is None:
            rows = measure_for_sweep(first, prepared, wanted, baseline, threads, budget_s)
            save_cost(store, rows)
            chosen = {row["activation"]: row for row in rows}
        found.update({(first.model, name): chosen[name] for name in wanted})
    return found
