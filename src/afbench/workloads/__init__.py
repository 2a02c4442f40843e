"""Workloads by name: ``classification`` (every image data set x model), ``charlm``,
``inr``, ``pinn``, ``regression`` (each also ``NAME-large``, sized for a GPU), plugins
(entry-point group ``afbench.workloads``) and your own (``PATH.py:NAME`` or
``package.module:NAME``, NAME a function returning a ``Workload``).

>>> from afbench import workloads
>>> w = workloads.get("charlm")
>>> w.primary.name, w.primary.higher_is_better
('bpc', False)

The contract is in ``workloads.base``; ``for_config`` is the one lookup the engine,
the cost profile and the data layer use.
"""

from __future__ import annotations

from functools import lru_cache

from afbench import data
from afbench.errors import AfbenchError
from afbench.plugins import Registry
from afbench.workloads import charlm, classification, inr, pinn, regression
from afbench.workloads.base import Metric, Workload

__all__ = ["CLASSIFICATION", "Metric", "REGISTRY", "Workload", "for_config", "get", "identity", "is_user_workload",
           "load", "load_data", "owns_data", "rows"]

CLASSIFICATION = "classification"
REGISTRY: Registry = Registry("workloads")
for _make in (classification.make, charlm.small, charlm.large, inr.small, inr.large, pinn.small, pinn.large,
              regression.small, regression.large):
    REGISTRY.register(_make().name, _make)  # a factory: each lookup builds a fresh, unshared workload


def is_user_workload(name: str) -> bool:
    from afbench.models import is_user_model

    return is_user_model(name) and name not in REGISTRY


def identity(name: str) -> str:
    """The name a run stores: a registered name, or a user's 'PATH.py:NAME@HASH'."""
    if is_user_workload(name):
        from afbench.models import user

        return user.identity(name)
    return get(name).name


def _registered(name: str) -> Workload:
    return REGISTRY.get(name, hint=" Or your own: --workload PATH.py:NAME (a function returning a Workload).")()


@lru_cache(maxsize=None)
def get(name: str = CLASSIFICATION) -> Workload:
    """The workload ``name`` (registered, plugin, or 'PATH.py:NAME[@HASH]')."""
    if not is_user_workload(name):
        return _registered(name)
    from afbench.models import user

    make, ident = user.load(name)
    try:
        workload = make()
    except Exception as error:  # the user's code: its error, said plainly
        raise AfbenchError(f"workload {name}: {type(error).__name__}: {error}") from None
    if not isinstance(workload, Workload):
        raise AfbenchError(f"workload {name} returned {type(workload).__name__}, not an afbench.workloads.Workload")
    workload.name = ident
    workload.data = f"{ident}#{workload.data}"  # runs name the file that loads their data
    return workload


def for_config(config) -> Workload:
    return get(getattr(config, "workload", CLASSIFICATION))


def _data_owner(name: str) -> Workload | None:
    for key in REGISTRY.names():
        if key != CLASSIFICATION and get(key).owns(name):
            return get(key)
    if "#" in name and is_user_workload(name.split("#", 1)[0]):
        return get(name.split("#", 1)[0])
    return None


def owns_data(name: str) -> bool:
    """Whether ``name`` is a workload's data set (not an image data set)."""
    return _data_owner(name) is not None


def load_data(name: str):
    """The ``Prepared`` splits of workload data set ``name``, on the CPU. A user's
    workload stores its data as 'IDENTITY#DATA': the name says which file loads it."""
    owner = _data_owner(name)
    if owner is None:
        raise AfbenchError(f"no workload knows the data set '{name}'")
    return owner.load_data(name.split("#", 1)[1] if "#" in name else name)


def load(name: str, data_dir=None, **options):
    """Any data set by name: a workload's own (its ``Prepared`` splits) or an image
    data set (``afbench.data.load``'s ``ImageData``, with its ``options``)."""
    if owns_data(name):
        return load_data(name)
    return data.load(name, data_dir, **options)


def rows() -> list[dict]:
    """One row per workload for `afbench list workloads`."""
    out = []
    for key in REGISTRY.names():
        w = get(key)
        try:
            available = w.data_available()
        except Exception:  # availability is a question, never a crash
            available = False
        out.append({"workload": w.name, "family": w.family, "data": w.data, "model": " | ".join(w.model_names),
                    "metric": w.primary.name, "direction": w.primary.direction, "size": w.size,
                    "target": w.target, "available": available, "description": w.description, **w.defaults})
    return out
