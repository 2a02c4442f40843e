"""Errors afbench raises on bad input, and the one name lookup every registry uses."""

from __future__ import annotations

import difflib
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
