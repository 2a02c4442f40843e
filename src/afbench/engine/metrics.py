"""Metric definitions, as pure functions of recorded numbers (DAWNBench, S1, S2)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def time_to_target(test_accuracy: Sequence[float], cumulative_train_s: Sequence[float],
                   target: float | None) -> tuple[int | None, float | None]:
    """(epoch, seconds) of the first epoch whose test accuracy reaches ``target``:
    the cumulative training time (evaluation excluded) at the end of that epoch,
    epochs counted from 1. (None, None) when it is never reached."""
    if target is None:
        return None, None
    for epoch, (accuracy, seconds) in enumerate(zip(test_accuracy, cumulative_train_s), start=1):
        if accuracy >= target:
            return epoch, seconds
    return None, None


def confusion_matrix(targets: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts; row = true class, column = predicted."""
    flat = targets.long().cpu() * num_classes + predictions.long().cpu()
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes).numpy()


def classification_report(confusion: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1 (S2's test metrics).

    Averaged over the classes present in the targets or the predictions, as
    scikit-learn does: a class absent from both has no precision or recall to
    average. A class never predicted has precision 0, a class absent from the
    targets recall 0 (scikit-learn's zero_division=0); F1 is averaged per class.
    """
    confusion = confusion.astype(np.float64)
    present = (confusion.sum(axis=0) > 0) | (confusion.sum(axis=1) > 0)
    accuracy = np.trace(confusion) / max(confusion.sum(), 1)
    confusion = confusion[present][:, present]
    true_positive = np.diag(confusion)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros_like(true_positive), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return {"accuracy": float(accuracy), "error_rate": float(1 - accuracy), "precision": float(precision.mean()),
            "recall": float(recall.mean()), "f1": float(f1.mean())}


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Per-sample latency in ms: mean (DAWNBench's figure), median, sd and p90."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {"ms_per_sample": float(ms.mean()), "ms_per_sample_median": float(np.median(ms)),
            "ms_per_sample_sd": float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
            "ms_per_sample_p90": float(np.percentile(ms, 90))}
