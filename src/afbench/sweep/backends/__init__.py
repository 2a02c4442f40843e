"""Where a sweep's runs execute. One driver (``driver.drive``) enqueues, claims, runs,
records and releases for every backend; a backend (``base.Backend``) only says how a
batch of jobs runs: ``local`` (this machine, worker processes) or ``ray`` (a cluster).

Backends are looked up by name in ``BACKENDS``; an installed package adds one through
the entry-point group ``afbench.backends`` (a class taking ``runtime=``).

>>> from afbench.sweep.backends import create
>>> backend = create("local")                  # doctest: +SKIP
"""

from __future__ import annotations

from afbench.plugins import Registry
from afbench.sweep.backends.base import Backend, Sink, StoreFault, TaskFailed
from afbench.sweep.backends.driver import drive
from afbench.sweep.backends.local import LocalBackend
from afbench.sweep.options import Runtime

BACKENDS: Registry = Registry("backends")
BACKENDS.register("local", LocalBackend)


@BACKENDS.register("ray")
def _ray(runtime: Runtime = Runtime(), options=None, **fields) -> Backend:
    """Ray's backend, imported only when chosen (Ray itself is optional): ``options`` a
    RayOptions, or its fields by name."""
    from afbench.sweep.backends.ray import RayBackend, RayOptions

    return RayBackend(options if options is not None else RayOptions(**fields), runtime=runtime)


def create(name: str, runtime: Runtime = Runtime(), **options) -> Backend:
    """The backend registered as ``name``, built with ``runtime`` (and backend-specific
    ``options``, e.g. Ray's address); unknown names fail with the valid ones."""
    return BACKENDS.get(name)(runtime=runtime, **options)


__all__ = ["BACKENDS", "Backend", "LocalBackend", "Sink", "StoreFault", "TaskFailed", "create", "drive"]
