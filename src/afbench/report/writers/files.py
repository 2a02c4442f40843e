"""The report's files on disk: all or nothing, inside the report's folder, safe CSV.

Every file is first written to a temporary name beside its final one; only when all
of them are complete are they renamed into place (a rename within a folder is atomic).
A disk that fills, a quota, or a file-size limit therefore never leaves a truncated
summary.md or report.html in place of the previous report: it ends in one
AfbenchError naming what was not written, and the previous files stay as they were.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pandas as pd

from afbench.errors import AfbenchError
from afbench.report.model import display

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula


def csv_safe(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a string that would start a formula
    ('=HYPERLINK(...)', '+1+1', '@SUM(...)') gets a leading apostrophe; plain numbers
    written as text ('-0.5') and a lone '-' are left as they are. Non-UTF-8 bytes are
    shown escaped."""
    if not isinstance(value, str):
        return value
    value = display(value)
    if value.startswith(_FORMULA_START) and value != "-" and not _is_number(value):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as CSV (no index), every text cell and heading made safe."""
    safe = frame.rename(columns=lambda c: csv_safe(str(c)))
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(csv_safe)
    buffer = io.StringIO()
    safe.to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


def _listing(names: list[str]) -> str:
    """'summary.md, report.html and 12 figures': every file by name, figures counted."""
    top = [n for n in names if "/" not in n]
    nested = len(names) - len(top)
    return ", ".join(top) + (f" and {nested} figure{'s' if nested != 1 else ''}" if nested else "")


def inside(folder: Path, relative: str) -> Path:
    """``folder``/``relative``, refused if it would lead outside ``folder``."""
    path = (folder / relative).resolve()
    if folder.resolve() not in path.parents:
        raise AfbenchError(f"refusing to write {relative!r} outside the report folder {folder}")
    return path


def write_all(folder: str | Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (path relative to ``folder`` -> content): every one complete under
    a temporary name first, then each renamed into place. On any OSError nothing is
    replaced, the temporaries are removed and one AfbenchError says what was not
    written and why."""
    folder = Path(folder)
    staged: list[tuple[Path, Path]] = []
    current = ""
    try:
        for current, content in files.items():
            relative = current
            path = inside(folder, relative)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            staged.append((temporary, path))
            with open(temporary, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())  # on disk before it replaces the previous file
    except OSError as error:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        shown = _listing(list(files))
        fix = "Restore write access" if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else "Free space"
        raise AfbenchError(f"the report in {folder} was not written: {error.strerror or error} while writing "
                           f"{current}. Not written: {shown}; the previous report "
                           f"files there are unchanged. {fix} (or choose another folder) and rerun "
                           f"`afbench report {folder}`.") from None
    for temporary, path in staged:
        os.replace(temporary, path)
