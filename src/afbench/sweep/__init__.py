"""Sweeps: a grid of runs executed into a resumable results database.

``execute(grid, out)`` is the one entry point (afbench run, the studies and the Python
API); it hands the configs to a backend (``backends.create("local" | "ray")``) under
the one driver (``backends.driver``).
"""

from afbench.sweep.execute import Outcome, execute, execute_until_decided
from afbench.sweep.grid import Grid
from afbench.sweep.backends import LocalBackend
from afbench.sweep.options import Runtime

__all__ = ["Grid", "LocalBackend", "Outcome", "Runtime", "execute", "execute_until_decided"]
