"""A study: a sweep declared once, as a typed `Study`, read from and written to TOML.

The `afbench run` flags build the same `Study` (afbench.cli.run), and every value,
from a flag or from a file, passes the same rules (afbench.sweep.rules): a study file
can never hold what a flag would refuse. A study file has two optional top-level
keys and three tables; every key is optional::

    name = "s1-mnist"            # names the default out folder (results/<name>) and the MLflow experiment
    description = "S1 Table 3"   # free text

    [grid]                       # what is swept
    activations = ["relu", "tanh"]   # or "all": every hidden activation (default ["relu"])
    models = ["lenet"]               # one or more (default "mlp")
    datasets = ["mnist"]             # one or more (default "digits")
    seeds = 3                        # a count (0..N-1), a list such as [3, 7], or "auto" (default 1)
    lrs = [3e-4, 1e-3]               # one or more; several: tuned per activation on validation data

    [settings]                   # held fixed: any RunConfig field but the swept ones
    epochs = 10
    target = 0.98                    # a field left out takes RunConfig's default; TOML has no null

    [execution]                  # how to run: never part of a run's identity (see Execution)
    workers = "auto"
    threads = 2

A wrong key, type or value raises AfbenchError naming the file, the line, the key and
what is expected. ``parse_study(dump_study(s)) == s`` for every Study ``s``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from afbench import config
from afbench.config import RunConfig
from afbench.errors import AfbenchError, lookup
from afbench import rules
from afbench.sweep.grid import Grid
from afbench.rules import Invalid, Rule

# ---- what a study holds ----------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    """How a sweep runs: its speed and where it writes, never what a run computes."""
    workers: int | str = "auto"  # worker processes, or "auto": a short calibration picks them
    threads: int | None = None  # torch threads per worker; None: chosen with the workers
    stack: int | str = "auto"  # runs differing in seed or activation trained as one model; 1: never
    compile: bool = False  # training steps through torch.compile
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    backend: str = "local"  # local or ray
    cost_profile: str = "auto"  # measure step times apart from training: auto (sweeps over 2 min), on, off
    run_timeout: float | None = None  # seconds one run may train; None: 20x its calibrated time, at least 60 s
    out: str | None = None  # results folder; None: results/<name>
    baseline: str | None = None  # activation the others are tested against; None: relu if swept, else the first
    max_seeds: int = 20  # seeds = "auto": at most this many per activation
    equivalence: float = 0.1  # seeds = "auto": error differences within +- this many points are equal
    data_dir: str | None = None  # local copies of the data sets
    address: str | None = None  # Ray: auto or ray://host:port; None: a local Ray
    cpus_per_run: float = 1.0  # Ray: CPUs (and threads) per run
    gpus_per_run: float = 0.0  # Ray: GPUs per run; fractions share a GPU
    max_retries: int = 2  # Ray: re-executions of a run whose worker dies


@dataclass(frozen=True)
class Study:
    """What a sweep trains (the grid and the fixed settings) and how it runs."""
    name: str | None = None  # names results/<name>; letters, digits, '.', '_', '-'
    description: str | None = None
    activations: tuple[str, ...] | str = ("relu",)  # or "all"
    models: tuple[str, ...] = ("mlp",)
    datasets: tuple[str, ...] = ("digits",)
    seeds: tuple[int, ...] | str = (0,)  # or "auto": paired seeds added until the data decides
    lrs: tuple[float, ...] = (1e-3,)  # several: each activation gets the best on validation data
    settings: RunConfig = field(default_factory=RunConfig)  # its swept fields are ignored
    execution: Execution = field(default_factory=Execution)

    def __post_init__(self) -> None:
        for key, rule in GRID_RULES.items():  # a Study built in Python is checked like a file
            try:
                rule.value(getattr(self, key))
            except Invalid as err:
                raise AfbenchError(f"study {key}: {err}") from None
        for key in EXECUTION_RULES:
            value = getattr(self.execution, key)
            if value is not None:
                try:
                    EXECUTION_RULES[key].value(value)
                except Invalid as err:
                    raise AfbenchError(f"study execution {key}: {err}") from None
        if self.name is not None:
            try:
                rules.NAME.value(self.name)
            except Invalid as err:
                raise AfbenchError(f"study name: {err}") from None

    def grid(self, activations: tuple[str, ...] | None = None) -> Grid:
        """The runs: activations x models x data sets x seeds (x learning rates).
        ``activations``: the resolved names (aliases folded, "all" expanded) to use
        instead of the study's own text. Seeds "auto" start from seed 0."""
        names = activations if activations is not None else self.activations
        if names == "all":
            from afbench import activations as registry

            names = tuple(registry.names())
        base = self.settings.with_(model=self.models[0], dataset=self.datasets[0], lr=self.lrs[0])
        seeds = (0,) if self.seeds == "auto" else self.seeds
        return Grid(base, tuple(names), tuple(seeds), self.lrs if len(self.lrs) > 1 else (),
                    self.models if len(self.models) > 1 else (), self.datasets if len(self.datasets) > 1 else ())

    def out_folder(self) -> Path:
        return Path(self.execution.out or f"results/{self.name or 'run'}")

    def with_(self, **changes) -> "Study":
        return replace(self, **changes)


