"""Merge results databases from several machines or people into one out folder.

A run is its key (the hash of its settings), so runs with the same key are one run:
it appears once. Keys are compared as this afbench makes them: each input is read
through a ``StoreView`` (an older schema migrated in a private copy) and every run's
key is recomputed from its stored settings, so a run stored by afbench 0.1.0 and the
same run re-keyed by 0.2.0 are recognised as one. A run's stored settings are copied
as they are, never rewritten: runs that differ in any setting stay separate runs.

When two inputs hold different finished results for one key (two machines never time
alike, so this is the rule, not the exception, for a run done twice), the first one
met is kept and the other attempt goes to the table ``merge_conflicts``, with the
summary keys that differ. Only finished runs (done, diverged) are merged; queued,
running and failed ones are counted as skipped. A run this afbench cannot read (its
settings hold a field it does not know, its summary or an epoch is damaged JSON) is
refused and named, never merged.

Inputs are opened read-only (``mode=ro``; ``immutable=1`` or a private copy on
read-only media) and never changed. The output is written in ONE transaction holding
SQLite's write lock: a second merge into the same output waits for the first, and a
merge killed midway (kill -9) leaves the output as it was before, so running it again
is safe. A merge that fails (an input that is not an afbench database, a full disk)
removes the database and folders it created: nothing new is left behind. Merging is
idempotent: merging again, or merging the output with one of its inputs, adds no row.
The cost profile, earlier merge conflicts and meta are merged too; tables afbench does
not know are copied row by row, skipping rows present.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Iterator

from afbench.errors import AfbenchError
from afbench.store.database import FINISHED, Store
from afbench.store.reading import DamagedRun, StoreView, checked_run, database_path, decode_epoch
from afbench.store.schema import CORE_TABLES


def is_timing(key: str) -> bool:
    """Summary keys that measure time (seconds, ms per sample, throughput): two
    machines, or two runs on one, never agree on them."""
    return key.endswith("_s") or key.startswith(("ms_per_sample", "throughput"))


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]


def _epochs(db: sqlite3.Connection, key: str) -> list[dict]:
    return [json.loads(row[0]) for row in db.execute("SELECT record FROM epochs WHERE run_key = ? ORDER BY epoch",
                                                     (key,))]


def _digest(summary: dict, epochs: list[dict]) -> str:
    blob = json.dumps([summary, epochs], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _loads(text) -> dict:
    try:
        value = json.loads(text or "{}")
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def _differs(kept: dict, other: dict) -> list[str]:
    return sorted(k for k in set(kept) | set(other) if kept.get(k) != other.get(k))


def _insert_run(out: sqlite3.Connection, row: dict, key: str, epochs: list[dict], columns: list[str]) -> None:
    values = {c: row[c] for c in row if c in columns}
    values.update(key=key, owner=None, heartbeat=None)  # the key this afbench gives it; nobody runs it here
    out.execute("DELETE FROM epochs WHERE run_key = ?", (key,))
    out.execute("DELETE FROM runs WHERE key = ?", (key,))
    out.execute(f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                list(values.values()))
    out.executemany("INSERT INTO epochs (run_key, epoch, record) VALUES (?, ?, ?)",
                    [(key, e["epoch"], json.dumps(e)) for e in epochs])


def _readable(view: StoreView, row: dict) -> tuple[str, dict, list[dict]]:
    """(key as this afbench makes it, decoded row, epochs), or DamagedRun naming the run."""
    item, config = checked_run(row)
    epochs = [decode_epoch(row, text) for _, text in view.epoch_rows(row["key"])]
    return config.key(), item, epochs


def _merge_runs(view: StoreView, out: sqlite3.Connection, source: str, summary: dict) -> None:
    columns = _columns(out, "runs")
    for row in view.run_rows():
        if row["status"] not in FINISHED:
            summary["skipped"][row["status"]] = summary["skipped"].get(row["status"], 0) + 1
            continue
        try:
            key, item, epochs = _readable(view, row)
        except DamagedRun as err:
            summary["refused"].append(f"{err} (in {source})")
            continue
        mine = out.execute("SELECT status, summary FROM runs WHERE key = ?", (key,)).fetchone()
        if mine is None or mine[0] not in FINISHED:
            _insert_run(out, row, key, epochs, columns)
            summary["added"] += 1
            continue
        digest, kept = _digest(item["summary"], epochs), _loads(mine[1])
        if digest == _digest(kept, _epochs(out, key)):
            summary["identical"] += 1
            continue
        differs = _differs(kept, item["summary"])
        added = out.execute("INSERT OR IGNORE INTO merge_conflicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (key, digest, source, row["status"], row["summary"], row["provenance"],
                             json.dumps(epochs), json.dumps(differs), time.time())).rowcount
        kind = "timings" if all(is_timing(k) for k in differs) else "results"
        summary["conflicts"][kind] += added
        summary["conflicts_known"] += 1 - added


def _merge_meta(view: StoreView, out: sqlite3.Connection, summary: dict) -> None:
    mine = {}
    for key, text in out.execute("SELECT key, value FROM meta").fetchall():
        try:
            mine[key] = json.loads(text)
        except (ValueError, TypeError):
            mine[key] = None  # damaged here: an input's value replaces it
    for key, value in view.meta().items():
        if key == "class_counts" and isinstance(value, dict):
            value = {**value, **(mine.get(key) or {})}  # union by data set; counts of one data set are its own
        elif key in mine:
            if mine[key] != value and key not in summary["meta_kept"]:
                summary["meta_kept"].append(key)  # first one met wins
            continue
        if mine.get(key) != value:
            out.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
            mine[key] = value


def _merge_core_table(view: StoreView, out: sqlite3.Connection, name: str, rows: list[tuple],
                      summary: dict) -> None:
    """Rows of cost or merge_conflicts (same columns in every current schema), the first
    one met kept under its primary key."""
    added = 0
    for row in rows:
        added += out.execute(f"INSERT OR IGNORE INTO {name} VALUES ({', '.join('?' * len(row))})", row).rowcount
    summary["tables"][name] = summary["tables"].get(name, 0) + added


def _copy_table(view: StoreView, out: sqlite3.Connection, name: str, sql: str, summary: dict) -> None:
    """Copy the rows of a table afbench does not know, as they are, skipping rows already
    present (compared column by column)."""
    if out.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is None:
        out.execute(sql)
    source_columns, rows = view.table_rows(name)
    mine = _columns(out, name)
    keep = [i for i, c in enumerate(source_columns) if c in mine]
    columns = [source_columns[i] for i in keep]
    quoted = ", ".join(f'"{c}"' for c in columns)
    match = " AND ".join(f'"{c}" IS ?' for c in columns)
    added = 0
    for full in rows:
        row = tuple(full[i] for i in keep)
        if out.execute(f'SELECT 1 FROM "{name}" WHERE {match} LIMIT 1', row).fetchone() is None:
            out.execute(f'INSERT OR IGNORE INTO "{name}" ({quoted}) VALUES ({", ".join("?" * len(columns))})', row)
            added += 1
    summary["tables"][name] = summary["tables"].get(name, 0) + added


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def merge(inputs: list[Path], out: Path, *, timings: bool = True) -> dict:
    """Merge the results databases of ``inputs`` (out folders or .sqlite files) into
    ``out``/results.sqlite (the CLI writes the report after). Returns a summary: runs
    added, identical, conflicts (new ones, by kind: timings only or results), skipped
    by status, refused (runs this afbench cannot read, each named), other tables' rows
    added, meta keys where the first value was kept. ``timings=False`` leaves the cost
    table (step times measured on the inputs' machines) out."""
    sources = [database_path(p) for p in inputs]
    if not sources:
        raise AfbenchError("merge needs at least one input folder")
    with removed_on_failure(Path(out)):
        return _merge(sources, Path(out), timings)


@contextmanager
def removed_on_failure(out: Path) -> Iterator[None]:
    """A failed merge leaves nothing new behind: the database and folders it created are
    removed (a merge into an existing database rolls its one transaction back instead)."""
    database = out / "results.sqlite"
    new_database = not database.exists()
    new_folders = [p for p in (out, *out.parents) if not p.exists()]  # the deepest first
    try:
        yield
    except BaseException:
        if new_database and _holds_nothing(database):  # another merge into it may have committed meanwhile
            for suffix in ("", "-wal", "-shm", "-journal"):  # with SQLite's own files beside it
                Path(f"{database}{suffix}").unlink(missing_ok=True)
        for folder in new_folders:
            with suppress(OSError):  # not empty: something else is in it now, so it stays
                folder.rmdir()
        raise


def _holds_nothing(database: Path) -> bool:
    """True when no process is writing ``database`` and it holds no run: only then is it
    this failed merge's own empty file (a second merge into a new folder may have
    created it first, or committed its runs while this one waited and failed)."""
    if not database.exists():
        return False
    try:
        with closing(sqlite3.connect(database, timeout=0.1, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")  # fails while another writer holds it
            try:
                return not db.execute("SELECT name FROM sqlite_master WHERE name = 'runs'").fetchone() or \
                    db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
            finally:
                db.execute("ROLLBACK")
    except sqlite3.OperationalError as error:
        return "locked" not in str(error) and "busy" not in str(error)  # not a database at all: ours to remove
    except sqlite3.DatabaseError:
        return True


def _merge(sources: list[Path], out: Path, timings: bool) -> dict:
    store = Store(out)
    summary = {"inputs": [str(p) for p in sources], "added": 0, "identical": 0,
               "conflicts": {"timings": 0, "results": 0}, "conflicts_known": 0, "skipped": {}, "refused": [],
               "tables": {}, "meta_kept": [], "out": str(store.path)}
    try:
        with store.transaction() as db:  # one writer at a time; all of the merge or nothing
            for path in sources:
                if _same_file(path, store.path):
                    continue  # the output itself: its rows are already here
                with StoreView(path, damaged="raise") as view:
                    _merge_runs(view, db, str(path), summary)
                    _merge_meta(view, db, summary)
                    if timings:
                        _merge_core_table(view, db, "cost", view.cost_table(), summary)
                    _merge_core_table(view, db, "merge_conflicts",
                                      [tuple(r.values()) for r in view.conflict_rows()], summary)
                    for name, sql in view.tables().items():
                        if name not in CORE_TABLES and sql:
                            _copy_table(view, db, name, sql, summary)
        summary["runs"] = store.counts()
    finally:
        store.close()
    return summary


def describe(summary: dict) -> str:
    """The merge summary for people, one fact per line."""
    conflicts, inputs = summary["conflicts"], len(summary["inputs"])
    lines = [f"merged {inputs} database{'' if inputs == 1 else 's'} into {summary['out']}",
             f"runs added: {summary['added']}",
             f"runs already there with identical results: {summary['identical']}",
             f"runs now: {', '.join(f'{n} {s}' for s, n in sorted(summary['runs'].items())) or 'none'}"]
    if conflicts["timings"] or conflicts["results"]:
        lines.append(f"{conflicts['timings'] + conflicts['results']} runs were done more than once with different "
                     f"results ({conflicts['timings']} in timings only, {conflicts['results']} in accuracy or "
                     "other metrics): the first one met is kept, the others are in table merge_conflicts")
    if summary["conflicts_known"]:
        lines.append(f"{summary['conflicts_known']} other attempts were already in merge_conflicts")
    if summary["skipped"]:
        lines.append("skipped unfinished runs: " + ", ".join(f"{n} {s}" for s, n in sorted(summary["skipped"].items())))
    if summary.get("refused"):
        lines.append(f"refused {len(summary['refused'])} runs this afbench cannot read (not merged):")
        lines += [f"  {reason}" for reason in summary["refused"][:20]]
        if len(summary["refused"]) > 20:
            lines.append(f"  ... and {len(summary['refused']) - 20} more")
    for name, added in summary["tables"].items():
        if added or name not in CORE_TABLES:
            lines.append(f"table {name}: {added} rows added")
    if summary["meta_kept"]:
        lines.append(f"meta keys that differed (first value kept): {', '.join(summary['meta_kept'])}")
    return "\n".join(lines)
