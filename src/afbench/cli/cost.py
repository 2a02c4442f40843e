"""`afbench cost`: the argument parser and the command. Thin: ``afbench.cost.run_cost`` does the work."""

from __future__ import annotations

import argparse
import math
import textwrap

from afbench import rules
from afbench.errors import AfbenchError
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
    cost.add_argument("--dataset", type=types.flag(rules.TEXT), default="digits",
                      help="data set, e.g. mnist (see `afbench list datasets`) (default: %(default)s)")
    cost.add_argument("--model", type=types.flag(rules.TEXT), default="mlp",
                      help="a built-in model (`afbench list models`) or your own: PATH.py:NAME or "
                           "package.module:NAME (default: %(default)s)")
    cost.add_argument("--activations", type=types.activation_list, required=True,
                      help="activations as `afbench run` takes them, e.g. relu,tanh,mish")
    cost.add_argument("--baseline", help="ratios are to this activation, one of --activations (default: relu, "
                                         "measured as the reference even where --activations lacks it)")
    cost.add_argument("--batch-size", type=types.positive_int, default=128,
                      help="training batch size (default: %(default)s)")
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
    cost.add_argument("--out", required=True, type=types.path,
                      help="results folder (cost.csv, cost.png, results.sqlite)")
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


def _ratio(row: dict) -> str:
    ratio = row.get("step_ratio")
    return "-" if _fmt(ratio) == "-" else (f"{ratio:.3f} [{_fmt(row.get('step_ratio_low'), 4)}, "
                                           f"{_fmt(row.get('step_ratio_high'), 4)}]")


def _onnx(row: dict) -> str:
    """yes / no (why: a note under the table, as it is a sentence) / - (not tried)."""
    return "yes" if row.get("onnx") else "-" if row.get("onnx") is None else "no"


def cmd_cost(args: argparse.Namespace) -> None:
    from afbench.cli import _names
    from afbench.cli.output import Output, terminal_width
    from afbench.cost.api import run_cost
    from afbench.engine.runtime import available_cores, resolve_device

    names = _names(args.activations)
    if args.baseline is not None:  # as `afbench run`: a baseline given is one of the activations, never added
        from afbench.cli.run import choose_baseline
        from afbench.sweep.execute import canonical_activation

        choose_baseline(args.baseline, tuple(canonical_activation(name) for name in names))
    resolved = resolve_device(args.device)  # refused here (mps on Linux, a GPU not there), not in the profile
    device = resolved.type if args.device == "auto" else args.device
    if args.epochs is not None and args.price_per_hour is None:
        raise AfbenchError("--epochs prices that many epochs of training: give --price-per-hour too")
    output = Output()
    cores = available_cores()
    if args.threads and args.threads > cores:  # more threads than cores measure the oversubscription, not the step
        output.note(f"note: --threads {args.threads} capped to the {cores} cores")
        args.threads = cores
    result = run_cost(args.out, args.dataset, args.model, names, baseline=args.baseline or "relu",
                      batch_size=args.batch_size, threads=args.threads, budget_s=args.budget,
                      price_per_hour=args.price_per_hour, data_dir=args.data_dir, device=device, epochs=args.epochs)
    for line in table_lines(result.rows, max(80, terminal_width())):
        output.result(line, wrap=False)  # every line fits already: folding would split table rows
    rounds = result.rounds
    reason = {"converged": "every ratio's 95% CI within +-3%", "budget": "budget spent",
              "max_rounds": "round limit reached"}[rounds.stop]
    output.result(f"{rounds.count} rounds in {rounds.elapsed_s:.1f} s, stopped: {reason}. "
                  f"Wrote {args.out}/cost.csv, cost.png and the cost table of results.sqlite.")


# The cost table's blocks: (title, [(heading, cell of a row, right-aligned)]). Each block repeats the
# activation column and fits 80 columns beside a 22-character name (longer ones get an alias) for models
# up to about a hundred million parameters; the 14 columns in one Markdown row took up to 170 and were
# folded at 80. A block too wide all the same is split further (_fitted), never folded.
BLOCKS = [
    ("training step", [
        ("step ms", lambda r: _amount(r["step_ms"]), True),
        ("ratio [95% CI]", _ratio, False),
        ("fwd/bwd/opt ms", lambda r: "/".join(_fmt(r[k], 2) for k in ("forward_ms", "backward_ms", "optimizer_ms")),
         False)]),
    ("inference and size", [
        ("batch-1 ms [95% CI]", lambda r: _with_ci(r, "latency_ms"), False),
        ("batched ms", lambda r: _amount(r["latency_batch_ms"]), True),
        ("MFLOPs", lambda r: _amount(r.get("flops"), 1e-6), True),
        ("params", lambda r: _count(r.get("params")), True)]),
    ("memory and deployment", [
        ("saved B/sample", lambda r: _count(r.get("saved_bytes_per_sample")), True),
        ("peak MB", lambda r: _amount(r.get("peak_bytes"), 1e-6), True),
        ("onnx", _onnx, False),
        ("bf16 err", lambda r: _flagged(r, "bf16"), True),
        ("fp16 err", lambda r: _flagged(r, "fp16"), True)]),
]
PRICE = ("price", [("train cost", lambda r: _fmt(r.get("train_cost")), True),
                   ("1k inferences", lambda r: _fmt(r.get("cost_per_1000_inferences")), True)])