def with_workload(study: Study, name: str) -> Study:
    """``study`` training the workload ``name``: its data set, model, learning rate and
    budget (the RunConfig fields it was sized for) replace the study's, the rest stays.
    A user's PATH.py:NAME is stored with its file's hash, so an edited file is another task."""
    from afbench import workloads

    settings = workloads.get(name).settings()
    grid = {"models": (settings.pop("model"),), "datasets": (settings.pop("dataset"),)}
    if "lr" in settings:
        grid["lrs"] = (settings.pop("lr"),)
    settings["workload"] = workloads.identity(name)
    return study.with_(**grid, settings=study.settings.with_(**settings))


GRID_RULES: dict[str, Rule | rules.ListRule] = {
    "activations": rules.ACTIVATIONS, "models": rules.NAMES, "datasets": rules.NAMES, "seeds": rules.SEEDS,
    "lrs": rules.LEARNING_RATES}
EXECUTION_RULES = rules.EXECUTION_RULES
SWEPT = config.SWEPT
setting_rule, setting_names = config.setting_rule, config.setting_names


# ---- errors with positions ---------------------------------------------------------------------


def _line_of(text: str, table: str | None, key: str) -> int | None:
    """The 1-based line where ``key`` is assigned inside ``[table]`` (None: top level;
    key "": the table's header). tomllib reports no positions, so scan the headers."""
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([^\]]+?)\s*\]", line)
        if header and not line.lstrip().startswith("[["):
            current = header.group(1).strip().strip('"')
            if key == "" and current == table:
                return number
            continue
        if key and current == table and re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return number
    return None


def error_at(source: str, text: str, table: str | None, key: str, problem: str, valid=()) -> AfbenchError:
    line = _line_of(text, table, key) if key != table else _line_of(text, key, "")
    where = source + (f", line {line}" if line else "")
    name = f"[{table}] {key}" if table and table != key and key else f"[{table}]" if table else key
    message = f"{where}: {name}: {problem}"
    if valid:
        close = difflib.get_close_matches(key, list(valid), n=1)
        message += (f". Did you mean '{close[0]}'?" if close else ".") + f" Valid: {', '.join(valid)}"
    return AfbenchError(message)


# ---- reading -------------------------------------------------------------------------------------

TOP_KEYS = ("name", "description")
TABLES = ("grid", "settings", "execution")


