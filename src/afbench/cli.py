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


# ---- run / sweep ---------------------------------------------------------------------

_RUN_FLAGS = {  # flag: (RunConfig field, type, help)
    "--dataset": ("dataset", str, "digits, mnist, fashion-mnist, cifar10, cifar100 or imagefolder:PATH"),
    "--model": ("model", str, "mlp, lenet or vgg11"),
    "--epochs": ("epochs", int, "training epochs (default 10)"),
    "--batch-size": ("batch_size", int, "training batch size (default 128)"),
    "--optimizer": ("optimizer", str, "adam or sgd (default adam)"),
    "--momentum": ("momentum", float, "SGD momentum (default 0.9)"),
    "--weight-decay": ("weight_decay", float, "weight decay; never on learned activation parameters (default 0)"),
    "--target": ("target", float, "test accuracy for time-to-target, e.g. 0.98"),
    "--init": ("init", str, "default, xavier, he, normal001 or zeros (default: default)"),
    "--norm": ("norm", str, "none, batch, layer, group or instance (default: the model's own)"),
    "--hidden-bias": ("hidden_bias", float, "initial bias of hidden layers, e.g. 0.01 for ReLU units"),
    "--split": ("split", str, "official, or s2 (all images re-split train/test/valid 7:2:1)"),
    "--valid-fraction": ("valid_fraction", float, "fraction of train held out for validation (default 0; "
                                                  "0.1 when several learning rates are given)"),
    "--whitening": ("whitening", str, "pca or zca (default none)"),
    "--train-subset": ("train_subset", int, "train on only this many images"),
    "--image-size": ("image_size", int, "resize image folders to this square size"),
    "--latency-samples": ("latency_samples", int, "test images timed one at a time (default: all)"),
}
_RUN_SWITCHES = {"--nesterov": ("nesterov", "SGD with Nesterov momentum"),
                 "--match-params": ("match_params", "shrink maxout models to the ReLU model's parameter count"),
                 "--augment": ("augment", "random crop (pad 4) and horizontal flip"),
                 "--coarse": ("coarse", "CIFAR-100's 20 superclasses")}


