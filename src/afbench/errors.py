"""Errors afbench raises on bad input, the one name lookup every registry uses, and bad paths in words."""

from __future__ import annotations

import difflib
import errno
import os
from pathlib import Path
from typing import Iterable, Mapping


class AfbenchError(Exception):
    """Bad input or missing data: the message names the problem and the fix."""


class UnknownNameError(AfbenchError, KeyError):
    """A registry was asked for a name it does not hold."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


def lookup(kind: str, name: str, valid: Iterable[str], aliases: Mapping[str, str] | None = None,
           hint: str = "") -> str:
    """Return the registered name for ``name``: case-insensitive, '-' read as '_',
    aliases resolved. Unknown names fail with the valid ones and the closest match."""
    def normal(text: str) -> str:
        return text.strip().lower().replace("-", "_")

    aliases = aliases or {}
    valid = sorted(valid)
    by_normal = {normal(v): v for v in valid}
    key = aliases.get(normal(name), normal(name))
    if normal(key) in by_normal:
        return by_normal[normal(key)]
    close = difflib.get_close_matches(key, valid + sorted(aliases), n=1)
    maybe = f" Did you mean '{close[0]}'?" if close else ""
    alias_text = f" (aliases: {', '.join(f'{a}={c}' for a, c in sorted(aliases.items()))})" if aliases else ""
    raise UnknownNameError(f"unknown {kind} '{name}'.{maybe} Valid: {', '.join(valid)}{alias_text}.{hint}")


class Interrupted(AfbenchError):
    """A sweep stopped by Ctrl-C (SIGINT) or SIGTERM: what was saved stays saved.

    The CLI prints one line from it and exits with ``128 + signal_number``."""

    def __init__(self, saved: int, total: int, signal_number: int = 2):
        self.saved, self.total, self.signal_number = saved, total, signal_number
        super().__init__(f"interrupted: {saved} of {total} runs saved; rerun the same command to resume")


def path_problem(err: OSError) -> str:
    """An OSError on a path as one sentence for people: the path, what is wrong with it and
    what to do, where Python would print "[Errno 21] Is a directory: 'x.png'"."""
    if err.filename is None:
        return f"{err.strerror or err}".rstrip(".") + ": check the paths given"
    path = os.fsdecode(err.filename)
    if err.errno in (errno.ENOTDIR, errno.EEXIST):  # a folder was needed (or made) where a file is
        in_the_way = _file_on_the_way(Path(path))
        if in_the_way is not None:
            return _from_environment(str(in_the_way), _file_in_the_way(in_the_way))
    problems = {
        errno.EISDIR: f"{path} is a folder where a file is needed: name a file instead",
        errno.ENOENT: f"{path} does not exist, and cannot be made there: check the path, or choose another",
        errno.EACCES: _no_permission(path),
        errno.EPERM: _no_permission(path),
        errno.EROFS: f"{path} is on a read-only file system: choose a writable place",
        errno.ENOSPC: f"the disk that holds {path} is full: free some space, or choose another disk",
        errno.ENAMETOOLONG: f"{path} is too long a name for the file system: choose a shorter path",
    }
    default = f"{path}: {(err.strerror or str(err)).lower()}: check the path, or choose another"
    return _from_environment(path, problems.get(err.errno, default))


# Folders set by environment variables: a bad one is named with its variable, or a user
# who never typed the path reads "/proc/x does not exist" and looks for it in the flags.
PATH_VARIABLES = ("AFBENCH_CACHE_DIR", "AFBENCH_SLOT_DIR", "AFBENCH_DATA_DIR")


def _from_environment(path: str, message: str) -> str:
    """``message`` with the variable that set ``path`` named, where one did (the path is that
    folder, inside it, or a file or missing folder on the way to it)."""
    target = Path(path).expanduser().absolute()
    for name in PATH_VARIABLES:
        value = os.environ.get(name)
        if not value:
            continue
        folder = Path(value).expanduser().absolute()
        if target == folder or folder in target.parents or (target in folder.parents and not target.is_dir()):
            return (f"{name}={value}: {message}; or set {name} to a folder you may write to (unset, afbench "
                    "uses its user cache)")
    return message


def folder_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be, or become, a folder afbench writes in (a file on its way, no
    write permission), or None. Creates nothing: a command checks its output folder with
    it before minutes of work, and a refused command leaves no empty folder behind."""
    path = Path(path)
    in_the_way = _file_on_the_way(path)
    if in_the_way is not None:
        return _file_in_the_way(in_the_way)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        return _no_permission(existing)
    return None


def _file_on_the_way(path: Path) -> Path | None:
    """The first of ``path``'s parents, or ``path`` itself, that exists and is not a folder."""
    for part in reversed((path, *path.parents)):
        if part.exists() and not part.is_dir():
            return part
    return None


def _file_in_the_way(path) -> str:
    return f"{path} is a file where a folder is needed: choose another path, or move the file away"


def _no_permission(path) -> str:
    return f"no permission to write in {path}: choose a place you may write to, or change its permissions"
