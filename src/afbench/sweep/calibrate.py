"""How to spread a sweep over this machine: workers x threads, and how many seeds
to train as one stack. Explicit settings win; "auto" measures a few steps."""

from __future__ import annotations

import torch

from afbench import data as datasets
from afbench.config import RunConfig
from afbench.engine import train as engine
from afbench.engine.runtime import available_cores
from afbench.sweep import slots
from afbench.sweep.options import Runtime

CALIBRATION_STEPS = 12
# A process's first timed epoch runs cold (first dispatch of its kernels, the allocator): on a tiny sweep
# that made a stacking gain of 2.6x read as 10x. These steps run first, untimed.
PRIMING_STEPS = 2
# A worker's start: a spawned one imports torch and afbench and loads the data (seconds); a forked one
# (workers.start_method) starts faster, so this errs towards one process.
WORKER_START_S = 5.0
MAX_STACK = 8
STACK_GAIN = 1.1  # stack only when it trains at least this much faster per run


def largest_stack_group(configs: list[RunConfig]) -> list[RunConfig]:
    """The largest set of runs that may share one stack (equal fuse keys: they differ
    in seed or activation alone), in sweep order."""
    groups: dict[str, list[RunConfig]] = {}
    for config in configs:
        groups.setdefault(config.fuse_key(), []).append(config)
    return max(groups.values(), key=len, default=[])


def unstackable(sample: RunConfig, prepared: datasets.Prepared) -> str | None:
    """Why seeds of this model cannot train as one stack, or None if they can."""
    return engine.stack_refusal([sample.with_(seed=s) for s in (0, 1)], prepared)


FUSED = "seed and activation"  # plan["stack_by"] when activations share stacks


def apart_activations(group: list[RunConfig], prepared: datasets.Prepared | None) -> dict[str, str]:
    """The activations of ``group`` whose model cannot share a stack with the first's
    (a gated unit or maxout changes the layers' widths), each with the reason: they
    train in stacks of their own seeds."""
    if prepared is None or not group:
        return {}
    first, apart = group[0], {}
    for config in {c.activation: c for c in group}.values():
        if config.activation != first.activation:
            why = engine.stack_refusal([first.with_(seed=config.seed), config], prepared)
            if why:
                apart[config.activation] = why
    return apart


def side_by_side(plan: dict) -> bool:
    """Does the plan train runs beside each other (several workers)? Then no run's own
    clock or latency is its activation's alone: only a cost profile measures them so."""
    return (plan.get("workers") or 1) > 1


def too_short_for_cost(runtime: Runtime, plan: dict, pending: int) -> bool:
    """cost "auto" skips sweeps under COST_WORTH_S of training, judged from the plan's
    calibrated job time before anything is looked up (the worker decides exactly),
    unless their runs train side by side."""
    if runtime.cost != "auto" or not plan.get("run_s") or side_by_side(plan):
        return False
    return plan["run_s"] / plan.get("stack", 1) * pending < COST_WORTH_S


def stack_members(group: list[RunConfig], size: int, prepared: datasets.Prepared | None) -> tuple[list[RunConfig], str]:
    """Up to ``size`` runs of ``group`` to stack, and by what they may differ: "seed and
    activation" when their models share one structure, else "seed" (the seeds of the
    first activation), with the reason."""
    members = group[:size]
    if len({c.activation for c in members}) == 1:
        return members, "seed"
    why = engine.stack_refusal(members, prepared) if prepared is not None else None
    if why is None:
        return members, FUSED
    seeds = [c for c in group if c.stack_key() == group[0].stack_key()][:size]
    return seeds, f"seed (activations cannot share a stack: {why})"


def plan_stack(runtime: Runtime, group: list[RunConfig], prepared: datasets.Prepared | None,
               threads: int, alone_steps_per_s: float | None = None) -> dict:
    """How many runs of ``group`` (``largest_stack_group``) to train as one stack, and
    whether activations may share it. "auto" times a few steps of one run and of a
    stack of up to MAX_STACK of them and stacks when that trains STACK_GAIN faster per
    run (measured here: 6 MLPs stacked train 2x faster per run on a 2-core CPU; in a
    LeNet only the fully connected part batches). Models that cannot stack (not one
    nn.Sequential with a Flatten) train one by one. ``alone_steps_per_s``: the first run's
    rate at ``threads`` threads when ``plan`` has just timed it (not timed twice)."""
    auto = runtime.stack == "auto"
    size = min(len(group), MAX_STACK) if auto else max(1, min(int(runtime.stack), len(group) or 1))
    if size < 2:
        return {"stack": 1, "stack_how": "no runs to stack" if auto else "given"}
    why = unstackable(group[0], prepared) if prepared is not None else None
    if why:
        return {"stack": 1, "stack_how": f"cannot stack: {why}"}
    members, by = stack_members(group, size, prepared)
    if len(members) < 2:
        return {"stack": 1, "stack_how": f"cannot stack: {by}"}
    if not auto:
        return {"stack": len(members), "stack_by": by, "stack_how": "given"}
    torch.set_num_threads(threads)
    with slots.reserve(threads):
        alone = CALIBRATION_STEPS / alone_steps_per_s if alone_steps_per_s else \
            engine.time_training_steps(members[0], prepared, CALIBRATION_STEPS)
        stacked = engine.time_training_steps(members[0], prepared, CALIBRATION_STEPS, members=members)
    gain = len(members) * alone / stacked
    return {"stack": len(members) if gain >= STACK_GAIN else 1, "stack_by": by, "stack_how": "calibrated",
            "stack_gain": round(gain, 2)}


