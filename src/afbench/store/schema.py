"""Every table of the results database and every migration, in one place.

Tables: ``runs`` (one row per run, its settings, state and final metrics), ``epochs``
(one row per run and epoch), ``meta`` (sweep-wide facts: class counts, the study,
the alpha of --seeds auto), ``cost`` (the cost profile: one row per activation and
measured setting) and ``merge_conflicts`` (attempts of a run that a merge met after
the one it kept).

``PRAGMA user_version`` counts the migrations applied. A database is migrated when a
``Store`` opens it for writing; a read-only ``StoreView`` of an older database
migrates a private in-memory copy, so every reader sees the current schema and keys.
"""

from __future__ import annotations

import json
import sqlite3

from afbench.config import RunConfig
from afbench.errors import AfbenchError

COST_KEY = ("model", "dataset", "input_shape", "activation", "device", "threads", "batch_size", "dtype",
            "optimizer", "norm", "match_params", "afbench_version")
CORE_TABLES = ("runs", "epochs", "meta", "cost", "merge_conflicts")

COST_DDL = """
CREATE TABLE cost (
    model TEXT NOT NULL, dataset TEXT NOT NULL,       -- the data set as the runs name it
    input_shape TEXT NOT NULL,                        -- CxHxW, e.g. 1x28x28
    activation TEXT NOT NULL, device TEXT NOT NULL, threads INTEGER NOT NULL, batch_size INTEGER NOT NULL,
    dtype TEXT NOT NULL,                              -- the dtype the steps ran in, e.g. float32
    optimizer TEXT NOT NULL, norm TEXT NOT NULL,      -- '' where unknown (never matches a run)
    match_params INTEGER NOT NULL,
    afbench_version TEXT NOT NULL,
    profile_id TEXT NOT NULL,                         -- rows measured in one interleaved profile
    measured_at REAL NOT NULL,                        -- unix time
    record TEXT NOT NULL,                             -- the whole cost.csv row as JSON
    PRIMARY KEY (model, dataset, input_shape, activation, device, threads, batch_size, dtype, optimizer, norm,
                 match_params, afbench_version)
)"""

CONFLICTS_DDL = """
CREATE TABLE IF NOT EXISTS merge_conflicts (
    key TEXT NOT NULL,            -- the run's key; the kept attempt is in runs
    digest TEXT NOT NULL,         -- hash of this attempt's summary and epochs: one row per distinct attempt
    source TEXT NOT NULL,         -- the database it came from
    status TEXT NOT NULL, summary TEXT, provenance TEXT,
    epochs TEXT NOT NULL,         -- this attempt's epoch records (JSON list)
    differs TEXT NOT NULL,        -- summary keys whose values differ from the kept attempt (JSON list)
    merged REAL NOT NULL,
    PRIMARY KEY (key, digest))"""


def cost_key(row: dict) -> tuple:
    """The values of ``COST_KEY`` for a cost row: the setting it was measured in. A row
    applies to that setting only (issue 29: an MLP on 8x8 digits is not an MLP on MNIST)."""
    return (row["model"], row.get("dataset") or "", shape_text(row["input_shape"]), row["activation"], row["device"],
            int(row["threads"]), int(row["batch_size"]),
            # the profile steps in torch's default dtype, float32, unless a row says otherwise
            row.get("dtype") or "float32",
            row.get("optimizer") or "", norm_text(row.get("norm")), int(bool(row.get("match_params"))),
            row["afbench_version"])


def norm_text(norm) -> str:
    """A RunConfig's norm as the cost key stores it: None (the model's own) as 'default'."""
    return "default" if norm is None else str(norm)


def shape_text(shape) -> str:
    """(C, H, W) or "CxHxW" as the cost table stores it: "CxHxW"."""
    return shape if isinstance(shape, str) else "x".join(map(str, shape))


def _rekey(db: sqlite3.Connection) -> None:
    """afbench 0.1.0 keyed runs by a hash of every setting; keys now hash only the
    settings that differ from their defaults (RunConfig.key), so that a new setting
    with a default changes no stored key. Recompute every key from its stored config.
    A config that cannot be read (damaged JSON, unknown fields) keeps its key: readers
    refuse that run by name instead of the whole database failing to open."""
    db.execute("PRAGMA defer_foreign_keys = ON")  # runs and epochs change keys together; checked at commit
    rows = db.execute("SELECT key, config FROM runs").fetchall()
    for old, config in rows:
        try:
            new = RunConfig.from_dict(json.loads(config)).key()
        except (ValueError, TypeError, AfbenchError):
            continue
        if new != old:
            db.execute("UPDATE runs SET key = ? WHERE key = ?", (new, old))
            db.execute("UPDATE epochs SET run_key = ? WHERE run_key = ?", (new, old))


