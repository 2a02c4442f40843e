"""Evaluation and batch-1 inference latency (DAWNBench), on resident tensors."""

from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from afbench.data import Split
from afbench.engine import metrics
from afbench.engine.trainer import sync

EVAL_BATCH = 1000
LATENCY_WARMUP = 10


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split) -> tuple[float, float, torch.Tensor]:
    """(mean loss, accuracy, predictions) in eval mode, in large batches."""
    model.eval()
    loss_sum, predictions = 0.0, []
    for start in range(0, len(split), EVAL_BATCH):
        xb, yb = split.x[start:start + EVAL_BATCH], split.y[start:start + EVAL_BATCH]
        logits = model(xb).float()
        loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
        predictions.append(logits.argmax(dim=1))
    predictions = torch.cat(predictions)
    return loss_sum / len(split), float((predictions == split.y).float().mean()), predictions


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


