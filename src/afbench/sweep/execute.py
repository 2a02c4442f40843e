"""One way to run a sweep: `afbench run`, the studies and the Python API all call
``execute``. It resolves the configs once (device, canonical activation names),
opens the results database and hands the unfinished runs to a backend.

``execute_until_decided`` is ``--seeds auto``: paired seeds are added in rounds,
only for the activations whose comparison with the baseline is still undecided.

>>> from afbench.sweep import execute, Grid
>>> from afbench.config import RunConfig
>>> outcome = execute(Grid(RunConfig(epochs=3), ("relu", "tanh"), seeds=(0, 1, 2)), "results/demo")
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from afbench import activations
from afbench.config import RunConfig
from afbench.engine.runtime import resolve_device
from afbench.errors import AfbenchError, UnknownNameError
from afbench.results import Status
from afbench.sweep.grid import Grid
from afbench.stats.sequential import FIRST_SEEDS, seed_rounds
from afbench.sweep.backends import Backend, create, drive
from afbench.sweep.backends.driver import default_baseline
from afbench.sweep.jobs import Counts, no_counts
from afbench.store.database import Store

EQUIVALENCE = 0.001  # default practical-equivalence margin: 0.1 percentage points of test error
ALPHA = 0.05  # familywise error over every look at the data (spent over the looks, see stats.sequential)


@dataclass
class Outcome:
    """What one call did, and what the caller should tell the user."""

    counts: Counts = field(default_factory=no_counts)
    configs: list[RunConfig] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped: dict[str, str] = field(default_factory=dict)  # --seeds auto: activation -> why it stopped

    @property
    def failed(self) -> int:
        return self.counts["failed"]


def canonical_activation(name: str) -> str:
    """The registry's name for a registered activation (case and aliases folded);
    formulas and import paths as given."""
    try:
        return activations.info(name).name
    except UnknownNameError:
        pass
    if re.fullmatch(r"[^:]+\.py:\w+", name.strip()):
        raise AfbenchError(f"activation '{name}': give an importable module, not a file path: put its folder on "
                           "PYTHONPATH and write module:Name (e.g. PYTHONPATH=. afbench run --activations "
                           "my_acts:Swish2)")
    if re.fullmatch(r"[\w.]+:\w+", name.strip()):
        _find_module(name)  # its code runs only in the sweep's workers (a user's exit fails its runs there)
        return name
    try:
        activations.factory(name)  # a formula: validate it, or fail with the reason
    except AfbenchError:
        raise
    except (Exception, RecursionError) as err:  # the user's module raised on import or construction
        raise AfbenchError(f"cannot use activation '{name}': {type(err).__name__}: {err}") from None
    return name


def _find_module(name: str) -> None:
    """Fail now when the module of ``module:Name`` cannot be found, without running it."""
    module = name.strip().partition(":")[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError) as err:
        found, why = None, f": {err}"
    else:
        why = ""
    if found is None:
        raise AfbenchError(f"cannot import custom activation '{name}': no module named '{module}'{why}. Is the "
                           "module on PYTHONPATH?")


def canonical_activations(names: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """Canonical names with duplicates removed, and a note for each one folded away."""
    out, notes = [], []
    for name in names:
        resolved = canonical_activation(name)
        if resolved in out:
            notes.append(f"activation '{name}' is '{resolved}', already in the sweep: trained once")
            continue
        if resolved != name:
            notes.append(f"activation '{name}' is registered as '{resolved}'")
        out.append(resolved)
    return tuple(out), notes


def resolve(configs: list[RunConfig], device: str = "auto") -> list[RunConfig]:
    """Fix the device type into each config (results on CPU and GPU are different
    runs) and use canonical activation names, so 'ReLU' and 'relu' are one run."""
    from afbench import models

    resolved = resolve_device(device).type
    identities = {m: models.identity(m) for m in {c.model for c in configs} if models.is_user_model(m)}
    fingerprints = _data_fingerprints(configs)
    out = [c.with_(device=resolved, activation=canonical_activation(c.activation),
                   model=identities.get(c.model, c.model),
                   data_fingerprint=fingerprints.get(_data_of(c), c.data_fingerprint))
           for c in configs]  # a user model: path + file hash; a user's data: its content hash
    return list({c.key(): c for c in out}.values())  # duplicates after folding run once


USER_DATA = ("imagefolder:", "npz:")


def _data_of(config: RunConfig) -> tuple:
    return config.dataset, config.image_size, config.coarse


def _data_fingerprints(configs: list[RunConfig]) -> dict[tuple, str]:
    """The content hash of each user's data set (an image folder, an .npz file), part of
    its runs' setting: the same path with other files in it is another run, never paired
    or resumed as this one. Named data sets are fixed by their published checksums."""
    from afbench import data

    wanted = {_data_of(c) for c in configs if c.dataset.startswith(USER_DATA)}
    return {d: data.fingerprint(d[0], image_size=d[1], coarse=d[2]) for d in wanted}


def execute(grid: Grid | list[RunConfig], out: str | Path, backend: Backend | None = None, *,
            device: str = "auto", resolved: bool = False, baseline: str | None = None) -> Outcome:
    """Train every run of ``grid`` that ``out``/results.sqlite does not hold finished;
    resumable: call it again after a crash and only the rest runs. ``resolved``: the
    configs already went through ``resolve`` (device, names, model identities).
    ``baseline``: the cost profile's reference (default the backend's ``runtime.baseline``,
    else relu when in the sweep, else the first activation). Raises ``errors.Interrupted`` on SIGINT/SIGTERM, and an
    AfbenchError naming what was kept when the results database cannot be written."""
    configs = grid.configs() if isinstance(grid, Grid) else list(grid)
    if not configs:
        raise AfbenchError("nothing to run: the grid is empty (give at least one activation and one seed)")
    configs = configs if resolved else resolve(configs, device)
    backend = backend or create("local")
    backend.check(configs)  # bad data fails before a results database is made
    baseline = baseline or backend.runtime.baseline
    baseline = canonical_activation(baseline) if baseline else default_baseline(configs)
    store = Store(out)
    try:
        counts = drive(backend, configs, store, baseline)
    finally:
        store.close()
    return Outcome(counts, configs)


def check_until_decided(grid: Grid, baseline: str, max_seeds: int, out: str | Path | None = None,
                        device: str = "auto", margin: float | None = None) -> None:
    """What ``--seeds auto`` refuses, checked before anything is trained or written
    (the CLI calls it while planning, so a refused sweep leaves its folder as it was).
    With ``out``: a folder whose stored design judges other settings (``_design_settings``)
    or was decided with other activations, baseline, looks or equivalence ``margin``."""
    if len(grid.lrs) > 1:
        raise AfbenchError("--seeds auto with several learning rates is not supported: give one --lr")
    if max_seeds < FIRST_SEEDS:
        raise AfbenchError(f"--max-seeds must be at least {FIRST_SEEDS} (--seeds auto starts every activation with "
                           f"{FIRST_SEEDS} paired seeds), got {max_seeds}: give --max-seeds {FIRST_SEEDS} or more")
    names, _ = canonical_activations(grid.activations)
    baseline = canonical_activation(baseline)
    if baseline not in names:
        raise AfbenchError(f"--seeds auto compares against the baseline '{baseline}', which is not among the "
                           f"activations ({', '.join(names)}): add it or choose --baseline")
    Grid(grid.base, grid.activations, tuple(range(max_seeds)), grid.lrs, grid.models, grid.datasets).check_size(
        seeds_flag="--max-seeds")
    stored = folder_design(out) if out is not None else {}
    if stored:
        if stored["settings"] != _design_settings(grid, device):
            raise AfbenchError(f"{out} already holds a --seeds auto sweep of other settings (another model, data "
                               "set, learning rate or training setting); its design would be lost. Give this sweep "
                               "its own --out")
        mine = {"activations": sorted(names), "baseline": baseline, "looks": seed_rounds(max_seeds),
                **({} if margin is None else {"margin": margin})}
        changed = [k for k, v in mine.items() if k in stored and stored[k] != v]
        if changed:  # its looks and Holm family decided the folder's verdicts: another would re-judge them
            raise AfbenchError(f"{out} holds a --seeds auto sweep with other "
                               f"{', '.join(DESIGN_FLAGS[k] for k in changed)}; its verdicts were decided by its own "
                               "looks and comparisons, and this sweep's would re-judge them. Rerun it as it was, or "
                               "give this sweep its own --out")


DESIGN_FLAGS = {"activations": "activations", "baseline": "baseline", "looks": "--max-seeds",
                "margin": "--equivalence"}  # what a second sweep may not change, in the user's words


def check_beside_design(grid: Grid, out: str | Path, device: str = "auto") -> None:
    """Refuse fixed seeds of a setting that ``out``'s --seeds auto sweep decides on: its
    looks would replay them (and the tables count them) as if the design had chosen them."""
    stored = folder_design(out)
    if stored and set(stored["settings"]) & set(_design_settings(grid, device)):
        raise AfbenchError(f"{out} holds a --seeds auto sweep of this setting, whose looks decide its verdicts; "
                           "fixed seeds added to it would be judged by those looks. Rerun it with --seeds auto, or "
                           "give this sweep its own --out")


def _design_settings(grid: Grid, device: str) -> list[str]:
    """The settings a --seeds auto sweep of ``grid`` judges (``settings.identity``)."""
    from afbench.stats import settings

    first_round = resolve(Grid(grid.base, canonical_activations(grid.activations)[0], (0,), grid.lrs, grid.models,
                               grid.datasets).configs(), device)
    return sorted({settings.identity(c.to_dict()) for c in first_round})


def folder_design(out: str | Path) -> dict:
    """The --seeds auto design ``out`` holds ({} for none, or no database yet)."""
    from afbench.store.reading import StoreView

    if not (Path(out) / "results.sqlite").is_file():
        return {}
    with StoreView(out) as view:
        return stored_design(view)


def stored_design(view) -> dict:
    """The --seeds auto design a results database (a ``StoreView``) holds, {} for none,
    with the ``settings`` it judges: as stored, or for a design an older afbench stored
    without them, those of every run in the folder (which it judged then)."""
    from afbench.stats import settings

    design = view.meta().get("sequential") or {}
    if not design:
        return {}
    judged = design.get("settings") or {settings.identity(r.config) for r in view.records()}
    return {**design, "settings": sorted(judged)}


def execute_until_decided(grid: Grid, out: str | Path, backend: Backend | None = None, *, baseline: str = "relu",
                          max_seeds: int = 20, equivalence: float = EQUIVALENCE, device: str = "auto",
                          alpha: float = ALPHA, spending: str = "obrien-fleming", metric: str = "error_rate",
                          higher_is_better: bool = False) -> Outcome:
    """``--seeds auto``: start every activation with FIRST_SEEDS paired seeds, then add
    seeds in rounds (``seed_rounds``) only where the comparison with ``baseline`` is
    undecided (the baseline always gets the seeds the others need, to pair with),
    until each is decided or has ``max_seeds``. The decisions are a group-sequential
    design (afbench.stats.sequential: alpha spent over the looks, Holm across the
    comparisons, equivalence within ±``equivalence`` at the same levels), replayed
    from the stored runs at every round, exactly as the report replays them. Resumes
    like any sweep: finished seeds are read back, never retrained. The design (meta
    ``sequential``: alpha, margin, looks, per-look levels) and why each activation
    stopped (meta ``seeds_auto``) are stored in the database."""
    from afbench.stats import sequential  # the decision rule is the report's, so sweep and report agree

    baseline = canonical_activation(baseline)
    check_until_decided(grid, baseline, max_seeds, out, device, equivalence)
    names, _ = canonical_activations(grid.activations)
    rounds = seed_rounds(max_seeds)
    design = sequential.Design(alpha=alpha, margin=equivalence, looks=tuple(rounds), spending=spending,
                               metric=metric, higher_is_better=higher_is_better,
                               worst=sequential.WORST.get(metric))
    _record_design(out, design, baseline, _design_settings(grid, device), names)
    seeds = {name: rounds[0] for name in names}
    outcome = Outcome()
    while True:
        configs = [c for c in Grid(grid.base, names, tuple(range(max(seeds.values()))), grid.lrs, grid.models,
                                   grid.datasets).configs() if c.seed < seeds[canonical_activation(c.activation)]]
        step = execute(configs, out, backend, device=device)
        for k in ("ran", "failed"):
            outcome.counts[k] += step.counts[k]
        outcome.configs = step.configs  # every round's configs include the earlier rounds'
        outcome.counts["skipped"] = len(step.configs) - outcome.counts["ran"] - outcome.counts["failed"]
        decided = _verdicts(sequential, out, baseline, design, {c.key() for c in step.configs})
        undecided = [a for a in names if a != baseline and decided.get(a, "undecided") == "undecided"
                     and seeds[a] < max_seeds]
        for name in names:
            if name != baseline:
                verdict = decided.get(name, "undecided")
                outcome.stopped[name] = verdict if verdict != "undecided" else \
                    f"undecided at {seeds[name]} seeds" + (" (max seeds)" if seeds[name] >= max_seeds else "")
        if not undecided or step.failed:
            break
        grow = next(n for n in rounds if n > seeds[undecided[0]])
        for name in undecided + [baseline]:
            seeds[name] = max(seeds[name], grow)
    _record_stops(out, outcome.stopped, seeds)
    return outcome


def _verdicts(sequential, out: str | Path, baseline: str, design, keys: set[str]) -> dict[str, str]:
    """activation -> verdict against the baseline over this sweep's runs (``keys``:
    runs of other settings in the same folder never count), the least decided one
    when an activation appears in several settings."""
    from afbench.store.reading import StoreView

    with StoreView(out) as store:  # read-only: deciding never writes
        rows = [{"dataset": r.config["dataset"], "model": r.config["model"], "activation": r.config["activation"],
                 "seed": r.config["seed"], "status": r.status.value,
                 design.metric: _value(r.summary, design.metric)}
                for r in store.records() if r.key in keys and r.status in (Status.DONE, Status.DIVERGED)]
    if not rows:
        return {}
    table = sequential.replay(pd.DataFrame(rows), baseline, design)
    out: dict[str, str] = {}
    for activation, group in table.groupby("activation"):
        verdicts = set(group["verdict"])
        out[activation] = "undecided" if "undecided" in verdicts else verdicts.pop() if len(verdicts) == 1 \
            else "mixed"
    return out


def _value(summary, metric: str) -> float | None:
    """A finished run's value of ``metric``: a summary field (error_rate), else the
    workload's metric under its own name (mse, psnr, bpc); None for a diverged run."""
    if summary is None:
        return None
    if summary.primary_metric == metric:  # the workload's own, even named like a field (a user's 'f1')
        return summary.primary_value
    if metric in getattr(summary, "__dataclass_fields__", {}):
        return getattr(summary, metric)
    return (summary.metrics or {}).get(metric)


def _record_design(out: str | Path, design, baseline: str, settings: list[str], activations: list[str]) -> None:
    """Keep the design, and the settings it judges, in the folder: the report replays the
    looks with it (same margin, same levels) on those settings' runs alone."""
    store = Store(out)
    try:
        store.set_meta("sequential", {**design.to_dict(), "baseline": baseline, "settings": settings,
                                      "activations": sorted(activations)})
    finally:
        store.close()


def _record_stops(out: str | Path, stopped: dict[str, str], seeds: dict[str, int]) -> None:
    store = Store(out)
    try:
        store.set_meta("seeds_auto", {name: {"stopped": stopped.get(name, "baseline"), "seeds": seeds[name]}
                                      for name in seeds})
    finally:
        store.close()
