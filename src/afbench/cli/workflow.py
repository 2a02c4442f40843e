"""Sub-commands for the workflow around afbench: export, merge, list presets, show preset.

cli.build_parser registers them with ``add_parsers(commands, listing_what)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from afbench.cli import args as types
from afbench.errors import AfbenchError


def _print(text: str) -> None:
    from afbench.cli.output import Output

    Output().result(text)  # plain text: names and paths are never read as markup


def cmd_export(args: argparse.Namespace) -> None:
    from afbench.cli.folders import results_folder

    args.out = str(results_folder(args.out, "export"))  # good/results.sqlite exports good/
    if not (Path(args.out) / "results.sqlite").exists():
        raise AfbenchError(f"{args.out} holds no results.sqlite: give an out folder written by `afbench run`")
    if args.to == "tensorboard":
        from afbench.export import tensorboard

        done = tensorboard.export(args.out, args.dest)
        _print(f"wrote {len(done.written)} TensorBoard runs to {args.dest}: "
               + _parts((done.added, "new"), (done.replaced, "replaced an earlier export"))
               + f". View: tensorboard --logdir {args.dest}")
    else:
        from afbench.export import mlflow

        name = mlflow.experiment_name(args.out, args.experiment)
        done = mlflow.export(args.out, args.dest, args.experiment)
        _print(f"logged {len(done.written)} runs to MLflow experiment '{name}' at {mlflow.tracking_uri(args.dest)}: "
               + _parts((done.added, "new"), (done.replaced, "replaced (left unfinished before)"),
                        (done.skipped, "skipped (already there)")))


def _parts(*groups: tuple[list[str], str]) -> str:
    """'2 new (relu/seed0, tanh/seed0); 1 skipped (already there) (elu/seed0)', empty groups left out."""
    return "; ".join(f"{len(names)} {what} ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})"
                     for names, what in groups if names) or "nothing"


def cmd_merge(args: argparse.Namespace) -> None:
    from afbench.cli import folders
    from afbench.report import render
    from afbench.store import merge

    inputs, out = [Path(p) for p in args.inputs], Path(args.out)
    folders.check_designs(inputs, out)
    records = folders.merged_records(inputs, out)  # the report's refusals come before the merge writes
    if not records:
        raise AfbenchError(folders.no_runs(inputs[0], "merge"))
    folders.check_runs(records, args.baseline)
    with merge.removed_on_failure(out):  # a report that fails after all leaves no new database either
        summary = merge.merge(inputs, out)
        _print(merge.describe(summary))
        render.write(out, args.baseline)
    _print(f"report: {args.out}/summary.md, {args.out}/report.html")


def cmd_list_presets(args: argparse.Namespace) -> None:
    from afbench.sweep import study

    for name in study.list_presets():
        _print(f"{name:<18} {study.preset_study(name).description or ''}")
    _print("`afbench show preset NAME > my.toml` writes one to start from; `afbench run --study my.toml` runs it")


def cmd_show_preset(args: argparse.Namespace) -> None:
    from afbench.sweep import study

    print(study.show_preset(args.name), end="")  # plain print: the output is a file to redirect


def add_parsers(commands: argparse._SubParsersAction, listing_what: argparse._SubParsersAction) -> None:
    """Add `export`, `merge`, `show` and `suite` to ``commands``, and `presets` and `suites` to `afbench list`."""
    export = commands.add_parser("export", help="export an out folder to TensorBoard or MLflow",
                                 epilog="example:\n  afbench export results/quick --to tensorboard runs/")
    export.add_argument("out", type=types.path, help="a results folder written by `afbench run`")
    export.add_argument("--to", required=True, nargs=2, metavar=("TOOL", "DEST"),
                        help="tensorboard LOGDIR, or mlflow TRACKING_URI (sqlite:///PATH/mlflow.db or "
                             "http://HOST:PORT); needs pip install 'afbench[export]'")
    export.add_argument("--experiment", help="MLflow experiment name (default: the study's name, else OUT's "
                                             "folder name)")
    export.set_defaults(func=_export_entry)

    merge = commands.add_parser("merge", help="combine results folders from several machines into one, "
                                              "each run once; inputs are never changed",
                                epilog="example:\n  afbench merge machine-a/results machine-b/results --out all")
    merge.add_argument("inputs", nargs="+", type=types.path, metavar="OUT",
                       help="results folders (or results.sqlite files)")
    merge.add_argument("--out", required=True, type=types.path,
                       help="the merged results folder (created, or merged into)")
    merge.add_argument("--baseline", help="activation the others are tested against in the report (default: relu "
                                          "if the merged database holds it, else its first activation)")
    merge.set_defaults(func=cmd_merge)

    listing_what.add_parser("presets", help="the study files shipped with afbench",
                            epilog="example:\n  afbench list presets").set_defaults(
        func=cmd_list_presets)
    show = commands.add_parser("show", help="print a preset's study file or a suite's file",
                               epilog="example:\n  afbench show preset quick > my.toml")
    show_what = show.add_subparsers(dest="what", metavar="WHAT", required=True)
    show_preset = show_what.add_parser("preset", help="print a preset as a study file, to start your own",
                                       epilog="example:\n  afbench show preset quick > my.toml")
    show_preset.add_argument("name", help="a preset: `afbench list presets`")
    show_preset.set_defaults(func=cmd_show_preset)
    from afbench.cli import suite as suite_cli

    suite_cli.add_parsers(commands, listing_what, show_what)


def _export_entry(args: argparse.Namespace) -> None:
    tool, args.dest = args.to
    if tool not in ("tensorboard", "mlflow"):
        raise AfbenchError(f"unknown export target '{tool}': use --to tensorboard DIR or --to mlflow URI")
    if not args.dest.strip():  # '' would export into the current folder
        raise AfbenchError(f"--to {tool} needs a destination, got '': name a "
                           + ("log folder, e.g. --to tensorboard runs/" if tool == "tensorboard" else
                              "tracking URI, e.g. --to mlflow sqlite:///mlruns/mlflow.db"))
    args.to = tool
    cmd_export(args)
