"""The `afbench` command. Thin: parses arguments and calls the library."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from rich.console import Console
from rich.table import Table

from afbench import __version__, activations
from afbench.cli import args as types
from afbench.cli.run import add_run_arguments, cmd_run, print_comparison
from afbench.errors import AfbenchError

console = Console()


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def cmd_list_activations(args: argparse.Namespace) -> None:
    table = Table(title="Activations (hidden layers; softmax is output-only)", show_lines=False)
    for column in ("name", "aliases", "formula", "range", "zero-centred", "monotonic", "smooth",
                   "saturates", "learnable", "reference"):
        table.add_column(column, overflow="fold")
    for name in activations.names() + activations.output_names():
        spec = activations.info(name)
        table.add_row(spec.name + ("" if spec.kind == "hidden" else " (output)"), ", ".join(spec.aliases),
                      spec.formula, spec.output_range, _yes(spec.zero_centred), _yes(spec.monotonic),
                      _yes(spec.smooth), spec.saturates, ", ".join(spec.learnable) or "-", spec.reference)
    console.print(table)


def cmd_plot_activations(args: argparse.Namespace) -> None:
    from afbench.report import figures

    names = [n for n in args.names.split(",") if n.strip()]
    path = figures.save(figures.plot_activations(names), args.out)
    console.print(f"wrote {path}")


def cmd_list_models(args: argparse.Namespace) -> None:
    from afbench import models

    table = Table(title="Models (--model)")
    for column in ("name", "normalisation by default", "description"):
        table.add_column(column, overflow="fold")
    for name in models.names():
        table.add_row(name, models.DEFAULT_NORM[name], models.DESCRIPTIONS[name])
    table.add_row("PATH.py:NAME", "its own", "your own: NAME(...) returns an nn.Module; afbench swaps its activations "
                  "or passes act_layer (README, 'Your own model')")
    table.add_row("package.module:NAME", "its own", "the same, from an importable module")
    console.print(table)


def cmd_list_datasets(args: argparse.Namespace) -> None:
    from afbench import data

    table = Table(title="Data sets (local copies: --data-dir, then AFBENCH_DATA_DIR, then the user cache)")
    for column in ("name", "available locally", "train", "test", "classes", "image (CxHxW)", "description"):
        table.add_column(column, overflow="fold")
    for row in data.availability(args.data_dir):
        where = row["location"] or "[yellow]no: `afbench data fetch " + row["name"] + "`[/yellow]"
        table.add_row(row["name"], where, str(row["train"]), str(row["test"]), str(row["classes"]), row["shape"],
                      row["description"])
    table.add_row("imagefolder:PATH", "-", "-", "-", "-", "-", "<split>/<class>/<image> trees, folder or archive")
    console.print(table)


def cmd_list_workloads(args: argparse.Namespace) -> None:
    from afbench import workloads

    table = Table(title="Workloads (--workload; the primary metric decides verdicts, in its direction)")
    for column in ("workload", "family", "data", "model", "metric", "size", "data here", "description"):
        table.add_column(column, overflow="fold")
    for row in workloads.rows():
        table.add_row(row["workload"], row["family"], row["data"], row["model"],
                      f"{row['metric']} ({row['direction']})", row["size"], "yes" if row["available"] else "[yellow]no[/yellow]",
                      row["description"])
    table.add_row("PATH.py:NAME", "your own", "its own", "its own", "its own", "-", "-",
                  "NAME() returns an afbench.workloads.Workload (README, 'Workloads')")
    console.print(table)


def cmd_data_fetch(args: argparse.Namespace) -> None:
    from afbench import data

    loaded = data.fetch(args.name, args.data_dir)
    console.print(f"{loaded.name}: {len(loaded.train_y)} train + {len(loaded.test_y)} test images "
                  f"{'x'.join(map(str, loaded.image_shape))}, verified, from {loaded.source}")


def cmd_report(args: argparse.Namespace) -> None:
    from afbench.report import render

    try:
        report = render.write(args.out, args.baseline)
    except FileNotFoundError as err:
        raise AfbenchError(str(err)) from None
    print_comparison(report)
    console.print(f"wrote {args.out}/summary.md, report.html, summary.csv, runs.csv, epochs.csv, summary.tex")


def cmd_study_init(args: argparse.Namespace) -> None:
    from afbench import data, studies
    from afbench.engine.runtime import set_threads

    set_threads(args.threads)
    prepared = data.prepare(data.load(args.dataset, args.data_dir))
    study = studies.InitStudy(depth=args.depth, width=args.width, train_steps=args.train_steps)
    result = studies.write_init_study(prepared, tuple(args.activations.split(",")), tuple(args.inits.split(",")),
                                      study, args.out)
    console.print(studies.summary_markdown(result, prepared.num_classes), highlight=False)
    console.print(f"wrote {args.out}/init_summary.md, init_layers.csv, init_training.csv and figures")


def cmd_study_norm(args: argparse.Namespace) -> None:
    from afbench import studies
    from afbench.config import RunConfig
    from afbench.sweep import LocalBackend, Runtime

    base = RunConfig(dataset=args.dataset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                     target=args.target, train_subset=args.train_subset)
    table = studies.run_norm_study(base, tuple(args.activations.split(",")), tuple(args.norms.split(",")),
                                   args.seeds, args.device, args.out,
                                   LocalBackend(Runtime(args.data_dir, args.threads, not args.no_progress)))
    console.print(table.to_string(index=False))
    console.print(f"wrote {args.out}/norm_summary.csv and one report per norm in {args.out}/norm-*/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="afbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"afbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser("list", help="list registered activations, data sets or models")
    listing_what = listing.add_subparsers(dest="what", metavar="WHAT", required=True)
    listing_what.add_parser("activations", help="every activation with its properties").set_defaults(
        func=cmd_list_activations)

    listing_what.add_parser("models", help="the built-in models, and how to give your own").set_defaults(
        func=cmd_list_models)
    listing_what.add_parser("workloads", help="the task families: data, model, metric and direction").set_defaults(
        func=cmd_list_workloads)
    list_data = listing_what.add_parser("datasets", help="data sets, and whether they are available locally")
    list_data.add_argument("--data-dir", help="a folder with local copies of the data")
    list_data.set_defaults(func=cmd_list_datasets)

    data_cmd = commands.add_parser("data", help="fetch and verify data sets ahead of time")
    data_what = data_cmd.add_subparsers(dest="what", metavar="ACTION", required=True)
    fetch = data_what.add_parser("fetch", help="download (if missing) and verify a data set")
    fetch.add_argument("name", help="mnist, fashion-mnist, cifar10, cifar100 (digits needs no download)")
    fetch.add_argument("--data-dir", help="where to look for and store it (default: AFBENCH_DATA_DIR, "
                                          "else the user cache)")
    fetch.set_defaults(func=cmd_data_fetch)

    for command in ("run", "sweep"):
        run_parser = commands.add_parser(
            command, help="train each activation (x seeds x learning rates ...) into a results database, "
                          "resuming what is already done; no arguments: the quick demo on embedded data"
            if command == "run" else "same as run: a sweep over the grid the flags describe",
            description="Train the grid activations x seeds (x learning rates x models x data sets) into "
                        "OUT/results.sqlite, skipping runs already done, then write the report. With no flags at "
                        "all: the quick preset (every activation, MLP, embedded digits). Flags not given take "
                        "the preset's value, else the default shown.")
        add_run_arguments(run_parser)
        run_parser.set_defaults(func=cmd_run)

    report = commands.add_parser("report", help="write tables, statistics, figures and report.html from OUT")
    report.add_argument("out", help="a results folder written by `afbench run`")
    report.add_argument("--baseline", help="activation the others are tested against (default: relu if the "
                                           "database holds it, else its first activation)")
    report.set_defaults(func=cmd_report)

    study = commands.add_parser("study", help="the lecture's initialisation and normalisation studies")
    study_what = study.add_subparsers(dest="what", metavar="STUDY", required=True)
    init = study_what.add_parser("init", help="deep MLP: activations and gradients per layer under each "
                                              "activation x initialisation, and which combinations learn")
    init.add_argument("--dataset", default="digits", help="real inputs to push through (default: %(default)s)")
    init.add_argument("--data-dir", help="folder with local copies of the data")
    init.add_argument("--activations", default="tanh,sigmoid,relu,leaky_relu", help="(default: %(default)s)")
    init.add_argument("--inits", default="zeros,normal001,xavier,he", help="(default: %(default)s)")
    init.add_argument("--depth", type=int, default=10, help="hidden layers (default: %(default)s)")
    init.add_argument("--width", type=int, default=500, help="units per hidden layer (default: %(default)s)")
    init.add_argument("--train-steps", type=int, default=100, help="steps of the short training run per cell "
                                                                   "(default: %(default)s)")
    init.add_argument("--threads", type=int, help="torch threads (default: every available core)")
    init.add_argument("--out", default="results/study-init", help="(default: %(default)s)")
    init.set_defaults(func=cmd_study_init)
    norm = study_what.add_parser("norm", help="a CNN with none/batch/layer/group/instance normalisation per "
                                              "activation: accuracy, time to target, dead units")
    norm.add_argument("--dataset", default="mnist", help="(default: %(default)s)")
    norm.add_argument("--model", default="lenet", help="lenet or vgg11 (default: %(default)s)")
    norm.add_argument("--activations", default="relu,tanh,elu,relu_softsign", help="(default: %(default)s)")
    norm.add_argument("--norms", default="none,batch,layer,group,instance", help="(default: %(default)s)")
    norm.add_argument("--epochs", type=int, default=3, help="(default: %(default)s)")
    norm.add_argument("--batch-size", type=int, default=128, help="(default: %(default)s)")
    norm.add_argument("--target", type=float, default=0.98, help="(default: %(default)s)")
    norm.add_argument("--seeds", type=types.seeds, default="1", help="N seeds or a comma list (default: %(default)s)")
    norm.add_argument("--train-subset", type=int, help="train on only this many images")
    norm.add_argument("--device", default="auto", help="(default: %(default)s)")
    norm.add_argument("--threads", type=int, help="torch threads (default: every available core)")
    norm.add_argument("--data-dir", help="folder with local copies of the data")
    norm.add_argument("--out", default="results/study-norm", help="(default: %(default)s)")
    norm.add_argument("--no-progress", action="store_true", help="no progress bars")
    norm.set_defaults(func=cmd_study_norm)

    from afbench.cli import workflow as workflow_cli
    from afbench.cli.cost import add_parser as add_cost_parser

    add_cost_parser(commands)
    workflow_cli.add_parsers(commands, listing_what)

    plot = commands.add_parser("plot", help="draw figures")
    plot_what = plot.add_subparsers(dest="what", metavar="WHAT", required=True)
    plot_act = plot_what.add_parser("activations", help="each activation and its derivative on [-3, 3]")
    plot_act.add_argument("names", help="comma-separated activation names, e.g. relu,tanh,relu_softsign")
    plot_act.add_argument("--out", default="activations.png", help="PNG file to write (default: %(default)s)")
    plot_act.set_defaults(func=cmd_plot_activations)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except AfbenchError as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
    except sqlite3.Error as err:  # a full disk, a file that is not a database, ...
        console.print(f"[red]error:[/red] results database: {err}. Nothing computed so far is lost: free the disk "
                      "or fix the file, then rerun the same command to resume", highlight=False)
    except OSError as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
    return 2


if __name__ == "__main__":
    sys.exit(main())
