"""What a suite trains: a named, versioned set of workloads, each a study with fixed
settings, seeds and budget, read from a TOML file shipped with afbench (or one of yours).

A suite file::

    name = "small"
    version = 1                 # goes up whenever a run of the suite would compute something else
    description = "..."
    baseline = "relu"           # every verdict is against it
    seeds = 10                  # paired seeds per activation and workload
    baselines = ["relu", ...]   # the activations stored with the suite

    [workloads.charlm]          # one table per workload, in the order they are reported
    workload = "charlm"         # afbench list workloads: its data, model and budget
    equivalence = 0.02          # |difference| within this, in the primary metric, is practically equal
    gated = ["geglu"]           # more stored baselines here (the model has a feed-forward block)
    [workloads.charlm.grid]     # as a study file's [grid] (models, datasets, lrs) ...
    [workloads.charlm.settings] # ... and [settings]

A wrong key or value raises AfbenchError naming the file, the line and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from afbench import rules
from afbench.config import RunConfig
from afbench.errors import AfbenchError, lookup
from afbench.rules import Invalid
from afbench.sweep.study import Study, error_at, overlay, read_toml, with_workload

TOP_KEYS = ("name", "version", "description", "baseline", "seeds", "baselines", "workloads")
WORKLOAD_KEYS = ("workload", "equivalence", "gated", "grid", "settings")
FIXED_BY_SUITE = ("activations", "seeds")  # a workload's [grid] may not set these: the suite does
RESERVED = ("activation", "role", "rank", "step_x")  # the leaderboard's own columns


@dataclass(frozen=True)
class SuiteWorkload:
    """One workload of a suite: what it trains and how its verdicts are read."""
    name: str  # its table's name in the suite file
    study: Study  # data, model, learning rate and settings; activations and seeds come from the suite
    equivalence: float  # differences within +- this (primary metric's units) are practically equal
    gated: tuple[str, ...] = ()  # gated units stored as baselines here

    def configs(self, activations: tuple[str, ...], seeds: tuple[int, ...]) -> list[RunConfig]:
        return self.study.with_(seeds=seeds).grid(activations).configs()

    @property
    def identity(self) -> tuple[str, str, str]:
        """(workload, data set, model): how a stored run is matched to its workload."""
        settings = self.study.settings
        return (settings.workload or "classification", self.study.datasets[0], self.study.models[0])


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    description: str
    baseline: str
    seeds: tuple[int, ...]
    baselines: tuple[str, ...]
    workloads: tuple[SuiteWorkload, ...]

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def stored_activations(self, workload: SuiteWorkload) -> tuple[str, ...]:
        """The activations whose runs the suite's baselines hold on ``workload``."""
        return tuple(dict.fromkeys(self.baselines + workload.gated))

    def workload_of(self, workload: str, dataset: str, model: str) -> SuiteWorkload | None:
        return next((w for w in self.workloads if w.identity == (workload or "classification", dataset, model)),
                    None)


# ---- reading --------------------------------------------------------------------------------------


def parse_suite(text: str, source: str = "<suite>") -> Suite:
    """The Suite a TOML text declares, every value checked."""
    raw = read_toml(text, source)

    def fail(table, key, problem, valid=()):
        return error_at(source, text, table, key, problem, valid)

    for key in raw:
        if key not in TOP_KEYS:
            raise fail(None, key, "unknown key", TOP_KEYS)
    for key in ("name", "version", "baseline", "seeds", "baselines", "workloads"):
        if key not in raw:
            raise AfbenchError(f"{source}: a suite needs '{key}' (see `afbench show suite small`)")
    top = {}
    for key, rule in (("name", rules.NAME), ("version", rules.POSITIVE_INT), ("baseline", rules.TEXT),
                      ("seeds", rules.POSITIVE_INT), ("baselines", rules.ACTIVATIONS),
                      ("description", rules.TEXT)):
        try:
            top[key] = rule.value(raw[key]) if key in raw else ""
        except Invalid as err:
            raise fail(None, key, str(err)) from None
    if not isinstance(raw["workloads"], dict) or not raw["workloads"]:
        raise fail(None, "workloads", "give at least one [workloads.NAME] table")
    workloads = tuple(_workload(name, entry, fail) for name, entry in raw["workloads"].items())
    _distinct(workloads, source)
    if isinstance(top["baselines"], str):
        raise fail(None, "baselines", "name the stored activations, e.g. [\"relu\", \"gelu\"]")
    baselines = _canonical(top["baselines"], lambda problem: fail(None, "baselines", problem))
    baseline = _canonical((top["baseline"],), lambda problem: fail(None, "baseline", problem))[0]
    if baseline not in baselines:
        raise fail(None, "baseline", f"'{top['baseline']}' is not among the suite's baselines")
    return Suite(top["name"], top["version"], top["description"], baseline, tuple(range(top["seeds"])),
                 baselines, workloads)


