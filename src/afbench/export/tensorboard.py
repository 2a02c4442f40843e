"""`afbench export OUT --to tensorboard DIR`: one TensorBoard run per afbench run.

Run folders are ``activation/seed<k>``, prefixed by dataset, model, lr<x> and any
other setting that varies across the runs (export.run_name). Scalars, step = epoch:
``epoch/<metric>`` (train_loss, test_acc, ...), ``diagnostics/<metric>_layer<i>`` and
``diagnostics/<metric>_mean``; the final metrics as ``final/<metric>`` at the last
epoch; the settings as hyperparameters (HParams view) with the final metrics as its
metrics.

Each run is one event file. Exporting again to the same log dir replaces it (TensorBoard
would otherwise read every scalar twice, from two event streams); other files in the
run folders, and other folders, are left alone.
"""

from __future__ import annotations

import re
from pathlib import Path

from afbench import export as common

EVENTS = "events.out.tfevents.*"  # TensorBoard's event files, as torch's SummaryWriter names them


def tag(metric: str) -> str:
    """The scalar tag of an epoch metric."""
    return f"diagnostics/{metric}" if re.search(r"_(layer\d+|mean)$", metric) else f"epoch/{metric}"


def _hparams(writer, settings: dict, final: dict, step: int) -> None:
    """The HParams view's summaries in the run's own event file: SummaryWriter.add_hparams
    would open a second writer, and so a second event file, for them."""
    from torch.utils.tensorboard.summary import hparams

    metrics = {f"hparam/{m}": v for m, v in final.items()}
    for summary in hparams(settings, metrics):
        writer.file_writer.add_summary(summary, step)
    for metric, value in metrics.items():
        writer.add_scalar(metric, value, step)


def _clear(folder: Path) -> bool:
    """Remove an earlier export's event files from a run folder; True if there were any."""
    old = [p for p in folder.glob(EVENTS) if p.is_file()] if folder.is_dir() else []
    for path in old:
        path.unlink()
    return bool(old)


def export_runs(out: str | Path, log_dir: str | Path) -> common.Exported:
    """Write the finished runs of ``out`` as TensorBoard event files under ``log_dir``,
    one event stream per run: a run exported before is replaced. Returns the run folders
    (relative to log_dir), added and replaced."""
    writer_module = common.require("torch.utils.tensorboard", "TensorBoard")
    common.require("tensorboard", "TensorBoard")
    runs, epochs = common.frames(out)
    varying = common.varying(runs)
    done = common.Exported()
    for _, run in runs.iterrows():
        name = common.run_name(run, varying)
        (done.replaced if _clear(Path(log_dir) / name) else done.added).append(name)
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
            _hparams(writer, {**common.settings(run), "key": run["key"], "status": run["status"]}, final, last)
        finally:
            writer.close()
    return done


export = export_runs  # the name the brief promised: afbench.export.tensorboard.export(out, log_dir)
