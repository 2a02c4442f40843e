"""Study files: a sweep declared in TOML, the same grid the `afbench run` flags declare.

A study file has two optional top-level keys and three tables; every key is optional::

    name = "s1-mnist"            # names the default out folder (results/<name>) and the MLflow experiment
    description = "S1 Table 3"   # free text

    [grid]                       # what is swept
    activations = ["relu", "tanh"]   # or "all": every hidden activation (default ["relu"])
    models = ["lenet"]               # one or more (default: RunConfig's, "mlp")
    datasets = ["mnist"]             # one or more (default: RunConfig's, "digits")
    seeds = 3                        # a count (0..N-1), a list such as [3, 7], or "auto" (default 1)
    lrs = [3e-4, 1e-3]               # one or more learning rates; several: tuned per activation on validation

    [settings]                   # held fixed: any RunConfig field but the swept ones
    epochs = 10                      # (activation, seed, model, dataset, lr) and device (see [execution])
    batch_size = 128
    target = 0.98                    # a field left out takes RunConfig's default; TOML has no null

    [execution]                  # how to run: never part of a run's identity
    workers = "auto"                 # int or "auto"
    threads = 2                      # torch threads per worker
    stack = "auto"                   # int or "auto"
    compile = false
    device = "auto"                  # auto, cpu or cuda
    backend = "local"                # local or ray
    out = "results/s1-mnist"
    baseline = "relu"
    max_seeds = 10                   # with seeds = "auto": the most seeds to add
    equivalence = 0.5                # with seeds = "auto": margin (error points) that counts as equal
    data_dir = "/data"

A wrong key or type raises AfbenchError naming the key, its line and the valid choices.
`load_study` returns a plain dict (lists, never tuples) with the grid filled in, so
`load_study(text_of(dump_study(s))) == s`; `study_to_grid` turns it into the `Grid` the
flags produce; `apply_study` fills an `afbench run` argparse namespace from it.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import tomllib
import typing
from dataclasses import fields
from pathlib import Path

from afbench.config import RunConfig
from afbench.errors import AfbenchError

TOP_KEYS = ("name", "description")
TABLES = ("grid", "settings", "execution")
GRID_KEYS = ("activations", "models", "datasets", "seeds", "lrs")
SWEPT = ("activation", "seed", "model", "dataset", "lr", "device")  # RunConfig fields the grid or execution set
# execution key: (accepted python types, the word "auto" allowed, description for errors)
EXECUTION = {
    "workers": ((int,), True, "a whole number or \"auto\""),
    "threads": ((int,), False, "a whole number"),
    "stack": ((int,), True, "a whole number or \"auto\""),
    "compile": ((bool,), False, "true or false"),
    "device": ((str,), False, "auto, cpu or cuda"),
    "backend": ((str,), False, "local or ray"),
    "out": ((str,), False, "a folder"),
    "baseline": ((str,), False, "an activation name"),
    "max_seeds": ((int,), False, "a whole number"),
    "equivalence": ((float, int), False, "a number"),
    "data_dir": ((str,), False, "a folder"),
}


def setting_fields() -> dict[str, str]:
    """RunConfig fields a [settings] table may hold, with their annotated type as text."""
    return {f.name: str(f.type) for f in fields(RunConfig) if f.name not in SWEPT}


# ---- errors with positions ---------------------------------------------------------------


def _line_of(text: str, table: str | None, key: str) -> int | None:
    """The 1-based line where ``key`` is assigned inside ``[table]`` (None: top level).
    tomllib reports no positions, so scan: track the current [table] header."""
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([^\]]+?)\s*\]", line)
        if header and not line.lstrip().startswith("[["):
            current = header.group(1).strip().strip('"')
            if table is not None and key == "" and current == table:
                return number
            continue
        if current == table and re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return number
    return None


def _fail(source: str, text: str, table: str | None, key: str, problem: str, valid=()) -> AfbenchError:
    line = _line_of(text, table, key) if table != key else _line_of(text, key, "")
    where = f"{source}" + (f", line {line}" if line else "")
    name = f"[{table}] {key}" if table and table != key else key
    message = f"{where}: {name}: {problem}"
    if valid:
        close = difflib.get_close_matches(key, list(valid), n=1)
        message += (f". Did you mean '{close[0]}'?" if close else ".") + f" Valid: {', '.join(valid)}"
    return AfbenchError(message)


# ---- type checks ---------------------------------------------------------------------------


def _is(value, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # bool is an int in Python, never in a study file
        return bool in kinds
    return isinstance(value, kinds)


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _setting_types(annotation: str) -> tuple[type, ...]:
    """Python types a setting accepts, from its annotation text ('float | None')."""
    kinds = tuple(_TYPES[part.strip()] for part in annotation.split("|") if part.strip() != "None")
    return kinds + ((int,) if float in kinds else ())  # 1 is a fine float


def _check_list(value, kinds, error) -> list:
    items = value if isinstance(value, list) else [value]
    if not items or not all(_is(v, kinds) for v in items):
        raise error
    return list(items)


def _grid(table: dict, check) -> dict:
    grid = {}
    for key, value in table.items():
        if key not in GRID_KEYS:
            raise check(key, "unknown key", GRID_KEYS)
        if key == "activations":
            grid[key] = value if value == "all" else _check_list(
                value, (str,), check(key, f"expected \"all\" or a list of names, got {value!r}"))
        elif key in ("models", "datasets"):
            grid[key] = _check_list(value, (str,), check(key, f"expected a list of names, got {value!r}"))
        elif key == "lrs":
            lrs = _check_list(value, (float, int), check(key, f"expected a list of numbers, got {value!r}"))
            if any(lr <= 0 for lr in lrs):
                raise check(key, f"learning rates must be positive, got {value!r}")
            grid[key] = [float(lr) for lr in lrs]
        else:  # seeds
            if value == "auto" or (_is(value, (int,)) and value >= 1):
                grid[key] = value
            elif isinstance(value, list) and value and all(_is(v, (int,)) and v >= 0 for v in value):
                grid[key] = list(value)
            else:
                raise check(key, f"expected a count >= 1, a list of seeds or \"auto\", got {value!r}")
    defaults = RunConfig()
    grid.setdefault("activations", ["relu"])
    grid.setdefault("models", [defaults.model])
    grid.setdefault("datasets", [defaults.dataset])
    grid.setdefault("seeds", 1)
    grid.setdefault("lrs", [defaults.lr])
    return {key: grid[key] for key in GRID_KEYS}


def _settings(table: dict, check) -> dict:
    valid = setting_fields()
    out = {}
    for key, value in table.items():
        if key not in valid:
            hint = " (it is swept: set it in [grid], or device in [execution])" if key in SWEPT else ""
            raise check(key, "not a setting" + hint, sorted(valid))
        kinds = _setting_types(valid[key])
        if not _is(value, kinds):
            raise check(key, f"expected {' or '.join(k.__name__ for k in kinds[:2])}, got {value!r}")
        out[key] = float(value) if "float" in valid[key] else value  # 1 and 1.0 are one study
    RunConfig(**out)  # the dataclass's own range checks, as AfbenchError
    return out


def _execution(table: dict, check) -> dict:
    out = {}
    for key, value in table.items():
        if key not in EXECUTION:
            raise check(key, "unknown key", list(EXECUTION))
        kinds, auto, text = EXECUTION[key]
        if not (_is(value, kinds) or (auto and value == "auto")):
            raise check(key, f"expected {text}, got {value!r}")
        out[key] = float(value) if key == "equivalence" else value
    return out


def parse_study(text: str, source: str = "<study>") -> dict:
    """Check and normalise a study given as TOML text (see the module docstring)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise AfbenchError(f"{source}: not valid TOML: {err}") from None
    study: dict = {}
    for key, value in raw.items():
        if key in TOP_KEYS:
            if not isinstance(value, str):
                raise _fail(source, text, None, key, f"expected text, got {value!r}")
            study[key] = value
        elif key not in TABLES or not isinstance(value, dict):
            raise _fail(source, text, key if isinstance(value, dict) else None, key,
                        "unknown table" if isinstance(value, dict) else "unknown key", TOP_KEYS + TABLES)

    def checker(table):
        return lambda key, problem, valid=(): _fail(source, text, table, key, problem, valid)

    study["grid"] = _grid(raw.get("grid", {}), checker("grid"))
    study["settings"] = _settings(raw.get("settings", {}), checker("settings"))
    study["execution"] = _execution(raw.get("execution", {}), checker("execution"))
    return study


