"""Results folders as `report`, `merge` and `export` take them: the folder (or its
results.sqlite), checked before anything is written, so a refused command leaves the
folder as it was."""

from __future__ import annotations

import json
from pathlib import Path

from afbench.errors import AfbenchError

DATABASE = "results.sqlite"


def results_folder(given: str | Path, command: str) -> Path:
    """The out folder ``given`` names: the folder itself, or the folder of its
    results.sqlite (`afbench report good/results.sqlite` reports on good/)."""
    path = Path(given)
    if str(given) == "":
        raise AfbenchError(f"{command}: the results folder is empty (''): name the folder `afbench run` wrote")
    if path.is_file() and path.name == DATABASE:
        return path.parent
    if path.is_file():
        raise AfbenchError(f"{command}: {path} is a file: give the results folder that holds {DATABASE} (the "
                           "folder, not the file)")
    return path


def no_runs(folder: Path, command: str) -> str:
    """Why ``folder``'s database cannot be reported on: it holds no runs (a folder made by
    `afbench cost` holds step times only)."""
    made_by_cost = (folder / "cost.csv").is_file()
    why = " because it was made by `afbench cost` (step times only)" if made_by_cost else ""
    return (f"{folder} holds no runs{why}: `afbench {command}` needs a folder written by `afbench run` "
            f"(afbench run --out {folder} adds runs to it)")


def check_has_runs(folder: Path, command: str) -> None:
    """Refuse a folder that holds no runs (the report would write an empty one). The
    report's other refusals (a --baseline, the learning-rate choice) come from its own
    build, before it writes a file."""
    from afbench.store.reading import StoreView

    with StoreView(folder) as view:
        if not view.counts():
            raise AfbenchError(no_runs(folder, command))


def check_runs(records: list, baseline: str | None = None):
    """The report's own refusals (its baseline, its learning-rate choice) on ``records``,
    raised as AfbenchError before any file is written. Returns the runs frame."""
    from afbench.report import render, tables

    runs = tables.runs_frame(records)
    render.report_baseline(baseline, runs)  # the report's own rule, not a copy of it
    tables.select_learning_rates(runs)
    return runs


def _sources(inputs: list[Path], out: Path) -> list[Path]:
    """The databases a merge reads: ``out``'s own, if it has one, then each input's."""
    from afbench.store.reading import database_path

    return ([out] if (out / DATABASE).is_file() else []) + [database_path(p) for p in inputs]


def merged_records(inputs: list[Path], out: Path) -> list:
    """The runs ``merge`` would leave in ``out``: the finished ones of ``out`` (if it has a
    database) and of each input, the first met of each key kept, as the merge keeps it."""
    from afbench.results import FINISHED
    from afbench.store.reading import StoreView

    kept: dict[str, object] = {}
    for source in _sources(inputs, out):
        with StoreView(source) as view:
            for record in view.records():
                if record.status in FINISHED:
                    kept.setdefault(record.key, record)
    return list(kept.values())


def check_designs(inputs: list[Path], out: Path) -> None:
    """Refuse a merge that would judge runs by a --seeds auto design they were not part
    of: two folders with different designs (the merged folder keeps one), or one
    design beside another folder's runs of its settings (its looks would replay them)."""
    from afbench.stats import settings
    from afbench.store.reading import StoreView
    from afbench.sweep.execute import stored_design

    sources = _sources(inputs, out)
    designs, identities = [], []
    for source in sources:
        with StoreView(source) as view:
            designs.append(stored_design(view))
            identities.append({settings.identity(r.config) for r in view.records()})
    held = [(i, d) for i, d in enumerate(designs) if d]
    if len({json.dumps(d, sort_keys=True) for _, d in held}) > 1:
        raise AfbenchError("these folders hold different --seeds auto designs, each deciding its own verdicts; a "
                           "merged folder keeps one, which would re-judge the other's runs. Report them apart")
    for i, design in held:
        if any(set(design["settings"]) & ids for j, ids in enumerate(identities) if j != i and not designs[j]):
            raise AfbenchError(f"{sources[i]} holds a --seeds auto sweep whose looks decide its setting, and another "
                               "folder holds runs of that setting; merged, its looks would judge runs they did not "
                               "choose. Report them apart")