def read_toml(text: str, source: str) -> dict:
    """The tables of a TOML text, or an AfbenchError naming ``source``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise AfbenchError(f"{source}: not valid TOML: {err}") from None


def parse_study(text: str, source: str = "<study>") -> Study:
    """The Study a TOML text declares, every value checked (see the module docstring)."""
    raw = read_toml(text, source)

    def fail(table, key, problem, valid=()):
        return error_at(source, text, table, key, problem, valid)

    top: dict[str, Any] = {}
    for key, value in raw.items():
        if key in TOP_KEYS:
            rule = rules.NAME if key == "name" else rules.Rule("text", (str,))
            try:
                top[key] = rule.value(value)
            except Invalid as err:
                raise fail(None, key, str(err)) from None
        elif key not in TABLES or not isinstance(value, dict):
            table = key if isinstance(value, dict) else None
            raise fail(table, key, "unknown table" if table else "unknown key", TOP_KEYS + TABLES)
    grid = _checked(raw.get("grid", {}), GRID_RULES, lambda k, p, v=(): fail("grid", k, p, v))
    settings = _checked(raw.get("settings", {}), {n: setting_rule(n) for n in setting_names()},
                        lambda k, p, v=(): fail("settings", k, p, v), swept=True)
    execution = _checked(raw.get("execution", {}), EXECUTION_RULES, lambda k, p, v=(): fail("execution", k, p, v))
    try:
        config = RunConfig(**settings)  # the dataclass's own checks across fields
    except AfbenchError as err:
        raise AfbenchError(f"{source}: [settings]: {err}") from None
    return Study(**top, **grid, settings=config, execution=Execution(**execution))


def _checked(table: dict, table_rules: dict, fail, swept: bool = False) -> dict:
    out = {}
    for key, value in table.items():
        if key not in table_rules:
            hint = " (it is swept: set it in [grid], or device in [execution])" if swept and key in SWEPT else ""
            raise fail(key, "unknown key" + hint, sorted(table_rules))
        try:
            out[key] = table_rules[key].value(value)
        except Invalid as err:
            raise fail(key, str(err)) from None
    return out


def overlay(study: Study, grid: dict, settings: dict, fail) -> Study:
    """``study`` with the values of a [grid] and a [settings] table (of a file that
    embeds studies, such as a suite) applied, each checked by a study file's rules;
    ``fail(table, key, problem, valid)`` makes the error that names the position."""
    grid = _checked(grid, GRID_RULES, lambda k, p, v=(): fail("grid", k, p, v))
    settings = _checked(settings, {n: setting_rule(n) for n in setting_names()},
                        lambda k, p, v=(): fail("settings", k, p, v), swept=True)
    try:
        return study.with_(**grid, settings=study.settings.with_(**settings))
    except AfbenchError as err:
        raise fail("settings", "", str(err)) from None


def load_study(path: str | Path) -> Study:
    """Read and check the study file at ``path``."""
    path = Path(path)
    if path.is_dir():
        inside = path / "study.toml"
        hint = (f"; this folder holds one: --study {inside}" if inside.is_file() else
                " (`afbench show preset quick` prints one to start from)")
        raise AfbenchError(f"study file {path} is a folder: --study needs a study file (.toml){hint}")
    if not path.is_file():
        raise AfbenchError(f"study file {path} not found: give a TOML file (`afbench show preset quick` "
                           f"prints one to start from)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise AfbenchError(f"cannot read study file {path}: {err}") from None
    return parse_study(text, str(path))


# ---- writing -------------------------------------------------------------------------------------


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


def _seeds_value(seeds):
    if seeds == "auto":
        return seeds
    return len(seeds) if tuple(seeds) == tuple(range(len(seeds))) else list(seeds)


def study_tables(study: Study, every_setting: bool = False) -> dict:
    """The study as TOML-ready tables. Settings and execution options at their
    defaults are left out unless ``every_setting`` (a resolved study keeps every
    setting, so it reproduces the sweep even if a later afbench changes a default)."""
    defaults = RunConfig()
    settings = {k: getattr(study.settings, k) for k in setting_names()}
    settings = {k: v for k, v in settings.items() if v is not None and (every_setting or v != getattr(defaults, k))}
    if settings.get("whitening") is None:
        settings.pop("whitening", None)
    plain = Execution()
    execution = {f.name: getattr(study.execution, f.name) for f in fields(Execution)}
    execution = {k: v for k, v in execution.items() if v is not None and v != getattr(plain, k)}
    grid = {"activations": study.activations if study.activations == "all" else list(study.activations),
            "models": list(study.models), "datasets": list(study.datasets), "seeds": _seeds_value(study.seeds),
            "lrs": list(study.lrs)}
    top = {k: getattr(study, k) for k in TOP_KEYS if getattr(study, k) is not None}
    return {**top, "grid": grid, "settings": settings, "execution": execution}


def dump_study(study: Study, every_setting: bool = False) -> str:
    """The study as TOML text: ``parse_study(dump_study(s)) == s``."""
    tables = study_tables(study, every_setting)
    lines = ["# afbench study: `afbench run --study THIS_FILE` runs it again"]
    lines += [f"{key} = {_toml_value(tables[key])}" for key in TOP_KEYS if key in tables]
    for table in TABLES:
        lines += ["", f"[{table}]"] + [f"{k} = {_toml_value(v)}" for k, v in tables[table].items()]
    return "\n".join(lines) + "\n"


def save_study(out: str | Path, study: Study, resolved_activations: tuple[str, ...] | None = None) -> Path:
    """Store the study with the results (meta key ``study``) and write it as
    ``out``/study.toml, so `afbench run --study OUT/study.toml` runs the sweep again."""
    from afbench.store.database import Store

    if resolved_activations is not None:
        study = study.with_(activations=tuple(resolved_activations))
    study = study.with_(execution=replace(study.execution, out=str(out)))
    store = Store(out)
    try:
        store.set_meta("study", study_tables(study, every_setting=True))
    finally:
        store.close()
    path = Path(out) / "study.toml"
    path.write_text(dump_study(study, every_setting=True))
    return path


# ---- presets: study files shipped with afbench --------------------------------------------------


def _preset_files() -> dict:
    folder = resources.files("afbench.presets")
    return {entry.name[:-len(".toml")]: entry for entry in folder.iterdir() if entry.name.endswith(".toml")}


def list_presets() -> list[str]:
    """The names of the presets shipped with afbench, quick first."""
    return sorted(_preset_files(), key=lambda n: (n != "quick", n))


def show_preset(name: str) -> str:
    """The study file of preset ``name``, as text: a starting point for your own."""
    files = _preset_files()
    return files[lookup("preset", name, files)].read_text()


def preset_study(name: str) -> Study:
    """Preset ``name`` as a Study."""
    return parse_study(show_preset(name), f"preset {name}")


def preset(name: str) -> dict:
    """Preset ``name`` flattened to one dict: its RunConfig settings, plus model, dataset, lr, activations, and lrs / seeds when swept."""
    study = preset_study(name)
    out = {k: getattr(study.settings, k) for k in setting_names() if getattr(study.settings, k) is not None}
    out.update(dataset=study.datasets[0], model=study.models[0], lr=study.lrs[0], activations=study.activations)
    if len(study.lrs) > 1:
        out["lrs"] = study.lrs
    if study.seeds != (0,):
        out["seeds"] = len(study.seeds) if study.seeds == tuple(range(len(study.seeds))) else study.seeds
    return out