def table_lines(rows: list[dict], width: int = 80) -> list[str]:
    """The cost rows as plain text, every line at most ``width`` (80 at least) columns and
    never folded: a title, one block per group of columns (BLOCKS), each starting with the
    activation (names longer than 22 characters get an alias, a1 ...), then notes
    (aliases, ONNX failures, unpublished step times, what the columns mean) wrapped at
    ``width``. cost.csv has every column and digit."""
    from afbench.cli.table import alias

    r0 = rows[0]
    aliases: dict[str, str] = {}
    names = [alias(str(r["activation"]), aliases) for r in rows]
    lines = _wrapped(f"Cost: {r0['model']} / {r0['dataset']}, batch {r0['batch_size']}, {r0['device']}, "
                     f"{r0['threads']} threads, ratios to {r0['baseline']}", width)
    for title, columns in BLOCKS + ([PRICE] if r0.get("price_per_hour") else []):
        for part, block in enumerate(_fitted(names, rows, columns, width)):
            lines += ["", title + (" (continued):" if part else ":")] + block
    notes = [f"{short} = {name}" for name, short in aliases.items()]
    notes += [f"onnx no: {r['activation']}: {(r.get('onnx_error') or 'no reason given').splitlines()[0]}"
              for r in rows if _onnx(r) == "no"]
    notes += [f"step -: {r['activation']}: {r['step_flag']}" for r in rows if r.get("step_flag")]
    notes.append(f"ratio: step time / {r0['baseline']}'s (geometric mean over rounds, 95% CI); err: the largest "
                 "relative error in bf16 / fp16, in units of that format's epsilon"
                 + ("; (!): overflow or NaN there (cost.csv's bf16_flags, fp16_flags say where)"
                    if any(r.get(f"{fmt}_flags") for r in rows for fmt in ("bf16", "fp16")) else ""))
    return lines + [""] + [line for note in notes for line in _wrapped(note, width)]


def _wrapped(text: str, width: int) -> list[str]:
    """A sentence in lines of at most ``width``, at spaces: a name or number is never split."""
    return textwrap.wrap(text, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)


def _count(value) -> str:
    """A whole count (bytes, parameters) with thousands separators."""
    return "-" if _fmt(value) == "-" else f"{value:,.0f}"


def _amount(value, scale: float = 1.0) -> str:
    """``value`` x ``scale`` at 3 significant digits, or whole with separators from 1,000
    on ('1,018', not '1.02e+03': as narrow, and read at a glance)."""
    if _fmt(value) == "-":
        return "-"
    value = value * scale
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _fitted(names: list[str], rows: list[dict], columns: list, width: int) -> list[list[str]]:
    """``columns`` as aligned rows beside the names: one block, or, where the cells are
    too wide for ``width``, as many as it takes (greedily, in order), so no line is longer."""
    cells = [[cell(r) for _, cell, _ in columns] for r in rows]
    widths = [max([len(heading)] + [len(c[i]) for c in cells]) for i, (heading, _, _) in enumerate(columns)]
    name_width = max([len("activation")] + [len(n) for n in names])
    groups, used = [[]], name_width
    for i, column_width in enumerate(widths):
        if groups[-1] and used + 2 + column_width > width:
            groups.append([])
            used = name_width
        groups[-1].append(i)
        used += 2 + column_width

    def line(name: str, values: list[str], group: list[int]) -> str:
        parts = [f"{name:<{name_width}}"] + [f"{values[i]:>{widths[i]}}" if columns[i][2] else
                                             f"{values[i]:<{widths[i]}}" for i in group]
        return "  ".join(parts).rstrip()

    out = []
    for group in groups:
        header = line("activation", [heading for heading, _, _ in columns], group)
        out.append([header, "-" * len(header)] + [line(n, c, group) for n, c in zip(names, cells)])
    return out


def _flagged(row: dict, fmt: str) -> str:
    text = _amount(row.get(f"{fmt}_error"))
    return text + (" (!)" if row.get(f"{fmt}_flags") else "")
