"""`afbench cost`: the argument parser and the command. Thin: ``afbench.cost.run_cost`` does the work."""

from __future__ import annotations

import argparse
import math

from afbench import rules
from afbench.cli import args as types

BUDGET_PER_ACTIVATION_S = 12.0  # afbench.cost.profile's default, restated so `--help` needs no torch


def add_parser(commands) -> argparse.ArgumentParser:
    """Add the `cost` sub-command to ``commands`` (the sub-parsers of `afbench`)."""
    cost = commands.add_parser(
        "cost", epilog="example:\n  afbench cost --activations relu,gelu,mish --out results/cost",
        help="measure each activation's cost in a model: step time (paired ratios with CIs), memory, "
                     "FLOPs, ONNX export, bf16/fp16 error, price",
        description="Measure, in one process with fixed threads, each activation's training step time "
                    "(forward, backward, optimizer), inference latency (batch 1 with its 95% CI, and batched), "
                    "bytes saved for backward, FLOPs, ONNX deployability and bf16/fp16 error. "
                    "Activations are interleaved in shuffled rounds "
                    "until every step-time ratio to the baseline has a 95% CI within +-3% or the budget is "
                    "spent. Writes OUT/cost.csv, OUT/cost.png and the cost table of OUT/results.sqlite.")
    cost.add_argument("--dataset", type=types.flag(rules.TEXT), default="digits", help="data set, e.g. mnist (see `afbench list datasets`) (default: %(default)s)")
    cost.add_argument("--model", type=types.flag(rules.TEXT), default="mlp",
                      help="a built-in model (`afbench list models`) or your own: PATH.py:NAME or "
                           "package.module:NAME (default: %(default)s)")
    cost.add_argument("--activations", type=types.activation_list, required=True,
                      help="activations as `afbench run` takes them, e.g. relu,tanh,mish")
    cost.add_argument("--baseline", default="relu", help="ratios are to this activation (default: %(default)s)")
    cost.add_argument("--batch-size", type=types.positive_int, default=128, help="training batch size (default: %(default)s)")
    cost.add_argument("--threads", type=types.positive_int, default=None,
                      help="torch intra-op threads for the whole measurement (default: 1; two threads on a shared machine "
                           "stalled plain torch.tanh 3,000x)")
    cost.add_argument("--budget", type=types.positive, default=None, metavar="SECONDS",
                      help=f"time for the timing rounds (default: {BUDGET_PER_ACTIVATION_S:g} s per activation)")
    cost.add_argument("--price-per-hour", type=types.positive, default=None, metavar="P",
                      help="the machine's price per hour: adds the cost of training and of 1,000 inferences")
    cost.add_argument("--epochs", type=types.positive_int, default=None,
                      help="epochs of training priced with --price-per-hour (default: none, no training cost)")
    cost.add_argument("--device", type=types.device, default="auto",
                      help="auto, cpu, cuda or cuda:N (default: %(default)s: cuda if torch sees a GPU)")
    cost.add_argument("--data-dir", help="a folder with local copies of the data")
    cost.add_argument("--out", required=True, help="results folder (cost.csv, cost.png, results.sqlite)")
    cost.set_defaults(func=cmd_cost)
    return cost


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _with_ci(row: dict, column: str) -> str:
    """``column`` with its 95% CI in brackets where the row has one."""
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    interval = "" if _fmt(low) == "-" or _fmt(high) == "-" else f" [{_fmt(low)}, {_fmt(high)}]"
    return _fmt(row[column]) + interval


def cmd_cost(args: argparse.Namespace) -> None:
    from afbench.cli import _names
    from afbench.cli.output import Output
    from afbench.cost.api import run_cost
    from afbench.engine.runtime import resolve_device

    names = _names(args.activations)
    device = resolve_device(args.device).type if args.device == "auto" else args.device
    result = run_cost(args.out, args.dataset, args.model, names, baseline=args.baseline, batch_size=args.batch_size,
                      threads=args.threads, budget_s=args.budget, price_per_hour=args.price_per_hour,
                      data_dir=args.data_dir, device=device, epochs=args.epochs)
    output = Output()
    for line in table_lines(result.rows):
        output.result(line)
    rounds = result.rounds
    reason = {"converged": "every ratio's 95% CI within +-3%", "budget": "budget spent",
              "max_rounds": "round limit reached"}[rounds.stop]
    output.result(f"{rounds.count} rounds in {rounds.elapsed_s:.1f} s, stopped: {reason}. "
                  f"Wrote {args.out}/cost.csv, cost.png and the cost table of results.sqlite.")


def table_lines(rows: list[dict]) -> list[str]:
    """The cost rows: a title and Markdown rows (long lines, never folded); cost.csv has every digit."""
    r0 = rows[0]
    columns = ["activation", "step ms", "ratio [95% CI]", "fwd/bwd/opt ms", "lat ms (1 / batch)", "saved B/sample",
               "peak B", "params", "MFLOPs", "onnx", "bf16 err", "fp16 err"]
    if r0.get("price_per_hour"):
        columns += ["train cost", "1k inferences"]
    lines = [f"Cost: {r0['model']} / {r0['dataset']}, batch {r0['batch_size']}, {r0['device']}, "
             f"{r0['threads']} threads (ratios to {r0['baseline']}, 95% CI)", "",
             "| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        cells = [r["activation"], _fmt(r["step_ms"]),
                 f"{r['step_ratio']:.3f} [{_fmt(r['step_ratio_low'], 4)}, {_fmt(r['step_ratio_high'], 4)}]",
                 "/".join(_fmt(r[k], 2) for k in ("forward_ms", "backward_ms", "optimizer_ms")),
                 f"{_with_ci(r, 'latency_ms')} / {_fmt(r['latency_batch_ms'])}", f"{r['saved_bytes_per_sample']:.0f}",
                 _fmt(r["peak_bytes"]), f"{r['params']:,}", _fmt(r["flops"] / 1e6),
                 "yes" if r.get("onnx") else ("no: " + r.get("onnx_error", "") if "onnx" in r else "-"),
                 _flagged(r, "bf16"), _flagged(r, "fp16")]
        if r0.get("price_per_hour"):
            cells += [_fmt(r["train_cost"]), _fmt(r["cost_per_1000_inferences"])]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return lines


def _flagged(row: dict, fmt: str) -> str:
    text = _fmt(row.get(f"{fmt}_error"))
    return text + (" (!)" if row.get(f"{fmt}_flags") else "")
