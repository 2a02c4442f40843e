"""The cost table: cost.csv, and the `cost` table of the results database.

A stored row is reused only under the same conditions: model, input shape,
activation, device, threads, batch size and afbench version. Rows measured together
(one ``profile`` call, paired ratios) share a ``profile_id``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

COLUMNS = ("activation", "model", "dataset", "input_shape", "device", "threads", "batch_size", "params", "flops",
           "step_ms", "step_ms_low", "step_ms_high", "step_ratio", "step_ratio_low", "step_ratio_high",
           "forward_ms", "backward_ms", "optimizer_ms", "latency_ms", "latency_batch_ms", "saved_bytes_per_sample",
           "peak_bytes", "onnx", "onnx_opset", "onnx_max_abs_error", "onnx_error", "bf16_error", "bf16_flags",
           "bf16_reason", "fp16_error", "fp16_flags", "fp16_reason", "rounds", "stop", "baseline", "train_steps",
           "price_per_hour", "train_cost", "cost_per_1000_inferences", "afbench_version", "torch_version",
           "profile_id", "measured_at")

KEY = ("model", "input_shape", "activation", "device", "threads", "batch_size", "afbench_version")

DDL = """
CREATE TABLE IF NOT EXISTS cost (
    model TEXT NOT NULL, input_shape TEXT NOT NULL,   -- input_shape as CxHxW, e.g. 1x28x28
    activation TEXT NOT NULL, device TEXT NOT NULL, threads INTEGER NOT NULL, batch_size INTEGER NOT NULL,
    afbench_version TEXT NOT NULL,
    profile_id TEXT NOT NULL,                         -- rows measured in one interleaved profile
    measured_at REAL NOT NULL,                        -- unix time
    record TEXT NOT NULL,                             -- the whole cost.csv row as JSON
    PRIMARY KEY (model, input_shape, activation, device, threads, batch_size, afbench_version)
)
"""


def _clean(value):
    """JSON has no NaN: store it as null."""
    return None if isinstance(value, float) and math.isnan(value) else value


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
    """Insert or replace ``rows`` in the ``cost`` table of ``store`` (an ``afbench.store.database.Store``)."""
    db = store.db
    db.execute(DDL)
    db.execute("BEGIN IMMEDIATE")  # one transaction: a profile's rows land together or not at all
    try:
        for row in rows:
            db.execute("INSERT OR REPLACE INTO cost VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       tuple(row[k] for k in KEY) + (row["profile_id"], row["measured_at"],
                                                     json.dumps({k: _clean(v) for k, v in row.items()})))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def load_cost(store, model: str, input_shape, activations: list[str] | None, device: str,
              threads: int, batch_size: int | None = None, version: str | None = None) -> list[dict]:
    """Stored rows measured under the same conditions (``activations`` None: all of them).

    ``input_shape`` is (C, H, W) or 'CxHxW'; ``version`` defaults to this afbench's.
    """
    from afbench import __version__

    db = store.db
    db.execute(DDL)
    shape = input_shape if isinstance(input_shape, str) else "x".join(map(str, input_shape))
    query = ("SELECT record FROM cost WHERE model = ? AND input_shape = ? AND device = ? AND threads = ? "
             "AND afbench_version = ?")
    params: list = [model, shape, device, int(threads), version or __version__]
    if batch_size is not None:
        query += " AND batch_size = ?"
        params.append(int(batch_size))
    rows = [json.loads(r[0]) for r in db.execute(query + " ORDER BY measured_at", params)]
    if activations is not None:
        wanted = set(activations)
        rows = [r for r in rows if r["activation"] in wanted]
    return rows
