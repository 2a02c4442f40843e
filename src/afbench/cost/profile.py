"""The cost profile of each activation in a model: one row per activation.

All activations are measured in one process, with fixed threads, after a warm-up,
interleaved in shuffled rounds (see ``timing``). Each round measures, per activation,
``steps`` training steps split into forward (+ loss), backward and optimizer step,
``steps`` batch-1 inferences and ``steps`` batched inferences, and keeps the median of
each. Over rounds: step_ms and latency_ms (batch 1), each with its 95% CI (``_low``,
``_high``), are the geometric mean and t interval of the per-round times (``timing.ratio_ci``);
the phase times and the batched latency are medians over rounds.

Money (with ``price_per_hour``, the machine's price in any currency):
  train_cost       = price_per_hour x train_steps x step_ms / 3.6e6
  cost_per_1000    = price_per_hour x 1000 x latency_ms / 3.6e6
where train_steps is ``steps_to_target[activation]`` when given (steps the runs needed
to reach the target), else ``epochs`` x ceil(train size / batch size).
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from dataclasses import dataclass
from statistics import median

import numpy as np

import torch

from afbench import __version__
from afbench import activations
from afbench.config import RunConfig
from afbench.cost import deploy, memory, numerics, timing
from afbench.engine.step import Step, model_for
from afbench.engine.train import make_optimizer
from afbench.errors import AfbenchError

DEFAULT_THREADS = 1  # see ``profile``: what a profile measures with unless told (or the sweep's own)
PARTS_TOLERANCE = 0.5  # a step more than 50% off the sum of its forward, backward and optimizer parts is flagged
MAX_ROUND_SPREAD = 0.5  # ... and one whose per-round times vary more than this (sd / mean)
BUDGET_PER_ACTIVATION_S = 12.0  # default timing budget: 8 activations -> 96 s of rounds
WARMUP_MEASURES = 3  # untimed measure() calls per activation before the rounds
ONNX_SAMPLES = 256  # real test images compared between onnxruntime and PyTorch


@dataclass
class Subject:
    """One activation's model, optimizer and training step, built once before the rounds
    start, by the functions training runs use (``engine.step``)."""

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    step: Step
    config: RunConfig


@dataclass
class CostProfile:
    rows: list[dict]  # one per activation, the columns of cost.csv
    rounds: timing.Rounds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(subject: Subject, batches, x1, xb, steps: int, device: torch.device) -> dict:
    """Median ms of ``steps`` training steps (by phase) and inferences (batch 1, batched)."""
    model, opt, clock = subject.model, subject.optimizer, time.perf_counter
    phases = {"forward_ms": [], "backward_ms": [], "optimizer_ms": [], "step_ms": []}
    model.train()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        _sync(device)
        t0 = clock()
        loss, _ = subject.step.loss(model, x, y)  # the training step's forward + loss (engine.step.Step)
        _sync(device)
        t1 = clock()
        loss.sum().backward()  # as Step: a scalar's sum is itself
        _sync(device)
        t2 = clock()
        opt.step()
        _sync(device)
        t3 = clock()
        for key, value in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            phases[key].append(value * 1e3)
    model.eval()
    with torch.no_grad():
        for key, inputs in (("latency_ms", x1), ("latency_batch_ms", xb)):
            phases[key] = []
            for _ in range(steps):
                _sync(device)
                t0 = clock()
                model(inputs)
                _sync(device)
                phases[key].append((clock() - t0) * 1e3)
    model.train()
    out = {key: median(values) for key, values in phases.items()}
    for key in ("latency_ms", "latency_batch_ms"):  # a mean far above the median: stalls
        out[key.replace("_ms", "_mean_ms")] = sum(phases[key]) / len(phases[key])
    return out


def _build(name: str, config: RunConfig, prepared, device) -> Subject:
    """The model a training run of ``config`` with ``name`` in it trains (seed 0: the same
    initial weights for every activation), its optimizer and its training step."""
    run = config.with_(activation=name, seed=0)
    model = model_for(run, prepared)  # the workload's model, on the device, channels-last convolutions
    return Subject(activations.factory(name).name, model, make_optimizer(run, model), Step(run, device), run)


def _static_row(subject: Subject, prepared, batch_size: int, device, check_onnx: bool, check_numerics: bool) -> dict:
    """The measurements that need no timing: memory, size, ONNX and numerics."""
    model = subject.model
    x, y = prepared.train.x[:batch_size], prepared.train.y[:batch_size]
    classifies = subject.step.workload.family == "classification"  # other losses: the forward's bytes
    row = {"params": memory.count_parameters(model),
           "flops": memory.forward_flops(model.eval(), prepared.test.x[:1]),
           "saved_bytes_per_sample": memory.saved_bytes_per_sample(model.train(), x, y if classifies else None),
           "peak_bytes": memory.peak_bytes(lambda: subject.step.loss(model, x, y)[0].sum().backward(), device)}
    model.zero_grad(set_to_none=True)
    if check_onnx:
        result = deploy.check_onnx(model, prepared.test.x[:ONNX_SAMPLES])
        row.update(onnx=result.ok, onnx_opset=result.opset, onnx_max_abs_error=result.max_abs_error,
                   onnx_error=result.reason)
    if check_numerics:
        for fmt, got in numerics.activation_numerics(subject.name).items():
            row[f"{fmt}_error"] = math.nan if got.reason else got.error
            row[f"{fmt}_flags"] = "; ".join(got.flags)
            row[f"{fmt}_reason"] = got.reason
    return row


@contextlib.contextmanager
def _threads(threads: int):
    """Fix torch's intra-op threads inside the block; restore the old setting after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def profile(model: str, prepared, activation_names: list[str], *, dataset: str | None = None,
            baseline: str = "relu", batch_size: int = 128, threads: int | None = None,
            budget_s: float | None = None, price_per_hour: float | None = None,
            steps_to_target: dict[str, int] | None = None, epochs: int | None = None, steps: int = 3,
            seed: int = 0, check_onnx: bool = True, check_numerics: bool = True,
            config: RunConfig | None = None, threads_from: str | None = None) -> CostProfile:
    """Measure the cost of each activation in ``model`` on ``prepared`` data (``afbench.data.prepare``).

    ``threads`` fixes torch's intra-op threads for the whole measurement (None: DEFAULT_THREADS,
    one: at two threads on a shared machine plain ``torch.tanh`` stalled 3,000x; restored
    afterwards); ``threads_from`` says in the rows where the count came from ("default",
    "given", "training": the sweep's own). ``budget_s`` bounds the timing rounds (default
    ``BUDGET_PER_ACTIVATION_S`` per activation); rounds stop earlier when every step-time
    ratio's 95% CI is within +-3%. The rows' ``stop`` says which happened. ``steps``:
    training steps (and inferences) per activation per round, of which the median counts.
    ``config`` (a ``RunConfig``; default its defaults) gives the optimizer and the
    model's norm, init and widths; its activation and batch size are not used.
    ``steps_to_target`` / ``epochs``: the training steps priced (see the module docstring).
    """
    names = [activations.factory(a).name for a in activation_names]
    baseline = activations.factory(baseline).name
    if baseline not in names:
        names = [baseline] + names  # ratios need the baseline measured in the same rounds
    if len(set(names)) != len(names):
        raise AfbenchError(f"activations repeat in {activation_names}: give each once")
    config = (config or RunConfig()).with_(model=model, batch_size=batch_size)
    device = prepared.train.x.device
    budget_s = BUDGET_PER_ACTIVATION_S * len(names) if budget_s is None else budget_s
    n_batches = max(1, min(8, len(prepared.train) // batch_size))  # a few distinct batches, cycled
    batches = [(prepared.train.x[i * batch_size:(i + 1) * batch_size].clone(),
                prepared.train.y[i * batch_size:(i + 1) * batch_size].clone()) for i in range(n_batches)]
    x1, xb = prepared.test.x[:1].clone(), prepared.test.x[:batch_size].clone()
    threads_from = threads_from or ("default" if threads is None else "given")
    with _threads(DEFAULT_THREADS if threads is None else threads):
        measured_threads = torch.get_num_threads()
        subjects = {n: _build(n, config, prepared, device) for n in names}
        static = {n: _static_row(s, prepared, batch_size, device, check_onnx, check_numerics)
                  for n, s in subjects.items()}
        for subject in subjects.values():
            for _ in range(WARMUP_MEASURES):
                _measure(subject, batches, x1, xb, steps, device)
        rounds = timing.run_rounds(names, lambda n: _measure(subjects[n], batches, x1, xb, steps, device),
                                   baseline, budget_s, seed=seed)
    common = {"model": model, "dataset": dataset or prepared.name,
              "input_shape": "x".join(map(str, prepared.input_shape)), "device": device.type,
              "threads": measured_threads, "batch_size": batch_size, "rounds": rounds.count, "stop": rounds.stop,
              "afbench_version": __version__, "torch_version": torch.__version__,
              "profile_id": uuid.uuid4().hex[:12], "baseline": baseline, "measured_at": time.time(),
              "optimizer": config.optimizer, "norm": config.norm, "match_params": config.match_params,
              "threads_from": threads_from, "ci_covers": "one process", "profile_flag": _profile_flag(rounds)}
    steps_default = epochs * math.ceil(len(prepared.train) / batch_size) if epochs else None
    rows = [{"activation": n, **common, **static[n],
             **_timed_columns(rounds, n, price_per_hour, (steps_to_target or {}).get(n, steps_default))}
            for n in names]
    return CostProfile(withhold_flagged(rows, baseline), rounds)


def _timed_columns(rounds: timing.Rounds, name: str, price_per_hour: float | None,
                   train_steps: int | None) -> dict:
    """Step time and batch-1 latency with their CIs, the ratio to the baseline with its CI,
    phase medians and price."""
    ratio, low, high = (1.0, 1.0, 1.0) if name == rounds.baseline else rounds.ratio_ci(name)
    row = {**_with_ci(rounds, name, "step_ms"), **_with_ci(rounds, name, "latency_ms"),
           "step_ratio": ratio, "step_ratio_low": low, "step_ratio_high": high}
    for phase in ("forward_ms", "backward_ms", "optimizer_ms", "latency_batch_ms"):
        row[phase] = rounds.median(name, phase)
    for phase in ("latency_mean_ms", "latency_batch_mean_ms"):
        row[phase] = float(np.mean([t[phase] for t in rounds.times[name]]))
    step = row["step_ms"]
    row["step_flag"] = step_flag(step, row["forward_ms"] + row["backward_ms"] + row["optimizer_ms"],
                                 [t["step_ms"] for t in rounds.times[name]])
    row["train_steps"] = train_steps
    row["price_per_hour"] = price_per_hour
    row["train_cost"] = price_per_hour * train_steps * step / 3.6e6 if price_per_hour and train_steps else None
    row["cost_per_1000_inferences"] = price_per_hour * 1000 * row["latency_ms"] / 3.6e6 if price_per_hour else None
    return row


def _with_ci(rounds: timing.Rounds, name: str, phase: str) -> dict:
    """``phase``'s geometric mean over rounds and its 95% CI, as {phase, phase_low, phase_high}:
    a t interval on the per-round log times (``timing.ratio_ci``, a ratio to 1 ms), so the
    interval is multiplicative and its centre is the value it belongs to (a median over
    rounds may lie outside it when the rounds split into a fast and a stalled group)."""
    centre, low, high = timing.ratio_ci([t[phase] for t in rounds.times[name]])
    return {phase: centre, f"{phase}_low": low, f"{phase}_high": high}


def step_flag(step_ms: float, parts_ms: float, per_round_ms: list[float]) -> str:
    """Why a step time cannot be published, or '' when it can. A step whose median parts
    add up to far less (or more) than the step, or whose rounds disagree wildly, was
    measured on a machine busy with something else (seen: a 12.2 ms step whose parts
    added up to 2.5 ms, 1.68 ms when measured again at one thread)."""
    reasons = []
    if abs(step_ms - parts_ms) > PARTS_TOLERANCE * step_ms:
        reasons.append(f"step {step_ms:.3g} ms but its forward, backward and optimizer parts add up to "
                       f"{parts_ms:.3g} ms")
    spread = float(np.std(per_round_ms, ddof=1) / np.mean(per_round_ms)) if len(per_round_ms) > 1 else 0.0
    if spread > MAX_ROUND_SPREAD:
        reasons.append(f"its rounds vary by {100 * spread:.0f}% (sd / mean)")
    return "; ".join(reasons)


TIMED = ("step_ms", "step_ms_low", "step_ms_high", "step_ratio", "step_ratio_low", "step_ratio_high", "train_cost")


def withhold_flagged(rows: list[dict], baseline: str) -> list[dict]:
    """Rows whose step failed its checks keep the measurement (``step_ms_measured``) and
    the reason (``step_flag``) but publish no step figure (NaN); a flagged baseline
    takes every ratio with it."""
    base = next((r for r in rows if r["activation"] == baseline), None)
    for row in rows:
        row["step_ms_measured"] = row["step_ms"]
        if base is not None and base["step_flag"] and row is not base and not row["step_flag"]:
            row["step_flag"] = f"the baseline {baseline}'s step is flagged ({base['step_flag']})"
        if row["step_flag"]:
            row["step_flag"] += ": not published; measure again on a quiet machine (afbench cost --threads 1)"
            row.update({column: math.nan for column in TIMED})
    return rows


def _profile_flag(rounds: timing.Rounds) -> str:
    """A profile that stopped before its ratios' CIs reached the target says so."""
    if rounds.stop == "converged":
        return ""
    return (f"stopped on its {'time budget' if rounds.stop == 'budget' else 'round limit'} after {rounds.count} "
            f"rounds, before every ratio's 95% CI was within ±{100 * timing.TARGET_HALF_WIDTH:.0f}%: the ratios "
            "are rough")
