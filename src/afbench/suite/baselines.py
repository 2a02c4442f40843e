"""The stored baselines: runs of the standard activations on a suite, shipped with
afbench, and the rule for pairing with them.

A stored run pairs with a new one only where both are the same computation: the same
suite version (its settings), the same torch minor version and the same device class.
Anything else and afbench says what differs and refuses; `--baselines local` then
trains the baseline next to the new activation instead. Times never come from stored
runs: the suite measures step times on this machine (the cost profile)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from afbench.errors import AfbenchError
from afbench.report import frames
from afbench.store.database import Store
from afbench.store.reading import StoreView
from afbench.suite.definition import Suite

META_KEY = "suite"  # meta of a suite's results database: {"name", "version", "baselines"}
MODES = ("stored", "local", "none")


def stored_path(suite: Suite) -> Path | None:
    """The shipped database of ``suite``'s baselines, if afbench has one."""
    entry = resources.files("afbench.suite") / "baselines" / f"{suite.name}-v{suite.version}.sqlite"
    return Path(str(entry)) if entry.is_file() else None


def _minor(version: str) -> str:
    """'2.13.0+cpu' -> '2.13': patch releases keep the kernels; minor ones may not."""
    return ".".join(str(version).split("+")[0].split(".")[:2])


def device_class(device: str) -> str:
    return str(device).split(":")[0]


def made_under(path: str | Path) -> dict:
    """What the stored runs were made with: suite version, afbench, torch, Python,
    device and threads, each as the set of values its runs record."""
    with StoreView(path) as view:
        meta = view.meta().get(META_KEY, {})
    runs = frames.load(path)
    done = runs[runs["status"] == "done"]

    def values(column: str) -> list:
        return sorted({str(v) for v in done.get(f"provenance.{column}", [])})

    return {"suite": meta.get("name"), "version": meta.get("version"), "runs": len(done),
            "afbench": values("afbench"), "torch": values("torch"), "python": values("python"),
            "device": values("device"), "device_name": values("device_name"), "threads": values("threads")}


def here(device: str) -> dict:
    """This machine, as a stored run's provenance names it."""
    return {"torch": torch.__version__, "device": device_class(device)}


def mismatches(suite: Suite, stored: dict, device: str) -> list[str]:
    """Why the stored runs would not be the same computation as runs made here
    (empty: they would)."""
    problems = []
    if stored["suite"] is None:
        problems.append("they are not a suite's results (no suite recorded in them: afbench suite writes one, "
                        "afbench run does not)")
    elif stored["suite"] != suite.name or stored["version"] != suite.version:
        problems.append(f"they were made for suite {stored['suite']} v{stored['version']}, this is {suite.label}")
    return problems + _machine_mismatches(stored, device)


def _machine_mismatches(stored: dict, device: str) -> list[str]:
    if not stored["runs"]:
        return []
    problems = []
    ours = here(device)
    minors = {_minor(v) for v in stored["torch"]}
    if minors != {_minor(ours["torch"])}:
        problems.append(f"they were made with torch {', '.join(stored['torch'])}, this is torch {ours['torch']} "
                        "(another minor version may compute other kernels)")
    classes = {device_class(d) for d in stored["device"]}
    if classes != {ours["device"]}:
        problems.append(f"they were made on {', '.join(sorted(classes))}, this run trains on {ours['device']}")
    return problems


def check_pairable(suite: Suite, device: str, path: str | Path | None = None) -> Path:
    """The stored database (``path``, else the shipped one), once it is certain its
    runs pair with runs made here; otherwise an AfbenchError that says what differs
    and what to do."""
    if path is not None and not Path(path).exists():
        raise AfbenchError(f"stored baselines {path} not found: give a results folder or results.sqlite of this suite")
    path = Path(path) if path is not None else stored_path(suite)
    if path is None:
        raise AfbenchError(f"suite {suite.label} has no stored baselines in this afbench: run it with --baselines "
                           f"local (trains {suite.baseline} next to your activations), or merge results made by "
                           "others into your folder first (afbench merge)")
    try:
        stored = made_under(path)
    except AfbenchError as err:  # not a results database at all: say which flag pointed there
        raise AfbenchError(f"--stored {path}: {str(err).replace('choose another --out', 'choose another --stored')}"
                           ". Give the results folder (or results.sqlite) of an afbench suite run") from None
    problems = mismatches(suite, stored, device)
    missing = 0 if problems else _missing_baseline_runs(suite, path, device)
    if missing:
        problems.append(f"they lack {missing} of the runs of {suite.baseline} this suite pairs with: they were made "
                        "with other settings (a suite file changed without a new version?)")
    if problems:
        raise AfbenchError(f"the stored baselines of suite {suite.label} would not pair with runs made here: "
                           + "; ".join(problems) + f". Pairing them would compare different computations. Use "
                           f"--baselines local to train {suite.baseline} here, next to your activations")
    return path


def _missing_baseline_runs(suite: Suite, path: Path, device: str) -> int:
    """How many of the suite's runs of its baseline the stored database lacks, by run
    key (every setting and the learning rate in it)."""
    from afbench.sweep.execute import resolve

    wanted = resolve([c for w in suite.workloads for c in w.configs((suite.baseline,), suite.seeds)], device)
    runs = frames.load(path)
    done = set(runs.loc[runs["status"].isin(["done", "diverged"]), "key"]) if len(runs) else set()
    return sum(c.key() not in done for c in wanted)


def check_folder(out: str | Path, device: str) -> None:
    """Refuse to add runs made here to a folder whose runs were made under another torch
    minor version or device class: they would pair across the mismatch."""
    if not (Path(out) / "results.sqlite").exists():
        return
    made = refuse_sweep_folder(out)
    problems = _machine_mismatches(made, device)
    if problems:
        raise AfbenchError(f"{out} already holds runs that would not pair with runs made here: "
                           + "; ".join(p.replace("they were", "those were") for p in problems)
                           + ". Give another --out")


def refuse_sweep_folder(out: str | Path) -> dict:
    """Refuse a folder that holds runs of a sweep (afbench run), not of a suite: the
    suite's scores would take them in. Returns what its runs were made with (made_under)."""
    made = made_under(out) if (Path(out) / "results.sqlite").exists() else {"suite": None, "runs": 0}
    if made["suite"] is None and made["runs"]:
        raise AfbenchError(f"{out} holds {made['runs']} runs of a sweep (afbench run), not of a suite: the suite's "
                           "scores would take them in. Give another --out")
    return made


def record(out: str | Path, suite: Suite, mode: str) -> None:
    """Mark ``out`` as a results folder of ``suite`` (so a later run or a merge can
    tell which suite and version its runs belong to)."""
    store = Store(out)
    try:
        meta = store.meta().get(META_KEY)
        if meta and (meta.get("name"), meta.get("version")) != (suite.name, suite.version):
            raise AfbenchError(f"{out} holds runs of suite {meta.get('name')} v{meta.get('version')}, not "
                               f"{suite.label}: give another --out")
        if meta and meta.get("baselines") != mode:  # stored and local runs of one key would mix
            raise AfbenchError(f"{out} was run with --baselines {meta.get('baselines')}; runs with --baselines "
                               f"{mode} go to another --out")
        store.set_meta(META_KEY, {"name": suite.name, "version": suite.version, "baselines": mode})
    finally:
        store.close()
