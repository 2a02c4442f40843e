"""The `afbench` command. Thin: parses arguments and calls the library."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from afbench import __version__, activations
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


def cmd_data_fetch(args: argparse.Namespace) -> None:
    from afbench import data

    loaded = data.fetch(args.name, args.data_dir)
    console.print(f"{loaded.name}: {len(loaded.train_y)} train + {len(loaded.test_y)} test images "
                  f"{'x'.join(map(str, loaded.image_shape))}, verified, from {loaded.source}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="afbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"afbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser("list", help="list registered activations, data sets or models")
    listing_what = listing.add_subparsers(dest="what", metavar="WHAT", required=True)
    listing_what.add_parser("activations", help="every activation with its properties").set_defaults(
        func=cmd_list_activations)

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
        args.func(args)
    except AfbenchError as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
