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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="afbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"afbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser("list", help="list registered activations, data sets or models")
    listing_what = listing.add_subparsers(dest="what", metavar="WHAT", required=True)
    listing_what.add_parser("activations", help="every activation with its properties").set_defaults(
        func=cmd_list_activations)

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
