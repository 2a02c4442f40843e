"""One registry mechanism for everything a user or a plugin package can add.

A ``Registry`` is a dict from name to object, read through ``errors.lookup`` (unknown
names fail with the valid ones). Installed packages add entries through Python entry
points in the group ``afbench.<kind>`` (``afbench.activations``, ``afbench.models``,
``afbench.datasets``, ``afbench.backends``, ...): each entry point names an object to
register under the entry point's name. Entry points are read on first lookup in every
process, so spawned workers and Ray nodes that have the plugin installed see it too.
"""

from __future__ import annotations

from importlib import metadata
from typing import Callable, Generic, Iterator, TypeVar

from afbench.errors import AfbenchError, lookup

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind; built-ins registered in code, plugins by entry point."""

    def __init__(self, kind: str, aliases: dict[str, str] | None = None):
        self.kind = kind                  # e.g. "activations": also the entry-point group's suffix
        self.aliases = dict(aliases or {})
        self._entries: dict[str, T] = {}
        self._plugins_loaded = False

    @property
    def group(self) -> str:
        return f"afbench.{self.kind}"

    def register(self, name: str, entry: T | None = None) -> T | Callable[[T], T]:
        """``registry.register("name", obj)``, or ``@registry.register("name")`` as a decorator."""
        if entry is None:
            return lambda obj: self.register(name, obj)
        self._entries[name] = entry
        return entry

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for point in metadata.entry_points(group=self.group):
            if point.name in self._entries:
                continue  # a built-in name wins: a plugin cannot silently replace relu
            try:
                self._entries[point.name] = point.load()
            except Exception as error:  # a broken plugin names itself, never a traceback
                raise AfbenchError(f"plugin entry point '{point.name} = {point.value}' in group {self.group} "
                                   f"could not be loaded: {type(error).__name__}: {error}. Fix or uninstall "
                                   f"the package that provides it.") from error

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def get(self, name: str, hint: str = "") -> T:
        self._load_plugins()
        return self._entries[lookup(self.kind.rstrip("s"), name, self._entries, self.aliases, hint)]

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        self._load_plugins()
        return sorted(self._entries.items())
