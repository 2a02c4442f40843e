"""Reading the results database: the queries every reader shares (``Reader``), and
``StoreView``, the read-only handle of everything that only reads (the report,
``afbench.load``, merge's inputs, the exports).

A view never writes, not even the journal: SQLite's ``mode=ro``, and ``immutable=1``
where the file or its folder cannot be written (a read-only mount, a CD, a snapshot),
since ``mode=ro`` still needs to create the WAL's index file beside the database. A
read-only WAL database whose log still holds pages (its writer was killed) is copied,
log and all, to a private folder and read there, so no committed run is missed. An
older schema is migrated in a private in-memory copy: readers always see current keys
(a run of afbench 0.1.0 under the key it has today) and tables.

A run whose stored JSON is damaged, or whose settings or metrics hold fields this
afbench does not know, is a ``DamagedRun`` naming the run; views built with
``damaged="skip"`` leave such runs out and say so on stderr, once per run.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
import weakref
from pathlib import Path

from afbench.config import RunConfig
from afbench.errors import AfbenchError
from afbench.results import EpochRecord, RunRecord, RunSummary, Status
from afbench.store import schema


class DamagedRun(AfbenchError):
    """A stored run this afbench cannot read: damaged JSON, or fields it does not know."""

    def __init__(self, row: dict, reason: str) -> None:
        self.key = row.get("key")
        self.reason = reason
        super().__init__(f"run {describe_row(row)}: {reason}")


def describe_row(row: dict) -> str:
    """'KEY (activation tanh, seed 3)': a run as a person finds it in runs.csv."""
    return f"{row.get('key')} (activation {row.get('activation')}, seed {row.get('seed')})"


def _json(row: dict, column: str, text):
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, TypeError) as err:
        raise DamagedRun(row, f"its stored {column} is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise DamagedRun(row, f"its stored {column} is not a JSON object")
    return value


def decode_run(row: dict) -> dict:
    """A runs-table row with its JSON columns decoded and checked against this afbench's
    RunConfig and RunSummary; DamagedRun when they do not fit."""
    return checked_run(row)[0]


def checked_run(row: dict) -> tuple[dict, RunConfig]:
    """(decode_run's answer, the run's RunConfig)."""
    item = dict(row)
    for column in ("config", "provenance", "summary"):
        item[column] = _json(row, column, row.get(column))
    try:
        config = RunConfig.from_dict(item["config"])
        if item["summary"]:
            RunSummary.from_dict(item["summary"])
        Status(item["status"])
    except (AfbenchError, TypeError, ValueError) as err:
        raise DamagedRun(row, str(err).splitlines()[0]) from None
    return item, config


def decode_epoch(row: dict, text) -> dict:
    """One stored epoch record, checked; DamagedRun (naming the run) when it does not fit."""
    try:
        values = json.loads(text)
        EpochRecord.from_dict(values)
    except (ValueError, TypeError, AfbenchError) as err:
        raise DamagedRun(row, f"an epoch record cannot be read ({str(err).splitlines()[0]})") from None
    return values


def _record(item: dict) -> RunRecord:
    return RunRecord(key=item["key"], status=Status(item["status"]), config=item["config"],
                     provenance=item["provenance"],
                     summary=RunSummary.from_dict(item["summary"]) if item["summary"] else None,
                     error=item["error"], attempts=item["attempts"])


class Reader:
    """The read queries; ``self.db`` is an open connection with ``sqlite3.Row`` rows.
    ``damaged``: 'raise' (a DamagedRun for the first unreadable run) or 'skip' (leave
    such runs out, said once per run on stderr)."""

    db: sqlite3.Connection
    path: Path
    damaged: str = "raise"

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return schema.version(self.db)

    def tables(self) -> dict[str, str]:
        return schema.tables(self.db)

    def _damaged(self, error: DamagedRun) -> None:
        if self.damaged == "raise":
            raise error
        said = self.__dict__.setdefault("_said", set())
        if error.key not in said:
            said.add(error.key)
            print(f"warning: skipped {error} (in {self.path})", file=sys.stderr, flush=True)

    # ---- runs ----------------------------------------------------------------------

    def run_rows(self, status: str | None = None) -> list[dict]:
        """The runs table as stored: JSON columns as text, in insertion order."""
        query = "SELECT * FROM runs" + (" WHERE status = ?" if status else "") + " ORDER BY rowid"
        return [dict(row) for row in self.db.execute(query, (status,) if status else ()).fetchall()]

    def learning_rates(self) -> set[float]:
        """The distinct learning rates of the runs stored (without reading the runs)."""
        return {row[0] for row in self.db.execute("SELECT DISTINCT lr FROM runs")}

    def epoch_rows(self, key: str) -> list[tuple[int, str]]:
        """(epoch, stored record text) of one run, in epoch order."""
        return [(row[0], row[1]) for row in
                self.db.execute("SELECT epoch, record FROM epochs WHERE run_key = ? ORDER BY epoch", (key,))]

    def runs(self, status: str | None = None) -> list[dict]:
        """Every run with its JSON columns decoded (config, provenance, summary). Skipping
        damaged runs, a run with an unreadable epoch is left out too."""
        out = []
        bad_epochs = self._bad_epoch_keys() if self.damaged == "skip" else set()
        for row in self.run_rows(status):
            if row["key"] in bad_epochs:
                continue
            try:
                out.append(decode_run(row))
            except DamagedRun as err:
                self._damaged(err)
        return out

    def records(self) -> list[RunRecord]:
        """Every run, typed: the report's view of the store."""
        return [_record(item) for item in self.runs()]

    def _bad_epoch_keys(self) -> set[str]:
        """Keys of the runs with an epoch record this afbench cannot read (each said once)."""
        return {key for key, _ in self._decoded_epochs()[1]}

    def _decoded_epochs(self) -> tuple[list[tuple[str, dict]], list[tuple[str, DamagedRun]]]:
        rows = self.db.execute("SELECT e.run_key, e.record, r.key, r.activation, r.seed FROM epochs e "
                               "JOIN runs r ON r.key = e.run_key ORDER BY r.rowid, e.epoch").fetchall()
        decoded, bad = [], []
        for row in rows:
            try:
                decoded.append((row["run_key"], decode_epoch(dict(row), row["record"])))
            except DamagedRun as err:
                self._damaged(err)
                bad.append((row["run_key"], err))
        return decoded, bad

    def _epochs(self) -> list[tuple[str, dict]]:
        decoded, damaged = self._decoded_epochs()
        bad = {key for key, _ in damaged}
        if self.damaged == "skip":
            bad |= {row["key"] for row in self.run_rows() if not _readable(row)}
        return [(key, values) for key, values in decoded if key not in bad]

    def epoch_records(self) -> list[tuple[str, EpochRecord]]:
        """(run key, epoch record) for every recorded epoch, runs in insertion order."""
        return [(key, EpochRecord.from_dict(values)) for key, values in self._epochs()]

    def epochs(self) -> list[dict]:
        return [{"run_key": key, **values} for key, values in self._epochs()]

    def meta(self) -> dict:
        out = {}
        for row in self.db.execute("SELECT key, value FROM meta"):
            try:
                out[row["key"]] = json.loads(row["value"])
            except (ValueError, TypeError):
                print(f"warning: meta key {row['key']!r} in {self.path} is not valid JSON: ignored", file=sys.stderr)
        return out

    def counts(self) -> dict[str, int]:
        return {row[0]: row[1] for row in self.db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")}

    def keys(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT key FROM runs")}

    # ---- the cost profile -----------------------------------------------------------

    def cost_rows(self, model: str | None = None, dataset: str | None = None, input_shape=None,
                  device: str | None = None, threads: int | None = None, batch_size: int | None = None,
                  version: str | None = None, dtype: str | None = None) -> list[dict]:
        """Stored cost rows (cost.csv rows) measured in the given setting, oldest first;
        a filter left None is not applied."""
        filters = {"model": model, "dataset": dataset, "device": device, "dtype": dtype,
                   "input_shape": None if input_shape is None else schema.shape_text(input_shape),
                   "threads": None if threads is None else int(threads),
                   "batch_size": None if batch_size is None else int(batch_size), "afbench_version": version}
        if "cost" not in self.tables():
            return []  # an open connection to a database no Store has migrated yet
        used = {k: v for k, v in filters.items() if v is not None}
        where = " AND ".join(f"{k} = ?" for k in used)
        query = "SELECT record FROM cost" + (f" WHERE {where}" if where else "") + " ORDER BY measured_at, rowid"
        out = []
        for (text,) in self.db.execute(query, tuple(used.values())):
            try:
                out.append(json.loads(text))
            except (ValueError, TypeError):
                continue  # a damaged measurement: as if never measured, so it is measured again
        return out

    def cost_table(self) -> list[tuple]:
        """The cost table as stored (key columns, profile_id, measured_at, record)."""
        return [tuple(row) for row in self.db.execute("SELECT * FROM cost ORDER BY measured_at, rowid")]

    def conflict_rows(self) -> list[dict]:
        return [dict(row) for row in self.db.execute("SELECT * FROM merge_conflicts ORDER BY rowid")]

    def table_rows(self, name: str) -> tuple[list[str], list[tuple]]:
        """(columns, rows) of a table afbench does not know (copied as it is by merge)."""
        if name not in self.tables():
            raise AfbenchError(f"{self.path} has no table {name}")
        columns = [row[1] for row in self.db.execute(f'PRAGMA table_info("{name}")')]
        return columns, [tuple(row) for row in self.db.execute(f'SELECT * FROM "{name}"')]


def _readable(row: dict) -> bool:
    try:
        decode_run(row)
        return True
    except DamagedRun:
        return False


def database_path(source: str | Path) -> Path:
    """The results.sqlite of an out folder (or the file itself); an AfbenchError when absent."""
    path = Path(source)
    found = path / "results.sqlite" if path.is_dir() else path
    if not found.is_file():
        raise AfbenchError(f"{source} holds no results.sqlite: give an out folder written by `afbench run`")
    return found


def writable(path: Path) -> bool:
    """Whether SQLite could write beside ``path`` (False on read-only mounts too: os.access
    answers EROFS there, even for root)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _uri(path: Path, *options: str) -> str:
    return f"{path.resolve().as_uri()}?{'&'.join(options)}"


def connect_read_only(path: Path) -> tuple[sqlite3.Connection, Path | None]:
    """A connection that never writes ``path``, and a private folder to delete with it
    (or None). See the module docstring for the three cases."""
    if writable(path):
        return sqlite3.connect(_uri(path, "mode=ro"), uri=True), None
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        private = Path(tempfile.mkdtemp(prefix="afbench-view-"))
        for part in (path, wal):
            shutil.copyfile(part, private / part.name)
        return sqlite3.connect(_uri(private / path.name, "mode=ro"), uri=True), private
    return sqlite3.connect(_uri(path, "immutable=1"), uri=True), None


class StoreView(Reader):
    """Read-only view of the results database of ``source`` (an out folder or a
    .sqlite file). ``damaged``: 'skip' (default: unreadable runs are left out and named
    on stderr) or 'raise'."""

    def __init__(self, source: str | Path, damaged: str = "skip") -> None:
        self.path = database_path(source)
        self.damaged = damaged
        self.db, private = connect_read_only(self.path)
        if private is not None:
            weakref.finalize(self, shutil.rmtree, private, True)
        self.db.row_factory = sqlite3.Row
        try:
            found = schema.check(self.db, self.path, fix="give a folder that `afbench run` wrote")
            if found < schema.VERSION:
                self._migrated_copy()
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise AfbenchError(f"{self.path} cannot be read as an afbench results database ({err})") from None
        except AfbenchError:
            self.db.close()
            raise

    def _migrated_copy(self) -> None:
        """Read an older schema through a migrated in-memory copy; the file is not touched."""
        memory = sqlite3.connect(":memory:", isolation_level=None)
        self.db.backup(memory)
        self.db.close()
        memory.row_factory = sqlite3.Row
        memory.execute("BEGIN")
        schema.migrate(memory)
        memory.execute("COMMIT")
        self.db = memory


def intact(path: Path) -> bool:
    """Does SQLite's own quick check pass on the database file ``path`` (opened read-only)?"""
    try:
        db = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
        try:
            return db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        finally:
            db.close()
    except sqlite3.Error:
        return False
