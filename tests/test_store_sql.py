"""Issue 24: the results database's SQL lives in afbench/store only. This test reads
every other module's source and fails on an SQL statement or a raw connection, so a
new reader goes through Store / StoreView instead of querying the file its own way."""

import re
from pathlib import Path

import afbench

PACKAGE = Path(afbench.__file__).parent
SQL = re.compile(r"\bSELECT\s+(\*|DISTINCT\b|COUNT\b|[\w.]+\s*,|[\w.]+\s+FROM\b)"
                 r"|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
                 r"|\b(CREATE|DROP|ALTER)\s+(TABLE|INDEX|VIEW)\b|\bPRAGMA\s+\w+"
                 r"|\bBEGIN\s+(IMMEDIATE|EXCLUSIVE|DEFERRED)\b|\bsqlite_master\b|\bsqlite3\.connect\b|\bread_sql")


def offending_lines(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] == "store":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SQL.search(line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_no_sql_outside_the_store():
    assert offending_lines() == []


def test_the_check_finds_what_it_looks_for(tmp_path):
    """The pattern is not vacuous: statements of each kind are found, prose is not."""
    module = tmp_path / "sweep" / "x.py"
    module.parent.mkdir()
    lines = ['db.execute("SELECT key, config FROM runs")', 'q = "SELECT * FROM cost"',
             'db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)")', '"UPDATE runs SET status = 1"',
             '"DELETE FROM epochs"', 'db.execute("PRAGMA user_version")', 'sqlite3.connect(path)',
             'pd.read_sql_query(q, db)', '"CREATE TABLE t (a)"']
    module.write_text("\n".join(lines + ["# we select the best and update the table, then delete nothing"]))
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "ok.py").write_text('"SELECT * FROM runs"')
    assert len(offending_lines(tmp_path)) == len(lines)