def _canonical(names, fail) -> tuple[str, ...]:
    """Activation names as the runs store them ('ReLU' and 'swish' as 'relu' and 'silu')."""
    from afbench.sweep.execute import canonical_activations

    try:
        return canonical_activations(tuple(names))[0]
    except AfbenchError as err:
        raise fail(str(err)) from None


def _workload(name: str, entry, fail) -> SuiteWorkload:
    table = f"workloads.{name}"
    if not isinstance(entry, dict):
        raise fail(None, "workloads", f"'{name}' must be a table [workloads.{name}]")
    for key in entry:
        if key not in WORKLOAD_KEYS:
            raise fail(table, key, "unknown key", WORKLOAD_KEYS)
    if "workload" not in entry:
        raise fail(table, "", "needs workload = NAME (afbench list workloads)")
    if name in RESERVED or name.endswith(("_sd", "_verdict")):
        raise fail(table, "", f"'{name}' is a name the leaderboard uses itself: call the workload otherwise")
    for key, kind in (("workload", str), ("grid", dict), ("settings", dict), ("gated", list)):
        if key in entry and not isinstance(entry[key], kind):
            expected = {str: "a name", dict: f"a table [{table}.{key}]", list: 'a list such as ["geglu"]'}[kind]
            raise fail(table, key, f"expected {expected}, got {entry[key]!r}")
    try:
        equivalence = rules.NON_NEGATIVE.value(entry.get("equivalence", 0.0))
    except Invalid as err:
        raise fail(table, "equivalence", str(err)) from None
    try:
        study = with_workload(Study(name=rules.NAME.value(name)), entry["workload"])
    except Invalid as err:
        raise fail(table, "", f"the name {name!r}: {err}") from None
    except AfbenchError as err:
        raise fail(table, "workload", str(err)) from None
    gated = _canonical(entry.get("gated", ()), lambda problem: fail(table, "gated", problem))
    grid = entry.get("grid", {})
    for key in FIXED_BY_SUITE:
        if key in grid:
            raise fail(f"{table}.grid", key, "set by the suite (its baselines and seeds), not per workload")
    study = overlay(study, grid, entry.get("settings", {}),
                    lambda t, k, p, v=(): fail(f"{table}.{t}", k, p, v))
    if len(study.models) != 1 or len(study.datasets) != 1 or len(study.lrs) != 1:
        raise fail(f"{table}.grid", "", "a suite workload trains one model on one data set with one learning rate")
    return SuiteWorkload(name, study, float(equivalence), gated)


def _distinct(workloads: tuple[SuiteWorkload, ...], source: str) -> None:
    seen = {}
    for w in workloads:
        if w.identity in seen:
            raise AfbenchError(f"{source}: workloads '{seen[w.identity]}' and '{w.name}' train the same workload, "
                               "data set and model: give each its own, or keep one")
        seen[w.identity] = w.name


# ---- the suites shipped with afbench --------------------------------------------------------------


def _shipped() -> dict:
    folder = resources.files("afbench.suite") / "definitions"
    return {entry.name[:-len(".toml")]: entry for entry in folder.iterdir() if entry.name.endswith(".toml")}


def suite_names() -> list[str]:
    return sorted(_shipped(), key=lambda n: (n != "small", n))


def show_suite(name: str) -> str:
    """The suite file of ``name`` (shipped) or at path ``name``, as text."""
    path = Path(name)
    if path.suffix == ".toml":
        if not path.is_file():
            raise AfbenchError(f"suite file {path} not found: give a shipped suite ({', '.join(suite_names())}) "
                               "or a .toml file")
        return path.read_text(encoding="utf-8")
    files = _shipped()
    return files[lookup("suite", name, files, hint=" Or give a suite file: PATH.toml.")].read_text()


def load_suite(name: str) -> Suite:
    """A shipped suite by name, or a suite file by its PATH.toml."""
    return parse_suite(show_suite(name), name if name.endswith(".toml") else f"suite {name}")
