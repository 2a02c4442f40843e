"""One registry mechanism for everything a user or a plugin package can add.

A ``Registry`` is a dict from name to object, read through ``errors.lookup`` (unknown
names fail with the valid ones). Installed packages add entries through Python entry
points in the group ``afbench.<kind>`` (``afbench.activations``, ``afbench.models``,
``afbench.datasets``, ``afbench.backends``, ...): each entry point names an object to
register under the entry point's name. Entry points are read on first lookup in every
process, so spawned workers and Ray nodes that have the plugin installed see it too.

A plugin package declares, in its pyproject.toml::

    [project.entry-points."afbench.activations"]
    twice = "my_package.acts:Twice"      # an nn.Module class, a function or an ActivationSpec

A broken entry point (its import fails) never takes the others down: it is reported,
with the package to fix, when its own name is asked for.
"""

from __future__ import annotations

from importlib import metadata
from typing import Callable, Generic, Iterator, TypeVar

from afbench.errors import AfbenchError, lookup

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind; built-ins registered in code, plugins by entry point.

    ``adapt(name, obj)`` turns what an entry point names into an entry (e.g. a module
    class into an ``ActivationSpec``); it raises ``AfbenchError`` for objects it cannot use.
    """

    def __init__(self, kind: str, aliases: dict[str, str] | None = None,
                 adapt: Callable[[str, object], T] | None = None, label: str | None = None):
        self.kind = kind                  # e.g. "activations": also the entry-point group's suffix
        self.label = label or kind.rstrip("s")  # how messages name one entry: "activation", "data set"
        self.aliases = dict(aliases or {})
        self._adapt = adapt
        self._entries: dict[str, T] = {}  # in registration order: built-ins first, then plugins
        self._broken: dict[str, str] = {}  # plugin name -> why it could not be loaded
        self._origins: dict[str, str] = {}  # plugin name -> its entry point's 'module:attr'
        self._plugins_loaded = False

    @property
    def group(self) -> str:
        return f"afbench.{self.kind}"

    def register(self, name: str, entry: T | None = None, aliases: tuple[str, ...] = ()) -> T | Callable[[T], T]:
        """``registry.register("name", obj)``, or ``@registry.register("name")`` as a decorator."""
        if entry is None:
            return lambda obj: self.register(name, obj, aliases)
        self._entries[name] = entry
        self.aliases.update({alias: name for alias in aliases})
        return entry

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for point in sorted(metadata.entry_points(group=self.group), key=lambda p: p.name):
            if point.name in self._entries or point.name in self.aliases:
                continue  # a built-in name wins: a plugin cannot silently replace relu
            try:
                loaded = point.load()
                entry = self._adapt(point.name, loaded) if self._adapt else loaded
            except Exception as error:  # a broken plugin names itself, never a traceback
                package = point.dist.name if getattr(point, "dist", None) else "the package that provides it"
                self._broken[point.name] = (
                    f"plugin {self.label} '{point.name}' ({point.value}, entry point group {self.group}) "
                    f"could not be loaded: {type(error).__name__}: {error}. Fix or uninstall {package}")
                continue
            self.register(point.name, entry, tuple(getattr(entry, "aliases", ())))
            self._origins[point.name] = point.value

    def origin(self, name: str) -> str | None:
        """'module:attr' of the entry point behind a plugin's entry; None for a built-in."""
        self._load_plugins()
        return self._origins.get(name)

    def names(self) -> list[str]:
        """Every usable name, sorted."""
        self._load_plugins()
        return sorted(self._entries)

    def values(self) -> list[T]:
        """Every entry in registration order: built-ins as the code lists them, then plugins."""
        self._load_plugins()
        return list(self._entries.values())

    def canonical(self, name: str, hint: str = "") -> str:
        """The registered name for ``name`` (case-insensitive, '-' for '_', aliases)."""
        self._load_plugins()
        broken = self._broken.get(str(name).strip().lower().replace("-", "_"))
        if broken:
            raise AfbenchError(broken)
        return lookup(self.label, name, self._entries, self.aliases, hint)

    def get(self, name: str, hint: str = "") -> T:
        return self._entries[self.canonical(name, hint)]

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        self._load_plugins()
        return sorted(self._entries.items())
