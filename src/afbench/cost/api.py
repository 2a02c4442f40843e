"""Entry points: ``run_cost`` (what `afbench cost` does) and ``profile_for_sweep``
(measure or reuse the cost profile of a sweep's (model, activation) pairs)."""

from __future__ import annotations

from pathlib import Path

import torch

from afbench.cost.profile import CostProfile, profile
from afbench.store.cost import load_cost, save_cost, write_csv
from afbench.errors import AfbenchError


def run_cost(out: str | Path, dataset: str, model: str, activation_names: list[str], *, baseline: str = "relu",
             batch_size: int = 128, threads: int | None = None, budget_s: float | None = None,
             price_per_hour: float | None = None, data_dir: str | None = None, device: str = "cpu",
             epochs: int | None = None, steps_to_target: dict[str, int] | None = None,
             figure: bool = True) -> CostProfile:
    """Load ``dataset``, profile every activation in ``model`` and write OUT/cost.csv,
    OUT/cost.png and the ``cost`` table of OUT/results.sqlite."""
    from afbench import data
    from afbench.store.database import Store

    if batch_size < 1:
        raise AfbenchError(f"--batch-size must be at least 1, got {batch_size}")
    if threads is not None and threads < 1:
        raise AfbenchError(f"--threads must be at least 1, got {threads}")
    if price_per_hour is not None and price_per_hour < 0:
        raise AfbenchError(f"--price-per-hour must not be negative, got {price_per_hour}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AfbenchError("--device cuda, but torch sees no CUDA GPU: use --device cpu")
    from afbench import models

    if models.is_user_model(model):
        model = models.identity(model)  # rows name the file's version: an edited model is another model
    prepared = data.prepare(data.load(dataset, data_dir), device=device)
    result = profile(model, prepared, activation_names, dataset=dataset, baseline=baseline, batch_size=batch_size,
                     threads=threads, budget_s=budget_s, price_per_hour=price_per_hour, epochs=epochs,
                     steps_to_target=steps_to_target)
    out = Path(out)
    write_csv(result.rows, out / "cost.csv")
    if figure:
        from afbench.cost.figures import plot_cost

        plot_cost(result.rows, out / "cost.png")
    store = Store(out)
    try:
        save_cost(store, result.rows)
    finally:
        store.close()
    return result


def profile_for_sweep(configs, prepared, threads: int, store, *, baseline: str = "relu",
                      budget_s: float | None = None) -> dict[tuple[str, str], dict]:
    """Cost rows for every (model, activation) of ``configs`` (``RunConfig``s sharing
    ``prepared`` data), keyed by (model, activation name).

    Per (model, batch size, optimizer, norm, match_params): when the store holds one profile (one ``profile_id``, so
    its ratios are paired) covering all the sweep's activations under the same
    conditions, it is reused; otherwise all of them (and ``baseline``) are measured
    now, in one interleaved profile, and stored. Numerics and ONNX are skipped here
    (they do not depend on the sweep); `afbench cost` measures them.
    """
    from afbench import activations

    device = prepared.train.x.device.type
    torch.set_num_threads(threads)
    groups: dict[tuple, set[str]] = {}
    firsts: dict[tuple, object] = {}
    for config in configs:
        # Step time depends on the optimizer and the model's norm and widths too.
        group = (config.model, config.batch_size, config.optimizer, config.norm, config.match_params)
        groups.setdefault(group, set()).add(activations.factory(config.activation).name)
        firsts.setdefault(group, config)
    found: dict[tuple[str, str], dict] = {}
    for group, names in groups.items():
        model, batch_size, optimizer, norm, match_params = group
        wanted = sorted(names | {activations.factory(baseline).name})
        dataset = firsts[group].dataset  # a row applies to its own data set only (issue 29)
        rows = [r for r in load_cost(store, model, prepared.input_shape, wanted, device, threads, batch_size,
                                     dataset=dataset)
                if (r.get("optimizer"), r.get("norm"), r.get("match_params")) == (optimizer, norm, match_params)]
        by_profile: dict[str, dict] = {}
        for row in rows:
            by_profile.setdefault(row["profile_id"], {})[row["activation"]] = row
        complete = [p for p in by_profile.values() if set(wanted) <= set(p)]
        if complete:
            chosen = complete[-1]
        else:
            measured = profile(model, prepared, wanted, dataset=dataset, baseline=baseline, batch_size=batch_size,
                               threads=threads,
                               budget_s=budget_s, check_onnx=False, check_numerics=False, config=firsts[group])
            save_cost(store, measured.rows)
            chosen = {row["activation"]: row for row in measured.rows}
        found.update({(model, name): chosen[name] for name in names})
    return found
