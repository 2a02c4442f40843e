"""The lecture's studies (S5), as measurements.

`afbench study init`: a deep MLP (default 10 hidden layers of 500 units) on real
inputs, under each activation x initialisation: per-layer activation statistics at
initialisation, weight-gradient statistics after one backward pass, and a short
training run per cell to show which combinations learn.

`afbench study norm`: one sweep per normalisation layer, and a table of accuracy,
time to target and dead units across them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from afbench import models
from afbench.data import Prepared
from afbench.engine.train import evaluate

DEFAULT_ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu")
DEFAULT_INITS = ("zeros", "normal001", "xavier", "he")


@dataclass(frozen=True)
class InitStudy:
    depth: int = 10
    width: int = 500
    batch: int = 1000  # real training images pushed through at initialisation
    train_steps: int = 100  # the short training run per cell
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0


@dataclass
class InitResult:
    layers: pd.DataFrame  # activation, init, layer, act_mean, act_std, grad_std
    training: pd.DataFrame  # activation, init, test_acc after the short run
    samples: dict  # (activation, init) -> {"acts": [array per layer], "grads": [...]}


def _cell(study: InitStudy, data: Prepared, activation: str, init: str):
    torch.manual_seed(study.seed)
    model = models.build("mlp", activation, data.input_shape, data.num_classes, init=init,
                         hidden=(study.width,) * study.depth)
    outputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
             for _, m in models.hidden_activations(model)]
    x, y = data.train.x[: study.batch], data.train.y[: study.batch]
    model.eval()
    F.cross_entropy(model(x), y).backward()
    for hook in hooks:
        hook.remove()
    hidden_linears = [m for m in model.modules() if isinstance(m, nn.Linear)][:-1]
    grads = [layer.weight.grad.detach().flatten() for layer in hidden_linears]
    return model, outputs, grads


def _short_training(study: InitStudy, data: Prepared, model: nn.Module) -> float:
    from afbench.config import RunConfig
    from afbench.engine.step import Step

    model.zero_grad(set_to_none=True)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=study.lr)
    order = torch.Generator().manual_seed(study.seed)
    step = Step(RunConfig(seed=study.seed, lr=study.lr, batch_size=study.batch_size), data.train.x.device)
    for _ in range(study.train_steps):  # the training runs' step: autocast and loss as theirs
        idx = torch.randint(0, len(data.train), (study.batch_size,), generator=order).to(data.train.x.device)
        step(model, optimizer, data.train.x[idx], data.train.y[idx])
    return evaluate(model, data.test)[1]


def run_init_study(data: Prepared, activations=DEFAULT_ACTIVATIONS, inits=DEFAULT_INITS,
                   study: InitStudy = InitStudy()) -> InitResult:
    rows, training, samples = [], [], {}
    for activation in activations:
        for init in inits:
            model, outputs, grads = _cell(study, data, activation, init)
            for layer, (out, grad) in enumerate(zip(outputs, grads), start=1):
                rows.append({"activation": activation, "init": init, "layer": layer,
                             "act_mean": float(out.mean()), "act_std": float(out.std()),
                             "grad_std": float(grad.std())})
            samples[(activation, init)] = {"acts": [o.flatten().numpy() for o in outputs],
                                           "grads": [g.numpy() for g in grads]}
            training.append({"activation": activation, "init": init,
                             "test_acc": _short_training(study, data, model)})
    return InitResult(pd.DataFrame(rows), pd.DataFrame(training), samples)


def learns(accuracy: float, num_classes: int) -> bool:
    """At least half right, and clearly above chance (twice the chance level)."""
    return accuracy > max(0.5, 2.0 / num_classes)


def summary_markdown(result: InitResult, num_classes: int) -> str:
    table = result.layers.pivot_table(index=["activation", "init"], columns="layer", values="act_std")
    lines = ["# Initialisation study (lecture S5)\n",
             "Standard deviation of each hidden layer's activations at initialisation:\n",
             "| activation | init | " + " | ".join(f"L{c}" for c in table.columns) + " |",
             "|---|---|" + "---|" * len(table.columns)]
    for (activation, init), row in table.iterrows():
        lines.append(f"| {activation} | {init} | " + " | ".join(f"{v:.3g}" for v in row) + " |")
    threshold = max(0.5, 2.0 / num_classes)  # learns()'s
    lines += ["\nAfter a short training run (test accuracy; chance is "
              f"{1 / num_classes:.2f}; learns: above {threshold:.2f}, at least half right and twice chance):\n",
              "| activation | init | test acc | learns |", "|---|---|---|---|"]
    for _, row in result.training.iterrows():
        lines.append(f"| {row['activation']} | {row['init']} | {row['test_acc']:.4f} | "
                     f"{'yes' if learns(row['test_acc'], num_classes) else 'no'} |")
    return "\n".join(lines) + "\n"


def histogram_range(values: list[np.ndarray]) -> tuple[float, float]:
    joined = np.concatenate([v for v in values if v.size])
    lo, hi = np.percentile(joined, [0.5, 99.5]) if joined.size else (-1.0, 1.0)
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 1, float(hi) + 1)


def write_init_study(data: Prepared, activations, inits, study: InitStudy, out: str | Path) -> InitResult:
    """Run the init study and write its tables, summary and figures to ``out``."""
    from afbench.report import figures
    from afbench.report.gallery import file_name

    result = run_init_study(data, activations, inits, study)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result.layers.to_csv(out / "init_layers.csv", index=False)
    result.training.to_csv(out / "init_training.csv", index=False)
    (out / "init_summary.md").write_text(summary_markdown(result, data.num_classes))
    figures.save(figures.plot_init_std(result.layers, "act_std"), out / "init_act_std.png")
    figures.save(figures.plot_init_std(result.layers, "grad_std"), out / "init_grad_std.png")
    for activation in activations:
        for kind in ("acts", "grads"):
            values = [v for init in inits for v in result.samples[(activation, init)][kind]]
            fig = figures.plot_init_histograms(result.samples, activation, inits, kind, histogram_range(values))
            figures.save(fig, out / f"init_{kind}_{file_name(activation)}.png")  # '1/x' makes no folder
    return result


def run_norm_study(base, activations, norms, seeds, device: str, out: str | Path, backend=None) -> pd.DataFrame:
    """One sweep (and report) per normalisation in ``out``/norm-NAME, then one row
    per norm x activation: accuracy, time to target, training time, final dead units.
    ``backend``: any sweep backend (default: local processes)."""
    from afbench.report import render
    from afbench.sweep import Grid, execute

    out, rows = Path(out), []
    for norm in norms:
        folder = out / f"norm-{norm}"
        execute(Grid(base.with_(norm=norm), tuple(activations), tuple(seeds)), folder, backend, device=device)
        report = render.write(folder)
        final = report.epochs.sort_values("epoch").groupby("run_key").tail(1)
        dead = final.groupby("activation")["dead_output_mean"].mean() if "dead_output_mean" in final else {}
        for _, row in report.aggregate.iterrows():
            rows.append({"norm": norm, "activation": row["activation"], "runs": row["runs"],
                         "accuracy": row["accuracy_mean"], "accuracy_sd": row["accuracy_sd"],
                         "time_to_target_s": row["time_to_target_s_mean"], "reached": row["reached"],
                         "total_train_s": row["total_train_s_mean"],
                         "dead_output_final": float(dead.get(row["activation"], float("nan")))})
    table = pd.DataFrame(rows)
    table.to_csv(out / "norm_summary.csv", index=False)
    return table
