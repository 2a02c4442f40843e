"""afbench: benchmark activation functions fairly, fast and reproducibly.

Data flows one way: config -> data + model -> engine -> results store -> report.
"""

__version__ = "0.2.0"


def load(out, epochs: bool = False):
    """The results in folder ``out`` as a pandas DataFrame: one row per run (settings,
    status, summary metrics), or with ``epochs=True`` one row per run and epoch."""
    from afbench.report.frames import load as load_frames  # pandas only when asked

    return load_frames(out, epochs=epochs)


def swap(model, activation, example=None, **options):
    """Replace every activation module of ``model`` with ``activation``; returns what
    was replaced (see afbench.models.swap)."""
    from afbench.models import swap as swap_modules

    return swap_modules(model, activation, example, **options)
