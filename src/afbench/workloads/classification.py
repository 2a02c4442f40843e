"""Image classification: every data set x model pair afbench had before workloads.

Its runs keep their settings, keys and results: the engine trains it through the
same step as every workload, with cross-entropy on the model's logits, and records
the classification report (accuracy, error, P/R/F1, confusion) it always did. Its
primary metric is the test error rate (lower is better); time to target stays a
test accuracy (``RunConfig.target``), as stored runs mean it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from afbench.data import Split
from afbench.workloads.base import Metric, Workload

EVAL_BATCH = 1000


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


class Classification(Workload):
    def load_data(self, name: str):
        from afbench import data

        return data.prepare(data.load(name))

    def data_available(self) -> bool:
        from afbench import data

        return any(row["location"] for row in data.availability())

    def build(self, config, data, act_layer):
        from afbench import models

        return models.build(config.model, act_layer, data.input_shape, data.num_classes, init=config.init,
                            norm=config.norm, hidden_bias=config.hidden_bias, match_params=config.match_params,
                            allow_partial=config.allow_partial)

    def loss(self, forward, model, x, y):
        logits = forward(model, x)
        return F.cross_entropy(logits, y), logits

    def evaluate(self, model, split):
        loss, accuracy, _ = evaluate(model, split)
        return {"loss": loss, "accuracy": accuracy, "error_rate": 1 - accuracy}


def make() -> Classification:
    return Classification("classification", "classification", "images: any data set x model (--dataset, --model)",
                          data="digits", model="mlp", primary=Metric("error_rate", higher_is_better=False),
                          models=("mlp", "lenet", "vgg11", "resnet20", "vit"), size="any")
