"""The results database: SQLite in WAL mode, one row per run and per run-epoch.

A run is identified by the hash of its resolved config. Claiming a run is one
IMMEDIATE transaction, so two afbench processes sweeping into one database never
run the same cell. A run left 'running' by a process that no longer exists (kill -9)
is claimed again and redone; done and diverged runs are never redone.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from afbench.config import RunConfig
from afbench.errors import AfbenchError
from afbench.results import FINISHED as _FINISHED, EpochRecord, RunSummary, Status
from afbench.store import schema
from afbench.store.reading import Reader
from afbench.store.schema import MIGRATIONS

__all__ = ["FINISHED", "MIGRATIONS", "Store", "current_owner", "owner_alive"]

FINISHED = tuple(s.value for s in _FINISHED)
LOCK_WAIT_S = 600.0  # how long a writer waits, with backoff, for another process's write lock
STALE_REMOTE_S = 3600.0  # a run owned by another host is presumed dead after an hour of silence


def _process_start(pid: int) -> str:
    """The kernel's start time of ``pid``, so a reused pid is not mistaken for the owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def current_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}"


def owner_alive(owner: str | None, heartbeat: float | None) -> bool:
    if not owner:
        return False
    host, pid, started = owner.rsplit(":", 2)
    if host != socket.gethostname():
        return heartbeat is not None and time.time() - heartbeat < STALE_REMOTE_S
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        pass  # exists, owned by another user
    return started == "?" or _process_start(int(pid)) == started


