"""Kept for callers of 0.2.0: the Ray backend lives in ``afbench.sweep.backends.ray``."""

from afbench.sweep.backends.ray import RayBackend, RayOptions, user_files  # noqa: F401
