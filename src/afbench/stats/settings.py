"""Which runs may be compared: a *setting* is every config value except the activation
(the scientific parameter), the seed (the pairing), the learning rate where it is
tuned (the nuisance parameter: some activation ran at several, chosen on validation;
untuned, different rates are different settings) and values that only change what is
measured beside the result (latency samples, the diagnostics' probe size). Two runs of one activation
in different settings are different experiments; a comparison, table row, top group
or verdict never pools them.

Works on a frame with ``config.*`` columns (afbench.report.tables.runs_frame); a frame
without them (a test's hand-made rows) has one setting per (data set, model)."""

from __future__ import annotations

import json
import math

import pandas as pd

# Config fields that do not make a run a different experiment.
NOT_SETTING = ("activation", "seed", "lr", "latency_samples", "probe_size")


def _text(value) -> str:
    return "none" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def setting_columns(frame: pd.DataFrame) -> list[str]:
    """The ``config.*`` columns that identify a setting."""
    return [c for c in frame.columns if c.startswith("config.") and c.split(".", 1)[1] not in NOT_SETTING]


def label(frame: pd.DataFrame) -> pd.Series:
    """One label per row: 'mlp / digits' when the (data set, model) pair holds one
    setting, else 'mlp / digits, epochs=3' naming the values that tell its settings
    apart (only those). Rows of one label are one setting."""
    base = frame["model"].map(str) + " / " + frame["dataset"].map(str)
    columns = setting_columns(frame)
    if frame.empty or not columns:
        return base
    if "config.lr" in frame:
        columns = columns + ["config.lr"]
    identity = frame[columns].map(_text)
    out = base.copy()
    others = [c for c in columns if c != "config.lr"]
    for name, rows in frame.groupby(base, sort=False).groups.items():
        ids = identity.loc[rows]
        # whether the rate is tuned is a question for each setting of the other values: a tuned
        # sweep beside two untuned ones in the folder leaves those two settings apart
        key = ids[others].agg("|".join, axis=1) if others else pd.Series("", index=ids.index)
        tuned = {k for k, sub in frame.loc[rows].groupby(key, sort=False) if _tuned(sub)}
        rate_apart = ~key.isin(tuned)
        differing = [c for c in others if ids[c].nunique() > 1]
        rates_differ = "config.lr" in columns and ids.loc[rate_apart, "config.lr"].nunique() > 1
        if differing or rates_differ:
            shown = [differing + (["config.lr"] if rates_differ and apart else []) for apart in rate_apart]
            out.loc[rows] = [name + "".join(f", {c.split('.', 1)[1]}={values[c]}" for c in columns_shown)
                             for (_, values), columns_shown in zip(ids.iterrows(), shown)]
    return out


def _tuned(rows: pd.DataFrame) -> bool:
    """Is the learning rate tuned here (some activation ran at several, with a validation
    split to choose one on)? Then it is the nuisance parameter, never a setting. Untuned,
    runs at different rates are different experiments: an activation must not win by
    its rate, and two sweeps at two --lr in one folder are two settings."""
    activation = "activation" if "activation" in rows else "config.activation"
    if activation not in rows or "config.lr" not in rows:
        return False
    validated = pd.Series(False, index=rows.index)
    if "valid_acc" in rows:
        validated |= rows["valid_acc"].notna()
    if "config.valid_fraction" in rows:
        validated |= pd.to_numeric(rows["config.valid_fraction"], errors="coerce").fillna(0) > 0
    return bool(rows[validated].groupby(activation)["config.lr"].nunique().max() > 1)


def with_settings(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``setting`` column (kept when it has one)."""
    if "setting" in frame or frame.empty:
        return frame if "setting" in frame else frame.assign(setting=pd.Series(dtype=str))
    return frame.assign(setting=label(frame))


def several(frame: pd.DataFrame) -> list[str]:
    """Sentences for each (data set, model) that holds more than one setting: which
    values differ, and that they are compared apart. Empty when nothing differs."""
    frame = with_settings(frame)
    lines = []
    for (dataset, model), group in frame.groupby(["dataset", "model"], sort=False):
        labels = list(dict.fromkeys(group["setting"]))
        if len(labels) > 1:
            names = "; ".join(label.split(", ", 1)[1] for label in labels)
            lines.append(f"This folder holds {len(labels)} settings of {model} / {dataset} ({names}): each is "
                         "compared on its own, runs are never pooled across them.")
    return lines


def identity(config: dict) -> str:
    """A --seeds auto sweep's setting as one canonical string: the config's values except
    ``NOT_SETTING``'s, the learning rate included (such a sweep has one, untuned: a
    setting), as the runs frame holds them (JSON, then text)."""
    values = json.loads(json.dumps(config, default=str))
    return json.dumps({k: _text(v) for k, v in sorted(values.items()) if k == "lr" or k not in NOT_SETTING})