class Store(Reader):
    """Open (and create or migrate) ``results.sqlite`` in ``folder``: the read-write handle of
    a sweep. Whatever only reads opens a ``StoreView`` instead."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "results.sqlite"
        if self.path.is_dir():  # SQLite would only say "unable to open database file"
            raise AfbenchError(f"{self.path} is a folder where the results database should be: move it away or "
                               "choose another --out")
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)  # explicit transactions
        self.db.row_factory = sqlite3.Row
        try:
            # before anything writes, even the journal mode; another process creating or opening the
            # same database at this moment can make SQLite answer "locked" at once: wait for it
            self._waiting_out_locks(lambda: (self._check_foreign(), self.db.execute("PRAGMA journal_mode=WAL")))
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise AfbenchError(f"{self.path} is not an afbench results database ({err}): move it away or choose "
                               "another --out") from None
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=60000")
        self.owner = current_owner()
        self._migrate()

    def _check_foreign(self) -> None:
        """Refuse an SQLite file that holds other tables and no afbench schema: adding
        afbench's tables to someone else's database would be vandalism. The schema version and
        the tables are read in one transaction: another afbench creating the schema between two
        reads would otherwise look like a foreign database (version 0, yet tables)."""
        try:
            self.db.execute("BEGIN")
            try:
                schema.check(self.db, self.path)
            finally:
                self.db.execute("ROLLBACK")
        except AfbenchError:
            self.db.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._begin()
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _begin(self) -> None:
        """Take the write lock now (no lost updates between processes)."""
        self._waiting_out_locks(lambda: self.db.execute("BEGIN IMMEDIATE"))

    def _waiting_out_locks(self, action) -> None:
        """Run ``action``; while another client holds a lock it needs (a backup, a viewer, another
        afbench), wait with backoff, then say so."""
        start, pause = time.monotonic(), 0.5
        while True:
            try:
                action()
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
                waited = time.monotonic() - start
                if waited >= LOCK_WAIT_S:
                    raise AfbenchError(f"{self.path} stayed locked by another process for {waited:.0f} s. Close "
                                       "whatever holds it (a database viewer, another afbench) and rerun the same "
                                       "command: finished runs are kept") from None
                if pause == 4.0:  # said once, after a few seconds of waiting
                    print(f"waiting for {self.path}: another process holds its write lock (up to "
                          f"{LOCK_WAIT_S:.0f} s)", file=sys.stderr, flush=True)
                time.sleep(min(pause, max(0.0, LOCK_WAIT_S - waited)))
                pause = min(pause * 2, 30.0)

    def _migrate(self) -> None:
        with self.transaction() as db:
            schema.check(db, self.path)
            schema.migrate(db)

    # ---- writing -------------------------------------------------------------------

    def enqueue(self, configs: list[RunConfig]) -> None:
        """Register runs as queued; runs already known keep their state."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO runs (key, status, activation, model, dataset, seed, lr, config, created, "
                "updated) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                [(c.key(), c.activation, c.model, c.dataset, c.seed, c.lr, json.dumps(c.to_dict()), now, now)
                 for c in configs])

    def claim(self, config: RunConfig, retry_failed_before: float | None = None) -> bool:
        """Atomically take a run that is queued, failed, or abandoned by a dead
        process. False when it is finished or alive in another process, and for a
        run that failed at or after ``retry_failed_before`` (the current sweep's
        start: its workers do not retry each other's failures)."""
        key, now = config.key(), time.time()
        with self.transaction() as db:
            row = db.execute("SELECT status, owner, heartbeat, updated FROM runs WHERE key = ?", (key,)).fetchone()
            if row is None:
                db.execute("INSERT INTO runs (key, status, activation, model, dataset, seed, lr, config, created, "
                           "updated) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                           (key, config.activation, config.model, config.dataset, config.seed, config.lr,
                            json.dumps(config.to_dict()), now, now))
            elif row["status"] in FINISHED:
                return False
            elif (row["status"] == "failed" and retry_failed_before is not None
                  and row["updated"] >= retry_failed_before):
                return False
            elif row["status"] == "running" and owner_alive(row["owner"], row["heartbeat"]):
                return False
            db.execute("DELETE FROM epochs WHERE run_key = ?", (key,))  # a redo starts clean
            db.execute("UPDATE runs SET status = 'running', owner = ?, heartbeat = ?, updated = ?, error = NULL, "
                       "attempts = attempts + 1 WHERE key = ?", (self.owner, now, now, key))
            return True

    def record_epoch(self, key: str, record: EpochRecord) -> None:
        """Write one epoch as soon as it ends: a crash loses at most the epoch in progress."""
        now = time.time()
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO epochs (run_key, epoch, record) VALUES (?, ?, ?)",
                       (key, record.epoch, json.dumps(record.to_dict())))
            db.execute("UPDATE runs SET heartbeat = ?, updated = ? WHERE key = ?", (now, now, key))

    def finish(self, key: str, status: Status, summary: RunSummary, provenance: dict) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET status = ?, summary = ?, provenance = ?, updated = ?, owner = NULL "
                       "WHERE key = ?", (Status(status).value, json.dumps(summary.to_dict()), json.dumps(provenance),
                                         time.time(), key))

    def fail(self, key: str, error: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET status = 'failed', error = ?, updated = ?, owner = NULL WHERE key = ?",
                       (error, time.time(), key))

    def release(self, key: str) -> None:
        """Give a run back to the queue (interrupted by the user)."""
        with self.transaction() as db:
            db.execute("DELETE FROM epochs WHERE run_key = ?", (key,))
            db.execute("UPDATE runs SET status = 'queued', owner = NULL, updated = ? WHERE key = ?",
                       (time.time(), key))

    def keep_finished_only(self) -> None:
        """Delete every run that is not done or diverged, every epoch record and every
        step time, then compact the file into one (no WAL): how stored baselines ship."""
        with self.transaction() as db:
            db.execute("DELETE FROM epochs")
            db.execute("DELETE FROM runs WHERE status NOT IN ('done', 'diverged')")
            db.execute("DELETE FROM cost")
        self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.execute("VACUUM")

    def set_meta(self, key: str, value) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def save_cost(self, rows: list[dict]) -> None:
        """Insert or replace cost rows, each under its exact setting (schema.cost_key), in one
        transaction: a profile's rows land together or not at all."""
        with self.transaction() as db:
            for row in rows:
                schema.insert_cost(db, row)
