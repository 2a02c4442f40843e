"""The work a backend runs for the driver besides training, as plain functions of the
backend's data cache: ``backend.call(task, *args)`` runs them where user code may run
(a worker process or a Ray task), so a user's model that exits or hangs while being
checked, calibrated or profiled cannot take the sweep down with it."""

from __future__ import annotations

import math
import time

from afbench import activations, models
from afbench.config import RunConfig
from afbench.cost import api as cost
from afbench.engine import train as engine
from afbench.errors import AfbenchError
from afbench import usercode
from afbench.sweep import calibrate, slots
from afbench.sweep.backends.base import TaskFailed
from afbench.sweep.options import Runtime


def check(cache, configs: list[RunConfig]) -> None:
    """Load every data set and build every model once: bad data, a user's model the
    activation swap cannot fully reach, or an activation that cannot be imported or
    built fails now, as bad input (AfbenchError), before anything is queued. A user's
    module that exits or crashes instead ends this process: the caller goes on, and
    each run it touches fails with the reason."""
    for config in {c.data_key() + (c.device,): c for c in configs}.values():
        cache.get(config)
    for name in sorted({c.activation for c in configs}):
        try:
            activations.factory(name)(8)  # imports a module:Name and builds one layer of it
        except AfbenchError:
            raise
        except Exception as error:  # the user's module raised on import or construction
            raise AfbenchError(f"cannot use activation '{name}': {type(error).__name__}: {error}") from None
    for config in {(c.model, c.dataset): c for c in configs}.values():
        engine.build_model(config, cache.get(config))
    # User code runs forward and backward on one real batch, its output checked (usercode).
    usercode.check([c for c in configs if c.workload == "classification"], cache.get)


def check_where_it_runs(backend, configs: list[RunConfig]) -> None:
    """``check`` through ``backend.call`` (a worker, a Ray task): bad input ends the sweep
    with its message; a user's module that exits, crashes or hangs there fails only its
    own runs later, each with the reason."""
    try:
        backend.call(check, configs)
    except TaskFailed as failure:
        if failure.bad_input:
            raise AfbenchError(failure.headline) from None


def plan(cache, runtime: Runtime, pending: list[RunConfig], stack_group: list[RunConfig]) -> dict:
    """Workers x threads and the stack size (``calibrate``), and ``run_s``: the seconds
    one job of the first pending config should take, timed on a few steps."""
    sample = pending[0]
    prepared = cache.get(sample)
    schedule = calibrate.plan(runtime, sample, prepared, len(pending))
    # Never fewer jobs than workers: one stack of all six runs would leave the second worker idle.
    per_worker = max(1, math.ceil(len(pending) / max(1, schedule.get("workers") or 1)))
    group_data = cache.get(stack_group[0]) if stack_group else None
    apart = calibrate.apart_activations(stack_group, group_data) if runtime.stack != 1 else {}
    stack_group = [c for c in stack_group if c.activation not in apart][:per_worker]
    timed = calibrate.measured_rate(schedule, schedule["threads"]) if stack_group[:1] == [sample] else None
    schedule.update(calibrate.plan_stack(runtime, stack_group, group_data, schedule["threads"], timed))
    with slots.reserve(schedule["threads"]):
        run_s = calibrate.estimate_s(sample, prepared, [sample], schedule["threads"], schedule)
    schedule["run_s"] = round(run_s * schedule.get("stack", 1), 3)
    if schedule.get("stack_by") == calibrate.FUSED:
        if apart:
            schedule["stack_apart"] = apart
        if runtime.cost == "off" or calibrate.too_short_for_cost(runtime, schedule, len(pending)):
            # A fused stack has one clock for all its activations: only a cost profile gives each its own time.
            schedule["stack_by"] = "seed (activations share a stack only where a cost profile measures their times)"
    return schedule


def cost_profile(cache, groups: list[tuple[RunConfig, list[str]]], pending: list[RunConfig], baseline: str,
                 threads: int, runtime: Runtime, side_by_side: bool = False,
                 run_s: float | None = None) -> tuple[list[dict], dict | None]:
    """Measure the profiles a sweep lacks (``groups`` from ``cost.sweep_groups``), each
    within its budget (``calibrate.cost_budget``: about 5% of the training time; short
    sweeps too when ``side_by_side``). ``run_s``: the plan's seconds per run, when every
    pending run has the calibrated one's shape (else each group's steps are timed).
    Returns the rows and what the measurement cost, or ([], None) when not worth it."""
    rows, spent, estimated_total, budgets = [], 0.0, 0.0, []
    for first, wanted in groups:
        prepared = cache.get(first)
        same_data = [c for c in pending if c.data_key() == first.data_key()]
        with slots.reserve(threads):
            estimated = run_s * len(same_data) if run_s else calibrate.estimate_s(first, prepared, same_data, threads)
            budget = calibrate.cost_budget(runtime, estimated, len(wanted), side_by_side)
            if budget is None:
                continue
            start = time.perf_counter()
            rows += cost.measure_for_sweep(first, prepared, wanted, baseline, threads, budget * len(wanted))
            spent += time.perf_counter() - start
        estimated_total += estimated
        budgets.append(budget)
    if not budgets:
        return [], None
    return rows, {"seconds": round(spent, 1), "estimated_training_s": round(estimated_total, 1),
                  "share": round(spent / max(estimated_total, 1e-9), 3),
                  "budget_per_activation_s": round(max(budgets), 1), "threads": threads, "baseline": baseline}


def uses_user_code(configs: list[RunConfig]) -> bool:
    """True when training imports code afbench does not ship: a user's model file or
    module, or an activation given as module:Name (formulas are parsed, never run)."""
    return any(models.is_user_model(c.model) and c.model not in models.MODELS for c in configs) or \
        any(_imported_activation(c.activation) for c in configs)


def _imported_activation(name: str) -> bool:
    try:
        activations.info(name)
        return False
    except Exception:  # not registered: a formula or module:Name
        return ":" in name