def _cost_and_conflicts(db: sqlite3.Connection) -> None:
    """The cost and merge_conflicts tables join the migrations (afbench 0.2.0 created
    them outside, on first use). 0.2.0's cost rows were keyed by model, input shape,
    activation, device, threads, batch size and version, so an MLP profiled on digits
    and one on MNIST looked alike to the report. Old rows are moved into the exact key:
    data set, optimizer, norm and match_params come from the row's own JSON record;
    dtype is float32 (0.2.0 profiled in torch's default dtype, without autocast). A row
    whose record lacks a field gets '' there, so it no longer matches any setting (it is
    measured again when needed) rather than being guessed onto one. A cost table that
    is not afbench's (no record column) is kept, renamed cost_legacy."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.execute(CONFLICTS_DDL)
    if "cost" not in tables:
        db.execute(COST_DDL)
        return
    columns = {r[1] for r in db.execute("PRAGMA table_info(cost)")}
    db.execute("ALTER TABLE cost RENAME TO cost_legacy")
    db.execute(COST_DDL)
    if "record" not in columns:
        return
    for (text,) in db.execute("SELECT record FROM cost_legacy ORDER BY measured_at").fetchall():
        try:
            row = json.loads(text)
            row.setdefault("dataset", "")
            row.setdefault("optimizer", "")
            row.setdefault("norm", "")  # '' , not None: None would read as the model's own norm
            insert_cost(db, row, replace=True)
        except (ValueError, TypeError, KeyError):
            continue  # a damaged row of a measurement: it is measured again when needed
    db.execute("DROP TABLE cost_legacy")


def insert_cost(db: sqlite3.Connection, row: dict, replace: bool = True) -> int:
    """Insert one cost row (replace: over the row of the same setting; else keep that one)."""
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
    record = json.dumps({k: _clean(v) for k, v in row.items()})
    return db.execute(f"{verb} INTO cost ({', '.join(COST_KEY)}, profile_id, measured_at, record) "
                      f"VALUES ({', '.join('?' * (len(COST_KEY) + 3))})",
                      cost_key(row) + (row["profile_id"], row["measured_at"], record)).rowcount


def _clean(value):
    """JSON has no NaN: store it as null."""
    return None if isinstance(value, float) and value != value else value


# Versioned migrations: entry i upgrades user_version i to i + 1. Append, never edit.
# An entry is SQL, or a function of the connection for changes SQL cannot express.
# A new cost.csv column is a key of cost.record and needs none: rows measured before it
# lack the key, and readers take that as not measured (latency_ms_low / _high). A
# migration that changed nothing would only make older afbench refuse the database.
MIGRATIONS = (
    """
    CREATE TABLE runs (
        key TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'diverged')),
        activation TEXT NOT NULL, model TEXT NOT NULL, dataset TEXT NOT NULL,
        seed INTEGER NOT NULL, lr REAL NOT NULL,
        config TEXT NOT NULL,          -- the resolved RunConfig as JSON
        provenance TEXT,               -- versions, device, threads, code revision (JSON)
        summary TEXT,                  -- final metrics (JSON)
        error TEXT,
        owner TEXT, heartbeat REAL,    -- who runs it, and when it last reported
        attempts INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL, updated REAL NOT NULL
    );
    CREATE TABLE epochs (
        run_key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        record TEXT NOT NULL,          -- the epoch's metrics (JSON)
        PRIMARY KEY (run_key, epoch)
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE INDEX runs_by_status ON runs(status);
    """,
    _rekey,
    _cost_and_conflicts,
)
VERSION = len(MIGRATIONS)  # the schema this afbench writes


def version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def tables(db: sqlite3.Connection) -> dict[str, str]:
    """name -> CREATE statement of every table (SQLite's own excluded)."""
    return {row[0]: row[1] for row in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                                 "AND name NOT LIKE 'sqlite_%'")}


def check(db: sqlite3.Connection, path, fix: str = "choose another --out") -> int:
    """The database's schema version, or an AfbenchError for a newer schema or a
    database of another program (tables, but no afbench schema), ending with ``fix``
    (a folder to write to: another --out; one to read: afbench results)."""
    found = version(db)
    if found > VERSION:
        raise AfbenchError(f"{path} has schema version {found}, newer than this afbench ({VERSION}): "
                           "upgrade afbench")
    if found == 0 and tables(db):
        raise AfbenchError(f"{path} is an SQLite database of another program (tables: "
                           f"{', '.join(sorted(tables(db)))}), not afbench results: {fix}")
    return found


def migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations ``db`` lacks. The caller holds the transaction."""
    for step in range(version(db), VERSION):
        if callable(MIGRATIONS[step]):
            MIGRATIONS[step](db)
        else:
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute(f"PRAGMA user_version = {step + 1}")
