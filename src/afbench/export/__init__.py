"""Exports of an out folder to experiment trackers: TensorBoard and MLflow.

Both read the results database read-only (through afbench.report.frames.load, a StoreView) and import
their library only when called: `pip install 'afbench[export]'` installs them.
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from afbench.errors import AfbenchError

IDENTITY = ("run_key", "key", "activation", "model", "dataset", "seed", "lr", "epoch")


def require(module: str, tool: str):
    """Import ``module`` or fail naming what is missing and the pip extra that installs it.
    The missing package is the one the import could not find, not ``module``'s own:
    torch.utils.tensorboard fails for want of tensorboard, with torch installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = (err.name or module).split(".")[0]
        raise AfbenchError(f"exporting to {tool} needs the Python package {missing}, which is not installed: "
                           "pip install 'afbench[export]'") from None
    except ImportError as err:  # installed, yet it does not import: too old, or broken
        raise AfbenchError(f"exporting to {tool}: {module} does not import ({err}): pip install --upgrade "
                           "'afbench[export]'") from None


def frames(out: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, epochs) of the finished runs in ``out``."""
    from afbench.report.frames import load

    runs = load(out)
    if runs.empty:
        raise AfbenchError(f"{out} holds no runs to export")
    runs = runs[runs["status"].isin(["done", "diverged"])]
    epochs = load(out, epochs=True)
    if len(epochs):
        epochs = epochs[epochs["run_key"].isin(runs["key"])]
    return runs.reset_index(drop=True), epochs


@dataclass
class Exported:
    """What an export did, run by run (names as ``run_name`` gives them)."""

    added: list[str] = field(default_factory=list)  # written where nothing of theirs was
    replaced: list[str] = field(default_factory=list)  # an earlier export of the run, replaced
    skipped: list[str] = field(default_factory=list)  # already there, left as they were
    ids: list[str] = field(default_factory=list)  # the tracker's ids of the runs written (MLflow)

    @property
    def written(self) -> list[str]:
        return self.added + self.replaced


NAMED = ("dataset", "model", "lr")  # settings named bare in run names (lr as lr<x>), in this order


def run_name(run: pd.Series, varying: list[str]) -> str:
    """'activation/seed<k>', prefixed by dataset, model and lr when they vary, then by any
    other setting that varies as <setting><value> (epochs3): runs that differ in a setting
    are different runs and never share a name."""
    parts = [f"{c}{run[c]:g}" if c == "lr" else _text(run[c]) for c in NAMED if c in varying]
    parts += [f"{c}{_text(run[f'config.{c}'])}" for c in varying if c not in NAMED]
    return "/".join(parts + [str(run["activation"]), f"seed{run['seed']}"])


def _text(value) -> str:
    text = "none" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return re.sub(r"[^\w.+-]", "_", text)  # a folder name, never a path


def varying(runs: pd.DataFrame) -> list[str]:
    """The settings (besides activation and seed) whose values differ across ``runs``."""
    named = [c for c in NAMED if runs[c].nunique() > 1]
    others = sorted(c.split(".", 1)[1] for c in runs.columns if c.startswith("config.")
                    and c.split(".", 1)[1] not in (*NAMED, "activation", "seed")
                    and runs[c].astype(str).nunique() > 1)
    return named + others


def number(value) -> float | None:
    """A finite-or-not float for a metric, None for what is not a number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


def summary_metrics(run: pd.Series) -> dict[str, float]:
    """The run's final metrics: the numeric summary columns (not settings, provenance or identity)."""
    skip = set(IDENTITY) | {"attempts", "status", "error"}
    return {c: v for c in run.index if c not in skip and not c.startswith(("config.", "provenance."))
            and (v := number(run[c])) is not None}


def settings(run: pd.Series) -> dict[str, object]:
    """The run's settings (RunConfig fields), None as 'none'."""
    return {c.split(".", 1)[1]: ("none" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
            for c, v in run.items() if c.startswith("config.")}


def epoch_metrics(epochs: pd.DataFrame, key: str) -> list[tuple[int, dict[str, float]]]:
    """[(epoch, {metric: value})] of one run, numeric columns only."""
    out = []
    for _, row in epochs[epochs["run_key"] == key].iterrows():
        values = {c: v for c in row.index if c not in IDENTITY and (v := number(row[c])) is not None}
        out.append((int(row["epoch"]), values))
    return out
