"""How a sweep executes, as opposed to what it trains: nothing here changes a run's
identity (the results of a run do not depend on it), only its speed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Runtime:
    data_dir: str | Path | None = None
    threads: int | None = None  # torch threads per worker; None = decided by the plan
    progress: bool = True
    workers: int | str = "auto"  # worker processes, or "auto": calibrate (see calibrate.plan)
    stack: int | str = "auto"  # runs differing in seed or activation as one stack: 1 never, k up to k, "auto"
    compile: bool = False  # training steps through torch.compile (CUDA graphs on a GPU); see engine.train
    cost: str = "auto"  # measure the activations' step times apart first: on | off | auto (sweeps over 2 minutes)
    run_timeout: float | None = None  # seconds one run (or stack) may train; None: 20x its calibrated time, >= 60 s
    baseline: str | None = None  # the cost profile's reference (--baseline); None: relu if swept, else the first
    isolate: bool | str = "auto"  # train in worker processes: True, False, or "auto" (user code, or >1 worker)
