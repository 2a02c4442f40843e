"""The cost table: cost.csv, and the `cost` table of the results database.

A stored row is reused only under the same conditions: model, data set, input
shape, activation, device, threads, batch size, dtype, optimizer, norm, match_params
and afbench version (``afbench.store.schema.COST_KEY``). Rows measured together
(one ``profile`` call, paired ratios) share a ``profile_id``.

The database keeps each row whole as JSON (``record``), so a new column of cost.csv
needs no migration of the cost table; rows measured before it simply lack the key
(latency_ms_low / latency_ms_high, for one), and readers take a missing key as not
measured.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

from afbench.store.reading import Reader
from afbench.store.schema import COST_KEY

COLUMNS = ("activation", "model", "dataset", "input_shape", "device", "threads", "batch_size", "params", "flops",
           "step_ms", "step_ms_low", "step_ms_high", "step_ratio", "step_ratio_low", "step_ratio_high", "forward_ms",
           "backward_ms", "optimizer_ms", "latency_ms", "latency_ms_low", "latency_ms_high", "latency_batch_ms",
           "saved_bytes_per_sample", "peak_bytes", "onnx", "onnx_opset", "onnx_max_abs_error", "onnx_error",
           "bf16_error", "bf16_flags", "bf16_reason", "fp16_error", "fp16_flags", "fp16_reason", "rounds", "stop",
           "baseline", "train_steps", "price_per_hour", "train_cost", "cost_per_1000_inferences", "afbench_version",
           "torch_version", "profile_id", "measured_at")

KEY = COST_KEY  # a row applies to exactly this setting (afbench.store.schema.cost_key)


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """``rows`` as CSV with ``COLUMNS`` first, then any extra keys in first-seen order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = [k for row in rows for k in row if k not in COLUMNS]
    header = list(COLUMNS) + list(dict.fromkeys(extra))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows({k: ("" if row.get(k) is None else row.get(k)) for k in header} for row in rows)
    return path


def save_cost(store, rows: list[dict]) -> None:
    """Insert or replace ``rows`` in the ``cost`` table of ``store`` (a read-write ``Store``)."""
    store.save_cost(rows)


def load_cost(store, model: str, input_shape, activations: list[str] | None, device: str,
              threads: int, batch_size: int | None = None, version: str | None = None, *,
              dataset: str | None = None, dtype: str = "float32") -> list[dict]:
    """Stored rows measured under the same conditions (``activations`` None: all of them).

    ``input_shape`` is (C, H, W) or 'CxHxW'; ``version`` defaults to this afbench's;
    ``dataset`` None: any data set of that input shape (give it whenever known).
    """
    from afbench import __version__

    rows = store.cost_rows(model=model, dataset=dataset, input_shape=input_shape, device=device, threads=threads,
                           batch_size=batch_size, version=version or __version__, dtype=dtype)
    if activations is not None:
        wanted = set(activations)
        rows = [r for r in rows if r["activation"] in wanted]
    return rows


def all_rows(source) -> list[dict]:
    """Every stored cost row, oldest first: ``source`` a Store, a StoreView, or an open
    connection to a results database (of the current schema)."""
    if isinstance(source, sqlite3.Connection):
        return _Connected(source).cost_rows()
    return source.cost_rows()


class _Connected(Reader):
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db, self.path = db, Path("<connection>")
