"""`afbench export OUT --to tensorboard DIR`: one TensorBoard run per afbench run.

Run folders are ``activation/seed<k>`` (prefixed by dataset, model, lr<x> when they
vary across the runs). Scalars, step = epoch: ``epoch/<metric>`` (train_loss,
test_acc, ...), ``diagnostics/<metric>_layer<i>`` and ``diagnostics/<metric>_mean``;
the final metrics as ``final/<metric>`` at the last epoch; the settings as
hyperparameters (HParams view) with the final metrics as its metrics.
"""

from __future__ import annotations

import re
from pathlib import Path

from afbench import export as common


def tag(metric: str) -> str:
    """The scalar tag of an epoch metric."""
    return f"diagnostics/{metric}" if re.search(r"_(layer\d+|mean)$", metric) else f"epoch/{metric}"


def export_runs(out: str | Path, log_dir: str | Path) -> list[str]:
    """Write the finished runs of ``out`` as TensorBoard event files under
    ``log_dir``. Returns the run folders written (relative to log_dir)."""
    writer_module = common.require("torch.utils.tensorboard", "TensorBoard")
    common.require("tensorboard", "TensorBoard")
    runs, epochs = common.frames(out)
    varying = common.varying(runs)
    written = []
    for _, run in runs.iterrows():
        name = common.run_name(run, varying)
        writer = writer_module.SummaryWriter(log_dir=str(Path(log_dir) / name))
        last = 0
        try:
            for epoch, values in common.epoch_metrics(epochs, run["key"]):
                for metric, value in values.items():
                    writer.add_scalar(tag(metric), value, epoch)
                last = max(last, epoch)
            final = common.summary_metrics(run)
            for metric, value in final.items():
                writer.add_scalar(f"final/{metric}", value, last)
            hparams = {**common.settings(run), "key": run["key"], "status": run["status"]}
            # run_name "." keeps the HParams summary in this run's folder (torch makes a subfolder otherwise)
            writer.add_hparams(hparams, {f"hparam/{m}": v for m, v in final.items()}, run_name=".")
        finally:
            writer.close()
        written.append(name)
    return written


export = export_runs  # the name the brief promised: afbench.export.tensorboard.export(out, log_dir)