def _auto_or_count(text: str) -> int | str:
    """argparse type: 'auto' or a positive whole number."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number >= 1, got '{text}'")
    return value


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    from afbench.sweep.grid import PRESETS

    parser.add_argument("--preset", help=f"fill the settings from a study: {', '.join(PRESETS)} "
                                         "(explicit flags override it)")
    parser.add_argument("--activations", help="comma-separated activations, or 'all' (every hidden one)")
    for flag, (_, kind, text) in _RUN_FLAGS.items():
        parser.add_argument(flag, type=kind, help=text)
    for flag, (_, text) in _RUN_SWITCHES.items():
        parser.add_argument(flag, action="store_true", default=None, help=text)
    parser.add_argument("--lr", help="learning rate, or several comma-separated: then each activation gets the "
                                     "one with the best validation accuracy (default 1e-3)")
    parser.add_argument("--seeds", default=None, help="N seeds (0..N-1), or a comma list such as 3,7 or 42, "
                                                      "(default 1)")
    parser.add_argument("--models", help="comma-separated models, to sweep several")
    parser.add_argument("--datasets", help="comma-separated data sets, to sweep several")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch threads per worker (default: chosen with --workers)")
    parser.add_argument("--workers", default="auto", type=_auto_or_count,
                        help="worker processes, or auto: a short calibration picks workers x threads for the "
                             "cores (default: %(default)s)")
    parser.add_argument("--stack", default="auto", type=_auto_or_count,
                        help="train up to N seeds of one configuration as one stacked model (1: never), or auto: "
                             "stack when a short calibration finds it faster per run (default: %(default)s)")
    parser.add_argument("--compile", action="store_true",
                        help="train through torch.compile (with CUDA graphs on a GPU, against kernel-launch "
                             "overhead). Compiling happens in the warm-up, is recorded as provenance compile_s "
                             "and is never counted as training time. On a CPU it needs a C++ compiler and was "
                             "slower than eager on the 2-core machine afbench is developed on")
    parser.add_argument("--backend", default="local", choices=("local", "ray"),
                        help="local: processes on this machine; ray: one task per run on a Ray cluster "
                             "(pip install 'afbench[ray]') (default: %(default)s)")
    parser.add_argument("--address", help="Ray cluster: auto or ray://host:port (default: start a local Ray)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray: CPUs (and threads) per run "
                                                                         "(default: %(default)s)")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray: GPUs per run, fractions share a GPU "
                                                                         "(default: %(default)s)")
    parser.add_argument("--max-retries", type=int, default=2, help="Ray: re-executions of a run whose worker "
                                                                    "dies (default: %(default)s)")
    parser.add_argument("--data-dir", help="folder with local copies of the data")
    parser.add_argument("--out", help="results folder (default: results/<preset or run>)")
    parser.add_argument("--baseline", default="relu", help="activation the others are tested against "
                                                           "(default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _parse_seeds(text: str | None) -> tuple[int, ...]:
    if text is None:
        return (0,)
    if "," in text:
        return tuple(int(s) for s in text.split(",") if s.strip())
    return tuple(range(int(text)))


def grid_from_args(args: argparse.Namespace):
    """Preset values, then explicit flags on top; no flags at all means `quick`."""
    from afbench.config import RunConfig
    from afbench.sweep.grid import Grid, preset

    explicit = {flag: getattr(args, flag.lstrip("-").replace("-", "_")) for flag in list(_RUN_FLAGS) + list(
        _RUN_SWITCHES)}
    given = any(v is not None for v in explicit.values()) or any(
        getattr(args, a) is not None for a in ("activations", "lr", "seeds", "models", "datasets"))
    name = args.preset or (None if given else "quick")
    settings = preset(name) if name else {}
    chosen_activations = args.activations or settings.pop("activations", None) or "relu"
    settings.pop("activations", None)
    preset_lrs, preset_seeds = settings.pop("lrs", None), settings.pop("seeds", None)
    for flag, value in explicit.items():
        if value is not None:
            field = (_RUN_FLAGS.get(flag) or _RUN_SWITCHES.get(flag))[0]
            settings[field] = value
    lrs = tuple(float(v) for v in args.lr.split(",")) if args.lr else (preset_lrs or (settings.get("lr", 1e-3),))
    settings["lr"] = lrs[0]
    if chosen_activations == "all":
        chosen = tuple(activations.names())
    elif isinstance(chosen_activations, str):
        chosen = tuple(a.strip() for a in chosen_activations.split(",") if a.strip())
    else:
        chosen = tuple(chosen_activations)
    for activation in chosen:  # fail on a bad name before anything runs
        activations.factory(activation)
    seeds = _parse_seeds(args.seeds if args.seeds is not None else
                         (str(preset_seeds) if preset_seeds is not None else None))
    grid = Grid(RunConfig(**settings), chosen, seeds, lrs if len(lrs) > 1 else (),
                tuple(args.models.split(",")) if args.models else (),
                tuple(args.datasets.split(",")) if args.datasets else ())
    return grid, name or "run"


def print_comparison(report) -> None:
    from afbench.report import tables

    rows = tables.comparison_rows(report.aggregate, report.tests, bold=("[bold green]", "[/bold green]"))
    if not rows:
        console.print("no finished runs")
        return
    constant = [c for c in ("dataset", "model") if len({r[c] for r in rows}) == 1]
    setting = " ".join(f"{c} {rows[0][c]}" for c in constant)
    table = Table(title=f"{setting}: mean ± sd over seeds; best in green; error * p<0.05, ** p<0.01 vs "
                        f"{report.baseline} (Holm-corrected paired t-test)")
    columns = [c for c in rows[0] if c not in constant]
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    console.print(table)


def cmd_run(args: argparse.Namespace) -> None:
    from afbench.engine.runtime import check_compile_toolchain
    from afbench.report import render
    from afbench.sweep import runner
    from afbench.sweep.store import Store

    if args.backend == "ray" and args.stack not in ("auto", 1):
        raise AfbenchError("--stack applies to the local backend; the Ray backend trains one run per task")
    grid, name = grid_from_args(args)
    if args.backend == "ray" and args.gpus_per_run > 0 and args.device == "auto":
        # The runs execute on the cluster's GPUs, whatever this driver machine has.
        configs = [c.with_(device="cuda") for c in grid.configs()]
    else:
        configs = runner.resolve(grid.configs(), args.device)
    if args.compile and args.backend == "local":  # Ray tasks compile on their own nodes
        check_compile_toolchain(configs[0].device)
    out = args.out or f"results/{name}"
    store = Store(out)
    console.print(f"{len(configs)} runs -> {store.path}")
    try:
        if args.backend == "ray":
            from afbench.sweep import ray_backend

            options = ray_backend.RayOptions(args.address, args.cpus_per_run, args.gpus_per_run, args.max_retries,
                                             compile=args.compile)
            counts = ray_backend.run(configs, store, options, args.data_dir, not args.no_progress)
        else:
            runtime = runner.Runtime(args.data_dir, args.threads, not args.no_progress, args.workers, args.stack,
                                     args.compile)
            counts = runner.run(configs, store, runtime)
            console.print(f"scheduler: {store.meta().get('scheduler')}")
    finally:
        store.close()
    console.print(f"ran {counts['ran']}, skipped {counts['skipped']} already finished, failed {counts['failed']}")
    report = render.write(out, args.baseline)
    print_comparison(report)
    console.print(f"report: {out}/summary.md, {out}/report.html, {out}/summary.csv, {out}/epochs.csv, {out}/figures/")


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
    from afbench.sweep import runner

    base = RunConfig(dataset=args.dataset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                     target=args.target, train_subset=args.train_subset)
    table = studies.run_norm_study(base, tuple(args.activations.split(",")), tuple(args.norms.split(",")),
                                   _parse_seeds(args.seeds), args.device, args.out,
                                   runner.Runtime(args.data_dir, args.threads, not args.no_progress))
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
        _add_run_arguments(run_parser)
        run_parser.set_defaults(func=cmd_run)

    report = commands.add_parser("report", help="write tables, statistics, figures and report.html from OUT")
    report.add_argument("out", help="a results folder written by `afbench run`")
    report.add_argument("--baseline", default="relu", help="activation the others are tested against "
                                                           "(default: %(default)s)")
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
    norm.add_argument("--seeds", default="1", help="N seeds or a comma list (default: %(default)s)")
    norm.add_argument("--train-subset", type=int, help="train on only this many images")
    norm.add_argument("--device", default="auto", help="(default: %(default)s)")
    norm.add_argument("--threads", type=int, help="torch threads (default: every available core)")
    norm.add_argument("--data-dir", help="folder with local copies of the data")
    norm.add_argument("--out", default="results/study-norm", help="(default: %(default)s)")
    norm.add_argument("--no-progress", action="store_true", help="no progress bars")
    norm.set_defaults(func=cmd_study_norm)

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
