"""Merge results databases from several machines or people into one out folder.

A run is its key (the hash of its settings), so runs with the same key are one run:
it appears once. When two inputs hold different finished results for one key (two
machines never time alike, so this is the rule, not the exception, for a run done
twice), the first one met is kept and the other attempt goes to the side table
``merge_conflicts``, with the summary keys that differ. Only finished runs (done,
diverged) are merged; queued, running and failed ones are counted as skipped.

Inputs are opened read-only (SQLite ``mode=ro``) and never changed. Merging is
idempotent: merging again, or merging the output with one of its inputs, adds no row.
Other tables an input holds (the cost profile ``cost``, an earlier ``merge_conflicts``)
are copied row by row with their columns as they are (device, threads ...), skipping
rows already present.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from afbench.errors import AfbenchError
from afbench.store.database import FINISHED, MIGRATIONS, Store

CORE_TABLES = ("runs", "epochs", "meta")
CONFLICTS = """CREATE TABLE IF NOT EXISTS merge_conflicts (
    key TEXT NOT NULL,            -- the run's key; the kept attempt is in runs
    digest TEXT NOT NULL,         -- hash of this attempt's summary and epochs: one row per distinct attempt
    source TEXT NOT NULL,         -- the database it came from
    status TEXT NOT NULL, summary TEXT, provenance TEXT,
    epochs TEXT NOT NULL,         -- this attempt's epoch records (JSON list)
    differs TEXT NOT NULL,        -- summary keys whose values differ from the kept attempt (JSON list)
    merged REAL NOT NULL,
    PRIMARY KEY (key, digest))"""


def is_timing(key: str) -> bool:
    """Summary keys that measure time (seconds, ms per sample, throughput): two
    machines, or two runs on one, never agree on them."""
    return key.endswith("_s") or key.startswith(("ms_per_sample", "throughput"))


def _database(path: Path) -> Path:
    path = Path(path)
    found = path / "results.sqlite" if path.is_dir() else path
    if not found.is_file():
        raise AfbenchError(f"{path} holds no results.sqlite: give out folders written by `afbench run`")
    return found


def _open_read_only(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        db.close()
        raise AfbenchError(f"{path} has schema version {version}, newer than this afbench ({len(MIGRATIONS)}): "
                           "upgrade afbench")
    return db


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def _tables(db: sqlite3.Connection) -> dict[str, str]:
    return {row[0]: row[1] for row in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                                 "AND name NOT LIKE 'sqlite_%'")}


def _epochs(db: sqlite3.Connection, key: str) -> list[dict]:
    return [json.loads(row[0]) for row in db.execute("SELECT record FROM epochs WHERE run_key = ? ORDER BY epoch",
                                                     (key,))]


def _digest(summary: str | None, epochs: list[dict]) -> str:
    blob = json.dumps([json.loads(summary or "{}"), epochs], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _differs(kept: str | None, other: str | None) -> list[str]:
    a, b = json.loads(kept or "{}"), json.loads(other or "{}")
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _insert_run(out: sqlite3.Connection, row: sqlite3.Row, epochs: list[dict], columns: list[str]) -> None:
    values = {c: row[c] for c in row.keys() if c in columns}
    values.update(owner=None, heartbeat=None)  # nobody runs it here
    out.execute("DELETE FROM epochs WHERE run_key = ?", (row["key"],))
    out.execute("DELETE FROM runs WHERE key = ?", (row["key"],))
    out.execute(f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                list(values.values()))
    out.executemany("INSERT INTO epochs (run_key, epoch, record) VALUES (?, ?, ?)",
                    [(row["key"], e["epoch"], json.dumps(e)) for e in epochs])


def _merge_runs(src: sqlite3.Connection, out: sqlite3.Connection, source: str, summary: dict) -> None:
    columns = _columns(out, "runs")
    for row in src.execute("SELECT * FROM runs ORDER BY rowid").fetchall():
        if row["status"] not in FINISHED:
            summary["skipped"][row["status"]] = summary["skipped"].get(row["status"], 0) + 1
            continue
        epochs = _epochs(src, row["key"])
        mine = out.execute("SELECT status, summary FROM runs WHERE key = ?", (row["key"],)).fetchone()
        if mine is None or mine["status"] not in FINISHED:
            _insert_run(out, row, epochs, columns)
            summary["added"] += 1
            continue
        digest = _digest(row["summary"], epochs)
        if digest == _digest(mine["summary"], _epochs(out, row["key"])):
            summary["identical"] += 1
            continue
        differs = _differs(mine["summary"], row["summary"])
        added = out.execute("INSERT OR IGNORE INTO merge_conflicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (row["key"], digest, source, row["status"], row["summary"], row["provenance"],
                             json.dumps(epochs), json.dumps(differs), time.time())).rowcount
        kind = "timings" if all(is_timing(k) for k in differs) else "results"
        summary["conflicts"][kind] += added
        summary["conflicts_known"] += 1 - added


def _merge_meta(src: sqlite3.Connection, out: sqlite3.Connection, summary: dict) -> None:
    mine = {row[0]: json.loads(row[1]) for row in out.execute("SELECT key, value FROM meta")}
    for key, text in src.execute("SELECT key, value FROM meta").fetchall():
        value = json.loads(text)
        if key == "class_counts" and isinstance(value, dict):
            value = {**value, **mine.get(key, {})}  # union by data set; counts of one data set are its own
        elif key in mine:
            if mine[key] != value and key not in summary["meta_kept"]:
                summary["meta_kept"].append(key)  # first one met wins
            continue
        if mine.get(key) != value:
            out.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
            mine[key] = value


def _copy_table(src: sqlite3.Connection, out: sqlite3.Connection, name: str, sql: str, summary: dict) -> None:
    """Copy the rows of a table afbench's core schema does not know (cost, ...), as
    they are, skipping rows already present (compared column by column)."""
    if name not in _tables(out):
        out.execute(sql)
    columns = [c for c in _columns(src, name) if c in _columns(out, name)]
    quoted = ", ".join(f'"{c}"' for c in columns)
    match = " AND ".join(f'"{c}" IS ?' for c in columns)
    added = 0
    for row in src.execute(f'SELECT {quoted} FROM "{name}"').fetchall():
        if out.execute(f'SELECT 1 FROM "{name}" WHERE {match} LIMIT 1', tuple(row)).fetchone() is None:
            out.execute(f'INSERT OR IGNORE INTO "{name}" ({quoted}) VALUES ({", ".join("?" * len(columns))})',
                        tuple(row))
            added += 1
    summary["tables"][name] = summary["tables"].get(name, 0) + added


def merge(inputs: list[Path], out: Path, baseline: str = "relu", report: bool = True) -> dict:
    """Merge the results databases of ``inputs`` (out folders or .sqlite files) into
    ``out``/results.sqlite, then write the report there. Returns a summary: runs
    added, identical, conflicts (new ones, by kind: timings only or results), skipped
    by status, other tables' rows added, meta keys where the first value was kept."""
    sources = [_database(p) for p in inputs]
    if not sources:
        raise AfbenchError("merge needs at least one input folder")
    store = Store(out)
    summary = {"inputs": [str(p) for p in sources], "added": 0, "identical": 0,
               "conflicts": {"timings": 0, "results": 0}, "conflicts_known": 0, "skipped": {}, "tables": {},
               "meta_kept": [], "out": str(store.path)}
    try:
        with store.transaction() as db:
            db.execute(CONFLICTS)
            for path in sources:
                if path.resolve() == store.path.resolve():
                    continue  # the output itself: its rows are already here
                src = _open_read_only(path)
                try:
                    _merge_runs(src, db, str(path), summary)
                    _merge_meta(src, db, summary)
                    for name, sql in _tables(src).items():
                        if name not in CORE_TABLES and sql:
                            _copy_table(src, db, name, sql, summary)
                finally:
                    src.close()
        summary["runs"] = store.counts()
    finally:
        store.close()
    if report:
        from afbench.report import render

        render.write(out, baseline)
    return summary


def describe(summary: dict) -> str:
    """The merge summary as a few lines for people."""
    conflicts = summary["conflicts"]
    lines = [f"merged {len(summary['inputs'])} databases into {summary['out']}: {summary['added']} runs added, "
             f"{summary['identical']} already there with identical results",
             f"runs now: {', '.join(f'{n} {s}' for s, n in sorted(summary['runs'].items())) or 'none'}"]
    if conflicts["timings"] or conflicts["results"]:
        lines.append(f"{conflicts['timings'] + conflicts['results']} runs were done more than once with different "
                     f"results ({conflicts['timings']} in timings only, {conflicts['results']} in accuracy or "
                     "other metrics): the first one met is kept, the others are in table merge_conflicts")
    if summary["conflicts_known"]:
        lines.append(f"{summary['conflicts_known']} other attempts were already in merge_conflicts")
    if summary["skipped"]:
        lines.append("skipped unfinished runs: " + ", ".join(f"{n} {s}" for s, n in sorted(summary["skipped"].items())))
    for name, added in summary["tables"].items():
        lines.append(f"table {name}: {added} rows added")
    if summary["meta_kept"]:
        lines.append(f"meta keys that differed (first value kept): {', '.join(summary['meta_kept'])}")
    return "\n".join(lines)
