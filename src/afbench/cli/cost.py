"""`afbench cost`: the argument parser and the command. Thin: ``afbench.cost.run_cost`` does the work."""

from __future__ import annotations

import argparse
import math

from afbench.cost.profile import BUDGET_PER_ACTIVATION_S


def add_parser(commands) -> argparse.ArgumentParser:
    """Add the `cost` sub-command to ``commands`` (the sub-parsers of `afbench`)."""
    cost = commands.add_parser(
        "cost", help="measure each activation's cost in a model: step time (paired ratios with CIs), memory, "
                     "FLOPs, ONNX export, bf16/fp16 error, price",
        description="Measure, in one process with fixed threads, each activation's training step time "
                    "(forward, backward, optimizer), inference latency, bytes saved for backward, FLOPs, "
                    "ONNX deployability and bf16/fp16 error. Activations are interleaved in shuffled rounds "
                    "until every step-time ratio to the baseline has a 95%% CI within +-3%% or the budget is "
                    "spent. Writes OUT/cost.csv, OUT/cost.png and the cost table of OUT/results.sqlite.")
    cost.add_argument("--dataset", required=True, help="data set, e.g. mnist (see `afbench list datasets`)")
    cost.add_argument("--model", required=True, help="a built-in model (`afbench list models`) or your own: PATH.py:NAME or package.module:NAME")
    cost.add_argument("--activations", required=True, help="comma-separated activation names, e.g. relu,tanh,mish")
    cost.add_argument("--baseline", default="relu", help="ratios are to this activation (default: %(default)s)")
    cost.add_argument("--batch-size", type=int, default=128, help="training batch size (default: %(default)s)")
    cost.add_argument("--threads", type=int, default=None,
                      help="torch intra-op threads for the whole measurement (default: torch's current setting)")
    cost.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                      help=f"time for the timing rounds (default: {BUDGET_PER_ACTIVATION_S:g} s per activation)")
    cost.add_argument("--price-per-hour", type=float, default=None, metavar="P",
                      help="the machine's price per hour: adds the cost of training and of 1,000 inferences")
    cost.add_argument("--epochs", type=int, default=None,
                      help="epochs of training priced with --price-per-hour (default: none, no training cost)")
    cost.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    cost.add_argument("--data-dir", help="a folder with local copies of the data")
    cost.add_argument("--out", required=True, help="results folder (cost.csv, cost.png, results.sqlite)")
    cost.set_defaults(func=cmd_cost)
    return cost


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def cmd_cost(args: argparse.Namespace) -> None:
    from rich.console import Console

    from afbench.cost.api import run_cost

    names = [n.strip() for n in args.activations.split(",") if n.strip()]
    result = run_cost(args.out, args.dataset, args.model, names, baseline=args.baseline, batch_size=args.batch_size,
                      threads=args.threads, budget_s=args.budget, price_per_hour=args.price_per_hour,
                      data_dir=args.data_dir, device=args.device, epochs=args.epochs)
    print_table(result.rows, Console())
    rounds = result.rounds
    reason = {"converged": "every ratio's 95% CI within +-3%", "budget": "budget spent",
              "max_rounds": "round limit reached"}[rounds.stop]
    Console().print(f"{rounds.count} rounds in {rounds.elapsed_s:.1f} s, stopped: {reason}. "
                    f"Wrote {args.out}/cost.csv, cost.png and the cost table of results.sqlite.")


def print_table(rows: list[dict], console) -> None:
    """The cost rows as a rich table."""
    from rich.table import Table

    r0 = rows[0]
    table = Table(title=f"Cost: {r0['model']} / {r0['dataset']}, batch {r0['batch_size']}, {r0['device']}, "
                        f"{r0['threads']} threads (ratios to {r0['baseline']}, 95% CI)")
    columns = ["activation", "step ms", "ratio [95% CI]", "fwd/bwd/opt ms", "lat ms (1 / batch)", "saved B/sample",
               "peak B", "params", "MFLOPs", "onnx", "bf16 err", "fp16 err"]
    if r0.get("price_per_hour"):
        columns += ["train cost", "1k inferences"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for r in rows:
        cells = [r["activation"], _fmt(r["step_ms"]),
                 f"{r['step_ratio']:.3f} [{_fmt(r['step_ratio_low'], 4)}, {_fmt(r['step_ratio_high'], 4)}]",
                 "/".join(_fmt(r[k], 2) for k in ("forward_ms", "backward_ms", "optimizer_ms")),
                 f"{_fmt(r['latency_ms'])} / {_fmt(r['latency_batch_ms'])}", f"{r['saved_bytes_per_sample']:.0f}",
                 _fmt(r["peak_bytes"]), str(r["params"]), _fmt(r["flops"] / 1e6),
                 "yes" if r.get("onnx") else ("no: " + r.get("onnx_error", "") if "onnx" in r else "-"),
                 _flagged(r, "bf16"), _flagged(r, "fp16")]
        if r0.get("price_per_hour"):
            cells += [_fmt(r["train_cost"]), _fmt(r["cost_per_1000_inferences"])]
        table.add_row(*cells)
    console.print(table)


def _flagged(row: dict, fmt: str) -> str:
    text = _fmt(row.get(f"{fmt}_error"))
    return text + (" (!)" if row.get(f"{fmt}_flags") else "")
