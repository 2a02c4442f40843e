"""afbench: benchmark activation functions fairly, fast and reproducibly.

Data flows one way: config -> data + model -> engine -> results store -> report.
"""

__version__ = "0.2.0"


def load(out, epochs: bool = False):
    """The results in folder ``out`` as a pandas DataFrame: one row per run (settings,
    status, summary metrics), or with ``epochs=True`` one row per run and epoch."""
    from afbench.report.frames import load as load_frames  # pandas only when asked

    return load_frames(out, epochs=epochs)


def differentiable():
    """A context in which every activation runs as plain torch ops, with exact derivatives
    of every order: wrap a loss that differentiates through activations (a gradient
    penalty, a PDE residual) in ``with afbench.differentiable():``. Outside it afbench's
    fast activations give first derivatives only, and a backward pass that asks for a graph
    through one is refused."""
    from afbench.activations.kernels import differentiable as mode

    return mode()


def swap(model, activation, example=None, **options):
    """Replace every activation module of ``model`` with ``activation``; returns what
    was replaced (see afbench.models.swap)."""
    from afbench.models import swap as swap_modules

    return swap_modules(model, activation, example, **options)
