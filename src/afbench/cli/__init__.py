"""afbench: compare activation functions fairly. Each activation is trained in the
same model on real data over paired seeds; the results land in a database that a
rerun resumes, and the report says in words which differences the seeds support.

Start with `afbench run` (a one-minute demo on embedded data), then
`afbench list activations` and `afbench run --help`."""

# The parser imports nothing heavy (no torch): `afbench --help` answers at once.
# Each command imports what it needs when it runs.

from __future__ import annotations

import argparse
import gc
import os
import signal
import sqlite3
import sys
import warnings

from afbench import __version__, rules
from afbench.cli import args as types
from afbench.cli.output import Output, error, show_warning, terminal_width
from afbench.cli.run import EXAMPLES, add_run_arguments, cmd_run
from afbench.errors import AfbenchError, Interrupted, path_problem

FIGURE_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
INIT_RULES = {"depth": rules.POSITIVE_INT, "width": rules.POSITIVE_INT, "train_steps": rules.POSITIVE_INT,
              "threads": rules.POSITIVE_INT}


def _examples(*lines: str) -> str:
    return "example" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join(f"  {line}" for line in lines)


def cmd_list_activations(args: argparse.Namespace) -> None:
    from afbench import activations

    output = Output()
    specs = [activations.info(n) for n in activations.names() + activations.output_names()]
    if args.wide:
        output.result("| name | aliases | formula | range | zero-centred | monotonic | smooth | saturates | "
                      "learnable | reference |")
        output.result("|---|---|---|---|---|---|---|---|---|---|")
        for spec in specs:
            cells = [spec.name, ", ".join(spec.aliases), spec.formula, spec.output_range, _yes(spec.zero_centred),
                     _yes(spec.monotonic), _yes(spec.smooth), spec.saturates, ", ".join(spec.learnable) or "-",
                     spec.reference]
            output.result("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        return
    width = max(80, terminal_width())
    name_width = max(len(s.name) for s in specs) + 2
    output.result(f"{'name':<{name_width}}formula (range; --wide: every property, aliases, references)")
    for spec in specs:
        line = f"{spec.name + ('' if spec.kind == 'hidden' else ' *'):<{name_width}}{spec.formula}"
        output.result(line if len(line) <= width else line[:width - 1] + "…")
    output.result("* output only. Formulas in x (\"x * sigmoid(1.5 * x)\") and PATH.py:NAME work too.")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _names(given) -> list[str]:
    """--activations as every command takes it: "all", or names, formulas and PATH.py:NAME.
    Each user activation is built and run once here (usercode.check_activation, as `afbench
    run` checks them): one that raises or gives NaN is a clear error, never a traceback."""
    from afbench.cli.run import import_path

    if given == "all":
        from afbench import activations

        return activations.names()
    from afbench.usercode import check_activations

    names = list(dict.fromkeys(import_path(name) for name in given))
    check_activations(names)
    return names


def cmd_plot_activations(args: argparse.Namespace) -> None:
    from afbench.report import figures

    names = _names(args.names)
    try:
        figure = figures.plot_activations(names)
    except (KeyError, ValueError) as err:
        raise AfbenchError(f"cannot plot {', '.join(names)}: {err}") from None
    path = figures.save(figure, args.out)
    Output().result(f"wrote {path}")


def cmd_list_models(args: argparse.Namespace) -> None:
    from afbench import models

    output = Output()
    for name in models.names():
        output.result(f"{name:<10} {models.DESCRIPTIONS[name]} (normalisation: {models.DEFAULT_NORM[name]})")
    output.result("PATH.py:NAME         your own: NAME(...) returns an nn.Module; afbench swaps its activations "
                  "or passes act_layer (README, 'Your own model')")
    output.result("package.module:NAME  the same, from an importable module")


def cmd_list_datasets(args: argparse.Namespace) -> None:
    from afbench import data

    rows = data.availability(args.data_dir)  # a bad --data-dir fails before a line is printed
    output = Output()
    output.result("Local copies are looked up in --data-dir, then AFBENCH_DATA_DIR, then the user cache.")
    for row in rows:
        where = row["location"] or f"not here: `afbench data fetch {row['name']}`"
        output.result(f"{row['name']:<14} {row['description']}")
        output.result(f"{'':<14} {row['train']} train, {row['test']} test, {row['classes']} classes, {row['shape']}; "
                      f"{where}")
    output.result("imagefolder:PATH  <split>/<class>/<image> trees, a folder or an archive")


def cmd_list_workloads(args: argparse.Namespace) -> None:
    from afbench import workloads

    output = Output()
    output.result("Workloads (--workload NAME): the primary metric decides verdicts, in its direction.")
    for row in workloads.rows():
        here = "" if row["available"] else "; its data is not here"
        output.result(f"{row['workload']:<22} {row['description']}")
        output.result(f"{'':<22} {row['family']}: {row['data']} x {row['model']}, {row['metric']} "
                      f"({row['direction']}), {row['size']}{here}")
    output.result(f"{'PATH.py:NAME':<22} your own: NAME() returns an afbench.workloads.Workload (README, "
                  "'Workloads')")


def cmd_data_fetch(args: argparse.Namespace) -> None:
    from afbench import data

    loaded = data.fetch(args.name, args.data_dir)
    Output().result(f"{loaded.name}: {len(loaded.train_y)} train + {len(loaded.test_y)} test images "
                    f"{'x'.join(map(str, loaded.image_shape))}, verified, from {loaded.source}")


def cmd_report(args: argparse.Namespace) -> None:
    from afbench.cli.folders import check_has_runs, results_folder
    from afbench.cli.run import show_report
    from afbench.report import render

    out = results_folder(args.out, "report")  # good/results.sqlite reports on good/
    if not (out / "results.sqlite").is_file():
        raise AfbenchError(f"{out} holds no results.sqlite: give a folder written by `afbench run` (or run "
                           f"`afbench run --out {out}` first)")
    check_has_runs(out, "report")  # an empty report is none; a bad --baseline is refused by the report itself
    report = render.write(out, args.baseline)
    show_report(report, out, Output(), wide=args.wide)


def cmd_study_init(args: argparse.Namespace) -> None:
    from afbench import data, studies
    from afbench.engine.runtime import set_threads

    if args.threads:
        set_threads(args.threads)
    prepared = data.prepare(data.load(args.dataset, args.data_dir))
    study = studies.InitStudy(depth=args.depth, width=args.width, train_steps=args.train_steps)
    result = studies.write_init_study(prepared, tuple(_names(args.activations)), args.inits, study, args.out)
    output = Output()
    output.result(studies.summary_markdown(result, prepared.num_classes))
    output.result(f"wrote {args.out}/init_summary.md, init_layers.csv, init_training.csv and figures")


def cmd_study_norm(args: argparse.Namespace) -> None:
    from afbench import studies
    from afbench.cli.output import progress_bars
    from afbench.config import RunConfig
    from afbench.sweep import LocalBackend, Runtime

    base = RunConfig(dataset=args.dataset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                     target=args.target, train_subset=args.train_subset)
    if args.seeds == "auto":
        raise AfbenchError("study norm: give a number of seeds or a list (--seeds auto is for afbench run)")
    table = studies.run_norm_study(base, tuple(_names(args.activations)), args.norms, args.seeds, args.device,
                                   args.out,
                                   LocalBackend(Runtime(args.data_dir, args.threads,
                                                        progress_bars(args.no_progress))))
    output = Output()
    output.result(table.to_string(index=False))
    output.result(f"wrote {args.out}/norm_summary.csv and one report per norm in {args.out}/norm-*/")


def _add_study_parsers(commands) -> None:
    study = commands.add_parser("study", help="the lecture's initialisation and normalisation studies",
                                epilog=_examples("afbench study init --depth 6 --width 100"))
    study_what = study.add_subparsers(dest="what", metavar="STUDY", required=True)
    init = study_what.add_parser(
        "init", help="deep MLP: activations and gradients per layer under each activation x initialisation, and "
                     "which combinations learn",
        epilog=_examples("afbench study init --activations tanh,relu --depth 6 --width 100"))
    init.add_argument("--dataset", type=types.flag(rules.TEXT), default="digits",
                      help="real inputs to push through (default: %(default)s)")
    init.add_argument("--data-dir", help="folder with local copies of the data")
    init.add_argument("--activations", type=types.activation_list, default=("tanh", "sigmoid", "relu", "leaky_relu"),
                      help="(default: tanh,sigmoid,relu,leaky_relu)")
    init.add_argument("--inits", type=types.flag(rules.ListRule("comma-separated initialisations",
                                                                rules.choice("default", "xavier", "he",
                                                                             "normal001", "zeros"), unique=True)),
                      default=("zeros", "normal001", "xavier", "he"), help="(default: zeros,normal001,xavier,he)")
    for flag, default, text in (("--depth", 10, "hidden layers"), ("--width", 500, "units per hidden layer"),
                                ("--train-steps", 100, "steps of the short training run per cell")):
        init.add_argument(flag, type=types.flag(INIT_RULES[flag[2:].replace("-", "_")]), default=default,
                          help=f"{text} (default: %(default)s)")
    init.add_argument("--threads", type=types.positive_int, help="torch threads (default: every available core)")
    init.add_argument("--out", type=types.path, default="results/study-init", help="(default: %(default)s)")
    init.set_defaults(func=cmd_study_init)
    norm = study_what.add_parser(
        "norm", help="a CNN with none/batch/layer/group/instance normalisation per activation: accuracy, time to "
                     "target, dead units",
        epilog=_examples("afbench study norm --dataset digits --model mlp --norms none,batch --epochs 2"))
    norm.add_argument("--dataset", type=types.flag(rules.TEXT), default="digits", help="(default: %(default)s)")
    norm.add_argument("--model", type=types.flag(rules.TEXT), default="lenet",
                      help="lenet or vgg11 (default: %(default)s)")
    norm.add_argument("--activations", type=types.activation_list, default=("relu", "tanh", "elu", "relu_softsign"),
                      help="(default: relu,tanh,elu,relu_softsign)")
    norm.add_argument("--norms", type=types.flag(rules.ListRule("comma-separated normalisations",
                                                                rules.choice("none", "batch", "layer", "group",
                                                                             "instance"), unique=True)),
                      default=("none", "batch", "layer", "group", "instance"),
                      help="(default: none,batch,layer,group,instance)")
    norm.add_argument("--epochs", type=types.positive_int, default=3, help="(default: %(default)s)")
    norm.add_argument("--batch-size", type=types.positive_int, default=128, help="(default: %(default)s)")
    norm.add_argument("--target", type=types.accuracy, default=0.98, help="(default: %(default)s)")
    norm.add_argument("--seeds", type=types.seeds, default=(0,), help="N seeds or a comma list (default: 1)")
    norm.add_argument("--train-subset", type=types.positive_int, help="train on only this many images")
    norm.add_argument("--device", type=types.device, default="auto", help="(default: %(default)s)")
    norm.add_argument("--threads", type=types.positive_int, help="torch threads (default: every available core)")
    norm.add_argument("--data-dir", help="folder with local copies of the data")
    norm.add_argument("--out", type=types.path, default="results/study-norm", help="(default: %(default)s)")
    norm.add_argument("--no-progress", action="store_true", help="no progress bars")
    norm.set_defaults(func=cmd_study_norm)


def build_parser() -> argparse.ArgumentParser:
    parser = types.Parser(prog="afbench", description=__doc__,
                          epilog=_examples("afbench run", "afbench list activations",
                                           "afbench run --activations relu,gelu,mish --seeds 5"))
    parser.add_argument("--version", action="version", version=f"afbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser("list", help="list activations, models, data sets or presets",
                                  epilog=_examples("afbench list activations"))
    listing_what = listing.add_subparsers(dest="what", metavar="WHAT", required=True)
    list_acts = listing_what.add_parser("activations", help="every activation and its formula",
                                        epilog=_examples("afbench list activations --wide > activations.md"))
    list_acts.add_argument("--wide", action="store_true", help="every property, as Markdown rows")
    list_acts.set_defaults(func=cmd_list_activations)
    listing_what.add_parser("models", help="the built-in models, and how to give your own",
                            epilog=_examples("afbench list models")).set_defaults(func=cmd_list_models)
    listing_what.add_parser("workloads", help="the task families: data, model, metric and its direction",
                            epilog=_examples("afbench list workloads")).set_defaults(func=cmd_list_workloads)
    list_data = listing_what.add_parser("datasets", help="data sets, and whether they are available locally",
                                        epilog=_examples("afbench list datasets --data-dir ~/data"))
    list_data.add_argument("--data-dir", help="a folder with local copies of the data")
    list_data.set_defaults(func=cmd_list_datasets)

    data_cmd = commands.add_parser("data", help="fetch and verify data sets ahead of time",
                                   epilog=_examples("afbench data fetch mnist"))
    data_what = data_cmd.add_subparsers(dest="what", metavar="ACTION", required=True)
    fetch = data_what.add_parser("fetch", help="download (if missing) and verify a data set",
                                 epilog=_examples("afbench data fetch mnist"))
    fetch.add_argument("name", help="mnist, fashion-mnist, cifar10, cifar100 (digits needs no download)")
    fetch.add_argument("--data-dir", help="where to look for and store it (default: AFBENCH_DATA_DIR, "
                                          "else the user cache)")
    fetch.set_defaults(func=cmd_data_fetch)

    for command in ("run", "sweep"):
        run_parser = commands.add_parser(
            command, help="train each activation over paired seeds into a results database, resume what is done, "
                          "write the report; no arguments: the one-minute demo" if command == "run" else
                          "the same as run",
            description="Train the grid activations x seeds (x learning rates x models x data sets) into "
                        "OUT/results.sqlite, skipping runs already done, then write the report. With no flags "
                        "that say what to train: the quick preset (relu, gelu, tanh and sigmoid, 10 paired seeds, "
                        "an MLP on embedded digits). A preset or study file gives the starting values; every "
                        "flag given overrides it.",
            epilog=EXAMPLES)
        add_run_arguments(run_parser)
        run_parser.set_defaults(func=cmd_run)

    report = commands.add_parser("report", help="write tables, statistics, figures and report.html from OUT",
                                 epilog=_examples("afbench report results/quick"))
    report.add_argument("out", type=types.path, help="a results folder written by `afbench run`")
    report.add_argument("--baseline", help="activation the others are tested against (default: relu if the "
                                           "database holds it, else its first activation)")
    report.add_argument("--wide", action="store_true", help="the full comparison table (Markdown rows)")
    report.set_defaults(func=cmd_report)

    _add_study_parsers(commands)
    from afbench.cli import workflow as workflow_cli
    from afbench.cli.cost import add_parser as add_cost_parser

    add_cost_parser(commands)
    workflow_cli.add_parsers(commands, listing_what)

    plot = commands.add_parser("plot", help="draw figures",
                               epilog=_examples("afbench plot activations relu,gelu,mish --out acts.png"))
    plot_what = plot.add_subparsers(dest="what", metavar="WHAT", required=True)
    plot_act = plot_what.add_parser("activations", help="each activation and its derivative on [-3, 3]",
                                    epilog=_examples('afbench plot activations "relu,tanh,x * sigmoid(1.5 * x)" '
                                                     '--out acts.png'))
    plot_act.add_argument("names", type=types.activation_list,
                          help="activations as `afbench run --activations` takes them: names, formulas in x, "
                               "PATH.py:NAME, or all")
    plot_act.add_argument("--out", type=_figure_path, default="activations.png",
                          help=f"figure file: {', '.join(FIGURE_FORMATS)} (default: %(default)s)")
    plot_act.set_defaults(func=cmd_plot_activations)
    return parser


def _figure_path(text: str):
    from pathlib import Path

    path = Path(text)
    if path.suffix.lower() not in FIGURE_FORMATS:
        raise argparse.ArgumentTypeError(f"expected a figure file ending in {', '.join(FIGURE_FORMATS)}, got '{text}'")
    return path


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status: 0 done, 1 runs failed, 2 bad input or error,
    128 + N stopped by signal N (130 for Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except Interrupted as err:
        return _failed(args, str(err), 128 + err.signal_number)
    except KeyboardInterrupt:
        return _failed(args, "interrupted; what was saved stays saved: rerun the same command to resume",
                       128 + signal.SIGINT)
    except AfbenchError as err:
        return _failed(args, str(err))
    except sqlite3.Error as err:  # a full disk, a damaged file, ...
        return _failed(args, _database_problem(args, err))
    except BrokenPipeError:  # `afbench list activations | head`: the reader has all it wants
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as err:  # a bad path given: a folder for a file, a missing or unwritable place, ...
        return _failed(args, path_problem(err))
    except MemoryError:
        return _failed(args, "out of memory: use a smaller --batch-size, --image-size or --train-subset")


def entry() -> None:
    """The ``afbench`` command (and ``python -m afbench``): ``main``, its status the exit status."""
    warnings.showwarning = show_warning  # the command's, not a library caller's of main()
    status = main()
    if status >= 128:  # stopped by a signal, and said so: a second Ctrl-C must not print a traceback at exit
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)
    # At exit the interpreter collects every object left; after a sweep (torch, pandas and
    # matplotlib loaded) that final collection took 0.7-1.2 s of a user's wait. Frozen objects
    # are skipped by it and die with the process: atexit handlers run and the OS closes files,
    # but no __del__ of an object in a cycle runs (afbench closes its files and databases itself).
    # Only here, at the process's end: a caller of main() keeps its garbage collected.
    gc.freeze()
    sys.exit(status)


# SQLite's words for a file whose pages are damaged (SQLITE_CORRUPT, SQLITE_NOTADB): no
# free space fixes those, so the message must not send the user to the disk.
DAMAGED = ("malformed", "not a database", "file is encrypted")


def _database_problem(args: argparse.Namespace, err: sqlite3.Error) -> str:
    """An SQLite error that reached main as one sentence: a damaged file named, with how to
    recover it; a full disk; else SQLite's words."""
    text = str(err)
    if any(word in text for word in DAMAGED):
        damaged = _damaged_databases(args)
        if not damaged:
            return (f"a results database is damaged ({text}): the disk is not the problem, the file is. Move the "
                    "damaged results.sqlite away and rerun: missing runs are recomputed")
        path = damaged[0]
        return (f"{' and '.join(map(str, damaged))} {'is' if len(damaged) == 1 else 'are'} damaged ({text}): the "
                f"disk is not the problem, the file is. Recover what it holds with `sqlite3 {path} .recover | "
                f"sqlite3 recovered.sqlite` and put recovered.sqlite in its place, or move it away and rerun the "
                "same command: the runs it held are recomputed")
    if "full" in text:
        return (f"results database: {text}. Nothing computed so far is lost: free some space on its disk, then "
                "rerun the same command to resume")
    return f"results database: {text}. Nothing computed so far is lost: rerun the same command to resume"


def _damaged_databases(args: argparse.Namespace) -> list:
    """The results databases the command was given (OUT, merge's inputs) that fail SQLite's
    quick check, opened read-only."""
    from pathlib import Path

    from afbench.store.reading import intact

    given = [getattr(args, "out", None), *(getattr(args, "inputs", None) or [])]
    damaged = []
    for place in (Path(p) for p in given if p):
        path = place / "results.sqlite" if place.is_dir() else place
        if path.suffix != ".sqlite" or not path.is_file() or path in damaged:
            continue
        if not intact(path):
            damaged.append(path)
    return damaged


def _failed(args: argparse.Namespace, message: str, status: int = 2) -> int:
    """One line on stderr; with --json also the summary on stdout, so a script always gets one."""
    error(message)
    if getattr(args, "json", False):
        Output(as_json=True, summary={"error": message}).finish(status)
    return status


if __name__ == "__main__":
    entry()
