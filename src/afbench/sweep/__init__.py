"""Sweeps: a grid of runs executed into a resumable results database.

``execute(grid, out)`` is the one entry point (afbench run, the studies and the Python
API); backends (``LocalBackend``, ``ray_backend.RayBackend``) receive the configs.
"""

from afbench.sweep.execute import Outcome, execute, execute_until_decided
from afbench.sweep.grid import Grid
from afbench.sweep.local import LocalBackend
from afbench.sweep.options import Runtime

__all__ = ["Grid", "LocalBackend", "Outcome", "Runtime", "execute", "execute_until_decided"]
