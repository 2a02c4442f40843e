"""`afbench run` / `afbench sweep`: flags -> a Grid -> afbench.sweep.execute -> report."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from afbench import activations
from afbench.cli import args as types
from afbench.errors import AfbenchError

console = Console()

_RUN_FLAGS = {  # flag: (RunConfig field, type, help)
    "--dataset": ("dataset", str, "digits, mnist, fashion-mnist, cifar10, cifar100 or imagefolder:PATH"),
    "--model": ("model", str, "mlp, lenet, vgg11, resnet20, vit, or your own: PATH.py:NAME or package.module:NAME "
                              "(a function returning an nn.Module)"),
    "--epochs": ("epochs", types.positive_int, "training epochs (default 10)"),
    "--batch-size": ("batch_size", types.positive_int, "training batch size (default 128)"),
    "--optimizer": ("optimizer", str, "adam or sgd (default adam)"),
    "--momentum": ("momentum", types.unit_interval, "SGD momentum in [0, 1) (default 0.9)"),
    "--weight-decay": ("weight_decay", types.non_negative,
                       "weight decay; never on learned activation parameters (default 0)"),
    "--act-lr": ("act_lr", types.positive, "learning rate of learned activation parameters (PReLU slopes, ...) "
                                           "(default: the run's --lr)"),
    "--target": ("target", types.accuracy, "test accuracy for time-to-target, e.g. 0.98"),
    "--init": ("init", str, "default, xavier, he, normal001 or zeros (default: default)"),
    "--norm": ("norm", str, "none, batch, layer, group or instance (default: the model's own)"),
    "--hidden-bias": ("hidden_bias", float, "initial bias of hidden layers, e.g. 0.01 for ReLU units"),
    "--split": ("split", str, "official, or s2 (all images re-split train/test/valid 7:2:1)"),
    "--valid-fraction": ("valid_fraction", types.unit_interval,
                         "fraction of train held out for validation (default 0; 0.1 when several learning rates "
                         "are given)"),
    "--whitening": ("whitening", str, "pca or zca (default none)"),
    "--train-subset": ("train_subset", types.positive_int, "train on only this many images"),
    "--image-size": ("image_size", types.positive_int, "resize image folders to this square size"),
    "--latency-samples": ("latency_samples", types.positive_int, "test images timed one at a time (default: all)"),
}
_RUN_SWITCHES = {"--nesterov": ("nesterov", "SGD with Nesterov momentum"),
                 "--match-params": ("match_params", "scale hidden widths so that models whose activation widens "
                                                    "the layer before (maxout) match the ReLU model's parameters"),
                 "--augment": ("augment", "random crop (pad 4) and horizontal flip"),
                 "--coarse": ("coarse", "CIFAR-100's 20 superclasses"),
                 "--allow-partial": ("allow_partial", "your own model may keep nonlinearities the swap cannot reach "
                                                      "(F.relu in forward); the report lists them")}
_GRID_FLAGS = ("activations", "lr", "seeds", "models", "datasets")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    from afbench.sweep.grid import PRESETS

    parser.add_argument("--preset", help=f"fill the settings from a study: {', '.join(PRESETS)} "
                                         "(explicit flags override it; `afbench show preset NAME` prints one)")
    parser.add_argument("--study", help="a study file (TOML: [grid], [settings], [execution]); flags given beside it "
                                        "override it, with a note. Every run writes OUT/study.toml, which reproduces it")
    parser.add_argument("--workload", help="the task: classification (default: --dataset x --model), charlm, inr, "
                                           "pinn, regression (NAME-large for a GPU), or your own PATH.py:NAME "
                                           "(`afbench list workloads`); it sets the data, model and budget, "
                                           "which flags override")
    parser.add_argument("--activations", type=types.activation_list,
                        help="comma-separated activations (formulas may contain commas inside parentheses), or "
                             "'all' (every hidden one)")
    for flag, (_, kind, text) in _RUN_FLAGS.items():
        parser.add_argument(flag, type=kind, help=text)
    for flag, (_, text) in _RUN_SWITCHES.items():
        parser.add_argument(flag, action="store_true", default=None, help=text)
    parser.add_argument("--lr", type=types.learning_rates,
                        help="learning rate, or several comma-separated: then each activation gets the one with "
                             "the best validation accuracy (default 1e-3)")
    parser.add_argument("--seeds", type=types.seeds, default=None,
                        help="N seeds (0..N-1), a comma list such as 3,7 (one seed: 42,), or auto: start with 3 paired "
                             "seeds and add seeds only where the comparison with --baseline is undecided "
                             "(default 1)")
    parser.add_argument("--max-seeds", type=types.positive_int, default=20,
                        help="--seeds auto: at most this many seeds per activation (default: %(default)s)")
    parser.add_argument("--equivalence", type=types.positive, default=0.1,
                        help="--seeds auto: differences in test error within ± this many percentage points are "
                             "practically equivalent (default: %(default)s)")
    parser.add_argument("--models", type=types.name_list, help="comma-separated models, to sweep several")
    parser.add_argument("--datasets", type=types.name_list, help="comma-separated data sets, to sweep several")
    parser.add_argument("--device", type=types.device, default="auto",
                        help="auto, cpu or cuda (default: %(default)s)")
    parser.add_argument("--threads", type=types.positive_int,
                        help="torch threads per worker (default: chosen with --workers); workers x threads never "
                             "exceeds the cores")
    parser.add_argument("--workers", default="auto", type=types.auto_or_count,
                        help="worker processes, or auto: a short calibration picks workers x threads for the "
                             "cores (default: %(default)s)")
    parser.add_argument("--stack", default="auto", type=types.auto_or_count,
                        help="train up to N seeds of one configuration as one stacked model (1: never), or auto: "
                             "stack when a short calibration finds it faster per run (default: %(default)s)")
    parser.add_argument("--compile", action="store_true",
                        help="train through torch.compile (with CUDA graphs on a GPU, against kernel-launch "
                             "overhead). Compiling happens in the warm-up, is recorded as provenance compile_s "
                             "and is never counted as training time. On a CPU it needs a C++ compiler and was "
                             "slower than eager on the 2-core machine afbench is developed on")
    parser.add_argument("--cost-profile", default="auto", choices=("auto", "on", "off"),
                        help="measure each activation's step time apart from training before the sweep (interleaved "
                             "rounds under the sweep's threads, about 5%% of the training time) so the tables' times "
                             "are steps x that step time; auto: for sweeps estimated over 2 minutes "
                             "(default: %(default)s)")
    parser.add_argument("--backend", default="local", choices=("local", "ray"),
                        help="local: processes on this machine; ray: one task per run on a Ray cluster "
                             "(pip install 'afbench[ray]') (default: %(default)s)")
    parser.add_argument("--address", help="Ray cluster: auto or ray://host:port (default: start a local Ray)")
    parser.add_argument("--cpus-per-run", type=types.positive, default=1.0,
                        help="Ray: CPUs (and threads) per run (default: %(default)s)")
    parser.add_argument("--gpus-per-run", type=types.non_negative, default=0.0,
                        help="Ray: GPUs per run, fractions share a GPU (default: %(default)s)")
    parser.add_argument("--max-retries", type=int, default=2, help="Ray: re-executions of a run whose worker "
                                                                    "dies (default: %(default)s)")
    parser.add_argument("--data-dir", help="folder with local copies of the data")
    parser.add_argument("--out", help="results folder (default: results/<preset or run>)")
    parser.add_argument("--baseline", help="activation the others are tested against (default: relu if it is in "
                                           "the sweep, else the first activation)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def grid_from_args(args: argparse.Namespace):
    """Preset values, then explicit flags on top; no flags at all means `quick`.
    Returns (grid, name, notes): notes say what was folded (aliases, duplicates)."""
    from afbench.config import RunConfig
    from afbench.sweep.execute import canonical_activations
    from afbench.sweep.grid import Grid, preset

    explicit = {flag: getattr(args, flag.lstrip("-").replace("-", "_")) for flag in list(_RUN_FLAGS) + list(
        _RUN_SWITCHES)}
    given = any(v is not None for v in explicit.values()) or any(getattr(args, a) is not None for a in _GRID_FLAGS)
    given = given or getattr(args, "workload", None) is not None
    if getattr(args, "study_settings", None) is not None:
        name, settings = args.study_name or "study", dict(args.study_settings)
    else:
        name = args.preset or (None if given else "quick")
        settings = preset(name) if name else {}
    settings, name = _workload_settings(getattr(args, "workload", None), settings, name)
    chosen = args.activations or settings.pop("activations", None) or ("relu",)
    settings.pop("activations", None)
    preset_lrs, preset_seeds = settings.pop("lrs", None), settings.pop("seeds", None)
    for flag, value in explicit.items():
        if value is not None:
            settings[(_RUN_FLAGS.get(flag) or _RUN_SWITCHES.get(flag))[0]] = value
    lrs = args.lr or tuple(preset_lrs or (settings.get("lr", 1e-3),))
    settings["lr"] = lrs[0]
    chosen = tuple(activations.names()) if chosen == "all" else \
        tuple(types.split_top_level(chosen)) if isinstance(chosen, str) else tuple(chosen)
    names, notes = canonical_activations(chosen)  # fail on a bad name before anything runs
    if settings.get("workload", "classification") == "classification":  # other workloads build their own
        _check_models(tuple(args.models.split(",")) if isinstance(args.models, str) else
                      args.models or (settings.get("model", "mlp"),))
    seeds = args.seeds if args.seeds is not None else \
        types.seeds(str(preset_seeds)) if preset_seeds is not None else (0,)
    models, datasets = (tuple(v.split(",")) if isinstance(v, str) else tuple(v or ())
                        for v in (args.models, args.datasets))  # a study sets them as text
    grid = Grid(RunConfig(**settings), names, (0,) if seeds == "auto" else seeds, lrs if len(lrs) > 1 else (),
                models, datasets)
    return grid, name or "run", notes, seeds == "auto"


def _workload_settings(given: str | None, settings: dict, name: str | None) -> tuple[dict, str | None]:
    """--workload (or a study's workload): its data, model and budget under the settings."""
    from afbench import workloads

    chosen = given or settings.get("workload")
    if chosen in (None, "classification"):
        return settings, name
    workload = workloads.get(chosen)
    if given:  # a preset's settings are an image classifier's: the workload's own replace them
        settings = {k: v for k, v in settings.items() if k in ("activations", "seeds", "lrs")} if name else settings
        name = name if name and name != "quick" else workload.name.rsplit("/", 1)[-1].split(":")[0].split(".")[0]
    return {**workload.settings(), **{k: v for k, v in settings.items() if k != "workload"},
            "workload": workloads.identity(chosen)}, name


def _check_models(names: tuple[str, ...]) -> None:
    """Unknown model names fail now, not as one failed run per config."""
    from afbench import models
    from afbench.errors import lookup

    own = hasattr(models, "identity")  # this afbench can load a user's model file
    for name in names:
        if ":" in name and own:
            models.identity(name)  # the file or module exists and holds NAME
        else:
            lookup("model", name, models.names(), hint=" Or your own: --model PATH.py:NAME" if own else "")


def choose_baseline(given: str | None, names: tuple[str, ...]) -> tuple[str, str | None]:
    """The baseline: as given (it must be in the sweep), else relu, else the first activation."""
    from afbench.sweep.execute import canonical_activation

    if given is not None:
        baseline = canonical_activation(given)
        if baseline not in names:
            raise AfbenchError(f"--baseline {given} is not among the activations ({', '.join(names)}): add it or "
                               "choose one of them")
        return baseline, None
    if "relu" in names:
        return "relu", None
    return names[0], f"relu is not in the sweep: the baseline is {names[0]} (--baseline to choose)"


def _apply_study(args: argparse.Namespace) -> list[str]:
    """--study FILE: fill what the flags left at their defaults; returns the notes."""
    if not args.study:
        return []
    if args.preset:
        raise AfbenchError("give --study or --preset, not both")
    from afbench.sweep import study as study_files

    return study_files.apply_study(args, study_files.load_study(args.study))


def _save_study(args: argparse.Namespace, grid, name: str, out: Path, auto_seeds: bool) -> None:
    """OUT/study.toml: the resolved sweep, so `afbench run --study OUT/study.toml` repeats it."""
    from afbench.sweep import study as study_files

    execution = {"workers": args.workers, "threads": args.threads, "stack": args.stack, "compile": args.compile,
                 "device": args.device, "backend": args.backend, "out": str(out), "baseline": args.baseline}
    execution = {k: v for k, v in execution.items() if v is not None}
    if auto_seeds:
        execution.update(seeds="auto", max_seeds=args.max_seeds, equivalence=args.equivalence)
    study_files.save_study(out, study_files.grid_to_study(grid, execution, name=name))


def _backend(args: argparse.Namespace):
    if args.backend == "ray":
        from afbench.sweep import ray_backend

        options = ray_backend.RayOptions(args.address, args.cpus_per_run, args.gpus_per_run, args.max_retries,
                                         compile=args.compile)
        return ray_backend.RayBackend(options, args.data_dir, not args.no_progress)
    from afbench.sweep import LocalBackend, Runtime

    return LocalBackend(Runtime(args.data_dir, args.threads, not args.no_progress, args.workers, args.stack,
                                args.compile, args.cost_profile))


def _out_folder(args: argparse.Namespace, name: str) -> Path:
    out = Path(args.out or f"results/{name}")
    if out.exists() and not out.is_dir():
        raise AfbenchError(f"--out {out} is a file, not a folder: name a folder for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".afbench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise AfbenchError(f"cannot write to --out {out}: {err.strerror or err}. Choose a writable folder") from None
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from afbench.engine.runtime import check_compile_toolchain
    from afbench.report import render
    from afbench.sweep import execute, execute_until_decided
    from afbench.sweep.execute import canonical_activation, resolve

    study_notes = _apply_study(args)
    if args.backend == "ray" and args.stack not in ("auto", 1):
        raise AfbenchError("--stack applies to the local backend; the Ray backend trains one run per task")
    grid, name, notes, auto_seeds = grid_from_args(args)
    notes = study_notes + notes
    baseline, note = choose_baseline(args.baseline, grid.activations)
    notes += [note] if note else []
    device = "cuda" if args.backend == "ray" and args.gpus_per_run > 0 and args.device == "auto" else args.device
    configs = resolve(grid.configs(), device)  # the device is checked before anything is queued
    if args.compile and args.backend == "local":  # Ray tasks compile on their own nodes
        check_compile_toolchain(configs[0].device)
    out = _out_folder(args, name)
    for note in notes:
        console.print(f"note: {note}", highlight=False)
    backend = _backend(args)
    if hasattr(backend, "check"):
        backend.check(configs)  # bad data fails before anything is written to --out
    _save_study(args, grid, name, out, auto_seeds)
    if auto_seeds:
        console.print(f"--seeds auto: {len(grid.activations)} activations, 3 paired seeds first, at most "
                      f"{args.max_seeds}, against {baseline} -> {out}/results.sqlite")
        outcome = execute_until_decided(grid, out, backend, baseline=baseline, max_seeds=args.max_seeds,
                                        equivalence=args.equivalence / 100, device=device)
        for activation, why in outcome.stopped.items():
            console.print(f"  {activation}: {why}", highlight=False)
    else:
        console.print(f"{len(configs)} runs -> {out}/results.sqlite")
        outcome = execute(configs, out, backend, resolved=True)
    counts = outcome.counts
    if getattr(backend, "schedule_used", None):
        console.print(f"scheduler: {backend.schedule_used}", highlight=False)
    from afbench.store.database import Store

    profile = Store(out).meta().get("cost_profile")
    if profile:
        console.print(f"cost profile: {profile['seconds']} s, {100 * profile['share']:.1f}% of the estimated "
                      f"{profile['estimated_training_s']} s of training", highlight=False)
    console.print(f"ran {counts['ran']}, skipped {counts['skipped']} already finished, failed {counts['failed']}")
    report = render.write(out, baseline)
    print_comparison(report)
    console.print(f"report: {out}/summary.md, {out}/report.html, {out}/summary.csv, {out}/epochs.csv, {out}/figures/")
    if counts["failed"]:
        console.print(f"[red]{counts['failed']} runs failed[/red]: their errors are in {out}/runs.csv (column "
                      "error); rerun the same command to retry them", highlight=False)
        return 1
    return 0


def print_comparison(report) -> None:
    rows = report.comparison(bold=("[bold]", "[/bold]"))
    if not rows:
        console.print("no finished runs")
        return
    constant = [c for c in ("dataset", "model") if len({r[c] for r in rows}) == 1]
    setting = " ".join(f"{c} {rows[0][c]}" for c in constant)
    table = Table(title=f"{setting}: mean ± sd over seeds. ▲ / ▼ error significantly worse / better than "
                        f"{report.baseline}; bold: top group (paired permutation test, Holm, p < 0.05)")
    columns = [c for c in rows[0] if c not in constant]
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    console.print(table)
    from afbench.report.render import verdict_text

    for line in verdict_text(report):
        console.print(f"  {line}", highlight=False, markup=False)