def load_study(path: str | Path) -> dict:
    """Read and check the study file at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise AfbenchError(f"study file {path} not found: give a TOML file (`afbench show preset quick` "
                           f"prints one to start from)")
    return parse_study(path.read_text(), str(path))


# ---- writing ---------------------------------------------------------------------------------


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes (\", \\, \n, \uXXXX) are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise AfbenchError(f"cannot write {value!r} ({type(value).__name__}) to a study file")


def dump_study(study: dict) -> str:
    """A study as TOML text, such that ``parse_study(dump_study(s)) == s`` for a
    checked study ``s``. Settings equal to None are left out (TOML has no null)."""
    lines = ["# afbench study: `afbench run --study THIS_FILE` runs it again"]
    for key in TOP_KEYS:
        if study.get(key) is not None:
            lines.append(f"{key} = {_toml_value(study[key])}")
    for table in TABLES:
        values = {k: v for k, v in study.get(table, {}).items() if v is not None}
        lines += ["", f"[{table}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


# ---- to and from the flags' grid ------------------------------------------------------------


def seed_list(seeds) -> tuple[int, ...]:
    """The seeds a grid's ``seeds`` entry names. "auto" starts from seeds 0 and 1, the
    fewest that give a spread; the adaptive runner adds more up to max_seeds."""
    if seeds == "auto":
        return (0, 1)
    return tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)


def study_to_grid(study: dict):
    """``(Grid, execution options)``: the Grid `afbench run` builds from the same
    values given as flags, and the [execution] table (plus ``seeds`` when "auto")."""
    from afbench import activations
    from afbench.sweep.grid import Grid

    grid = study["grid"]
    names = tuple(activations.names()) if grid["activations"] == "all" else tuple(grid["activations"])
    for name in names:  # fail on a bad name before anything runs
        activations.factory(name)
    lrs = tuple(grid["lrs"])
    base = RunConfig(**{**study["settings"], "model": grid["models"][0], "dataset": grid["datasets"][0],
                        "lr": lrs[0]})
    built = Grid(base, names, seed_list(grid["seeds"]), lrs if len(lrs) > 1 else (),
                 tuple(grid["models"]) if len(grid["models"]) > 1 else (),
                 tuple(grid["datasets"]) if len(grid["datasets"]) > 1 else ())
    execution = dict(study["execution"])
    if grid["seeds"] == "auto":
        execution["seeds"] = "auto"
    return built, execution


def grid_to_study(grid, execution: dict | None = None, name: str | None = None,
                  description: str | None = None) -> dict:
    """The resolved study of a Grid (e.g. the one built from flags), to store with the
    results and write as OUT/study.toml. Every setting is written, defaults included,
    so the file reproduces the sweep even if a later afbench changes a default."""
    base = grid.base.to_dict()
    study: dict = {}
    if name:
        study["name"] = name
    if description:
        study["description"] = description
    study["grid"] = {"activations": list(grid.activations), "models": list(grid.models or (base["model"],)),
                     "datasets": list(grid.datasets or (base["dataset"],)),
                     "seeds": (execution or {}).get("seeds") or _compact_seeds(grid.seeds),
                     "lrs": [float(lr) for lr in (grid.lrs or (base["lr"],))]}
    study["settings"] = {k: v for k, v in base.items() if k not in SWEPT and v is not None}
    study["execution"] = {k: v for k, v in (execution or {}).items() if k in EXECUTION and v is not None}
    return parse_study(dump_study(study), "<resolved study>")  # normalised exactly as a file would be


def _compact_seeds(seeds: tuple[int, ...]) -> int | list[int]:
    return len(seeds) if tuple(seeds) == tuple(range(len(seeds))) else list(seeds)


def preset_settings(study: dict) -> dict:
    """The study as the settings dict `grid.preset()` has always returned (what
    cli.grid_from_args reads): RunConfig fields, plus activations, lrs and seeds."""
    grid = study["grid"]
    out = dict(study["settings"])
    out.update(dataset=grid["datasets"][0], model=grid["models"][0], lr=grid["lrs"][0],
               activations=grid["activations"] if grid["activations"] == "all" else tuple(grid["activations"]))
    if len(grid["lrs"]) > 1:
        out["lrs"] = tuple(grid["lrs"])
    if grid["seeds"] != 1:
        out["seeds"] = grid["seeds"] if not isinstance(grid["seeds"], list) else ",".join(map(str, grid["seeds"])) + ","
    return out


# `afbench run`'s defaults for the options a study may set (None: flags without a default).
RUN_DEFAULTS = {"workers": "auto", "stack": "auto", "device": "auto", "backend": "local", "baseline": None,
                "compile": False}


def apply_study(args: argparse.Namespace, study: dict,
                defaults: argparse.ArgumentParser | dict | None = None) -> list[str]:
    """Fill an `afbench run` namespace from a study: an option still at its default
    (from ``defaults``, a parser or a dict; by default RUN_DEFAULTS, else None) takes the
    study's value; one given on the command line wins and yields a note. Sets
    ``args.study_settings`` (the preset-shaped dict, for grid_from_args) and
    ``args.study_name``. Returns the notes."""
    def default(dest: str):
        if isinstance(defaults, argparse.ArgumentParser):
            return defaults.get_default(dest)
        return (defaults if defaults is not None else RUN_DEFAULTS).get(dest)

    notes = []
    grid, execution = study["grid"], study["execution"]
    wanted = {"activations": "all" if grid["activations"] == "all" else ",".join(grid["activations"]),
              "models": ",".join(grid["models"]) if len(grid["models"]) > 1 else None,
              "datasets": ",".join(grid["datasets"]) if len(grid["datasets"]) > 1 else None,
              **{k: v for k, v in execution.items() if k not in ("max_seeds", "equivalence")}}
    for key in ("max_seeds", "equivalence"):
        if key in execution and hasattr(args, key):
            wanted[key] = execution[key]
    for dest, value in wanted.items():
        if value is None or not hasattr(args, dest):
            continue
        current = getattr(args, dest)
        if current == default(dest):
            setattr(args, dest, value)
        elif current != value:
            notes.append(f"--{dest.replace('_', '-')} {current} overrides the study's {dest} = {value}")
    settings = preset_settings(study)
    for field, value in settings.items():
        given = getattr(args, field, None) if field not in ("activations", "lrs", "seeds", "lr") else None
        if given is not None and given != value:
            notes.append(f"--{field.replace('_', '-')} {given} overrides the study's {field} = {value}")
    for dest, key in (("lr", "lrs"), ("seeds", "seeds")):
        given = getattr(args, dest, None)
        if given is not None:
            notes.append(f"--{dest} {given} overrides the study's {key} = {grid[key]}")
    args.study_settings = settings
    args.study_name = study.get("name")
    return notes


def save_study(out: str | Path, resolved: dict) -> Path:
    """Store the resolved study with the results (meta key ``study``) and write it
    as ``out``/study.toml, so `afbench run --study OUT/study.toml` runs the sweep again."""
    from afbench.store.database import Store

    store = Store(out)
    try:
        store.set_meta("study", resolved)
    finally:
        store.close()
    path = Path(out) / "study.toml"
    path.write_text(dump_study(resolved))
    return path