def _steps_per_s(config: RunConfig, prepared: datasets.Prepared, threads: int,
                 steps: int = CALIBRATION_STEPS) -> float:
    """Training steps per second of ``config``'s model with ``threads`` threads."""
    torch.set_num_threads(threads)
    return steps / engine.time_training_steps(config, prepared, steps)


def plan(runtime: Runtime, sample: RunConfig, prepared: datasets.Prepared | None, pending: int) -> dict:
    """Workers x threads for this machine, never more threads than cores.

    Explicit settings win, but never oversubscribe: workers x threads is capped at
    the cores (two 2-thread processes on 2 cores ran 20x slower here). "auto" on a CPU
    with several cores and runs times a few steps of the first run with all cores in
    one process and with one thread, and picks one 1-thread worker per core when the
    training seconds that saves exceed a worker's start (WORKER_START_S). Two 1-thread
    LeNet processes train faster than one 2-thread one here (bench/speed.py's sweep rows).
    """
    cores = available_cores()
    if runtime.workers != "auto":
        workers = max(1, min(int(runtime.workers), cores, max(pending, 1)))
        threads = min(runtime.threads or max(1, cores // workers), max(1, cores // workers))
        capped = workers < int(runtime.workers) and workers < pending or (runtime.threads or threads) > threads
        return {"workers": workers, "threads": threads, "cores": cores,
                "how": f"given, capped to the {cores} cores" if capped else "given"}
    if runtime.threads:  # threads given: as many workers as fit on the cores (one process beside a GPU)
        threads = min(runtime.threads, cores)
        workers = 1 if sample.device != "cpu" else max(1, min(cores // threads, max(pending, 1)))
        return {"workers": workers, "threads": threads, "cores": cores,
                "how": f"from --threads, capped to the {cores} cores" if threads < runtime.threads else "from --threads"}
    if sample.device != "cpu" or cores == 1 or pending < 2:
        return {"workers": 1, "threads": cores, "cores": cores, "how": "default"}
    with slots.reserve(cores):  # measure on a quiet machine, not against another sweep
        _steps_per_s(sample, prepared, cores, PRIMING_STEPS)  # untimed: the process's first epoch runs cold
        together = _steps_per_s(sample, prepared, cores)
        alone = _steps_per_s(sample, prepared, 1)
    steps = pending * sample.epochs * -(-len(prepared.train) // sample.batch_size)
    workers = min(cores, pending)
    parallel = workers * alone  # independent processes on separate cores
    measured = {"cores": cores, "steps_per_s_all_cores": float(f"{together:.4g}"),
                "steps_per_s_one_thread": float(f"{alone:.4g}")}  # estimate_s reuses them: 4 digits, not 2 decimals
    saved_s = steps / together - steps / parallel
    if saved_s > WORKER_START_S:
        return {"workers": workers, "threads": 1, **measured, "how": "calibrated"}
    # One process: faster on the cores together, or too short a sweep to pay for starting workers.
    how = "calibrated" if parallel <= together else "short sweep"
    return {"workers": 1, "threads": cores, **measured, "how": how, "estimated_s": round(steps / together, 1)}


COST_WORTH_S = 120.0  # estimated training seconds from which a sweep measures its cost profile ("auto")
COST_SHARE = 0.05  # of the estimated training time, the budget for measuring it


def estimate_s(sample: RunConfig, prepared: datasets.Prepared, pending: list[RunConfig], threads: int,
               schedule: dict | None = None) -> float:
    """Seconds the pending runs would train for, from a few timed steps of the first, or
    from the rate ``plan`` measured for ``sample`` with these threads (in ``schedule``)."""
    steps = sum(c.epochs * -(-len(prepared.train) // c.batch_size) for c in pending)
    return steps / (measured_rate(schedule or {}, threads) or _steps_per_s(sample, prepared, threads))


def measured_rate(schedule: dict, threads: int) -> float | None:
    """Steps per second ``plan`` timed with ``threads`` threads, if it timed them."""
    if threads == 1 and schedule.get("steps_per_s_one_thread"):
        return schedule["steps_per_s_one_thread"]
    if threads == schedule.get("cores") and schedule.get("steps_per_s_all_cores"):
        return schedule["steps_per_s_all_cores"]
    return None


def cost_budget(runtime: Runtime, estimated_s: float, activations: int, side_by_side: bool = False) -> float | None:
    """Seconds per activation for the sweep's cost profile, or None not to measure one:
    about COST_SHARE of the training time, between 1 and 12 s per activation. "auto"
    measures short sweeps too when their runs train side by side (``side_by_side``)."""
    if runtime.cost == "off" or (runtime.cost == "auto" and estimated_s < COST_WORTH_S and not side_by_side):
        return None
    return min(12.0, max(1.0, COST_SHARE * estimated_s / max(activations, 1)))
