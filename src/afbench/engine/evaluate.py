"""Evaluation and batch-1 inference latency (DAWNBench), on resident tensors."""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from afbench.data import Split
from afbench.engine import metrics
from afbench.engine.trainer import sync
from afbench.workloads.classification import EVAL_BATCH, evaluate

LATENCY_WARMUP = 10


@torch.inference_mode()
def measure_latency(model: nn.Module, split: Split, samples: int | None,
                    whole: Callable[[], object] | None = None) -> dict[str, float]:
    """Batch-1 inference latency (DAWNBench): each test image classified alone, after
    a warm-up; inputs are views of the resident test tensor, timers synchronised.
    Throughput times ``whole`` (default: ``evaluate`` of the split, a classifier's)."""
    model.eval()
    device = split.x.device
    count = len(split) if samples is None else min(samples, len(split))
    inputs = [split.x[i:i + 1] for i in range(count)]  # preallocated views, no copies in the timed loop
    for x in inputs[:LATENCY_WARMUP]:
        model(x)
    sync(device)
    seconds = []
    for x in inputs:
        start = time.perf_counter()
        model(x)
        sync(device)
        seconds.append(time.perf_counter() - start)
    sync(device)
    start = time.perf_counter()
    whole() if whole is not None else evaluate(model, split)
    sync(device)
    summary = metrics.latency_summary(seconds)
    summary["throughput_per_s"] = len(split) / (time.perf_counter() - start)
    return summary


