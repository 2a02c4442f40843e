"""`afbench run` / `afbench sweep`: flags -> a Study -> afbench.sweep.execute -> report.

The flags build the same `Study` a study file declares (afbench.sweep.study), value by
value through the same rules (afbench.rules): a preset or a study file first, then
every flag given on top of it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

from afbench import rules
from afbench.cli import args as types
from afbench.cli.output import Output, RunLines, progress_bars
from afbench.config import setting_rule
from afbench.errors import AfbenchError, path_problem

_SETTING_FLAGS = {  # flag: (RunConfig field, help)
    "--epochs": ("epochs", "training epochs (default 10)"),
    "--batch-size": ("batch_size", "training batch size (default 128)"),
    "--optimizer": ("optimizer", "adam or sgd (default adam)"),
    "--momentum": ("momentum", "SGD momentum in [0, 1) (default 0.9)"),
    "--weight-decay": ("weight_decay", "weight decay; never on learned activation parameters (default 0)"),
    "--act-lr": ("act_lr", "learning rate of learned activation parameters (PReLU slopes, ...) "
                           "(default: the run's --lr)"),
    "--target": ("target", "time to target: test accuracy such as 0.98, or for another --workload a value of "
                           "its primary metric, e.g. 2.2 bpc (default: the workload's own; classification: none)"),
    "--init": ("init", "default, xavier, he, normal001 or zeros (default: default)"),
    "--norm": ("norm", "none, batch, layer, group or instance (default: the model's own)"),
    "--hidden-bias": ("hidden_bias", "initial bias of hidden layers, e.g. 0.01 for ReLU units"),
    "--split": ("split", "official, or s2 (all images re-split train/test/valid 7:2:1)"),
    "--valid-fraction": ("valid_fraction", "fraction of train held out for validation (default 0; 0.1 when "
                                           "several learning rates are given)"),
    "--whitening": ("whitening", "pca or zca (default: none)"),
    "--train-subset": ("train_subset", "train on only this many images"),
    "--image-size": ("image_size", f"resize image folders to this square size (at most {rules.MAX_IMAGE_SIZE})"),
    "--latency-samples": ("latency_samples", "test images timed one at a time (default: all)"),
}
_SETTING_SWITCHES = {
    "--nesterov": ("nesterov", "SGD with Nesterov momentum"),
    "--match-params": ("match_params", "scale hidden widths so that models whose activation widens the layer "
                                       "before (maxout) match the ReLU model's parameters"),
    "--augment": ("augment", "random crop (pad 4) and horizontal flip"),
    "--coarse": ("coarse", "CIFAR-100's 20 superclasses"),
    "--allow-partial": ("allow_partial", "your own model may keep nonlinearities the swap cannot reach "
                                         "(F.relu in forward); the report lists them")}
_EXECUTION_FLAGS = {  # flag: help (the Execution field is the flag's name; its rule is rules.EXECUTION_RULES')
    "--workers": "worker processes, or auto: a short calibration picks workers x threads for the cores "
                 "(default: auto)",
    "--threads": "torch threads per worker (default: chosen with --workers); workers x threads never exceeds "
                 "the cores",
    "--stack": "train up to N runs that differ only in seed or activation as one stacked model, each member with "
               "its own activation and random draws (1: never), or auto: stack when a "
               "short calibration finds it faster per run (default: auto)",
    "--device": "auto, cpu, cuda, cuda:N or mps (default: auto: cuda if torch sees a GPU, else cpu)",
    "--backend": "local: processes on this machine; ray: one task per run on a Ray cluster "
                 "(pip install 'afbench[ray]') (default: local)",
    "--cost-profile": "auto, on or off: measure each activation's step time and batch-1 latency apart from "
                      "training before the sweep (about 5%% of the training time, at least 1 s per activation), "
                      "so the tables' times are steps x that step time; auto: for sweeps estimated over 2 minutes "
                      "or trained in several workers; off with several workers: no batch-1 latency at all, "
                      "since no run can time it alone (default: auto)",
    "--run-timeout": "seconds one run (or stack of seeds) may train before it is stopped and marked failed, "
                     "the sweep going on (default: 20x its calibrated time, at least 60, when all runs train one model on one "
                     "data set for as many steps; otherwise, and with --backend ray: no limit)",
    "--out": "results folder (default: results/<preset, study name or run>)",
    "--baseline": "activation the others are tested against (default: relu if it is in the sweep, else the "
                  "first activation)",
    "--max-seeds": "--seeds auto: at most this many seeds per activation, 3 to 10,000 (default: 20)",
    "--equivalence": "--seeds auto: differences in test error within ± this many percentage points are "
                     "practically equivalent (default: 0.1)",
    "--data-dir": "folder with local copies of the data (default: AFBENCH_DATA_DIR, else the user cache)",
    "--address": "Ray cluster: auto or ray://host:port (default: start a local Ray)",
    "--cpus-per-run": "Ray: CPUs (and threads) per run (default: 1)",
    "--gpus-per-run": "Ray: GPUs per run, fractions share a GPU (default: 0)",
    "--max-retries": "Ray: re-executions of a run whose worker dies (default: 2)",
}
_GRID_DESTS = ("activations", "models", "model", "datasets", "dataset", "seeds", "seed", "lr")
LONG_RUN_S = 3600.0  # an estimate over this is said before the sweep starts

EXAMPLES = """examples:
  afbench run                           the one-minute demo (embedded digits)
  afbench run --activations relu,gelu,"x * sigmoid(1.5 * x)" --seeds 5
  afbench run --preset s1-mnist --seeds 3  a preset (afbench list presets)
  afbench run --study my.toml           (afbench show preset quick > my.toml)
  afbench run --activations myacts.py:Squareplus --model my_net.py:make"""


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", help="start from a study shipped with afbench: quick, s1-mnist, ... "
                                         "(`afbench list presets`); flags given beside it override it")
    parser.add_argument("--study", help="start from a study file (TOML: [grid], [settings], [execution]); flags "
                                        "given beside it override it, with a note. Every run writes "
                                        "OUT/study.toml, which repeats it")
    parser.add_argument("--workload", type=types.flag(rules.TEXT),
                        help="the task: classification (the default: --dataset x --model), charlm, inr, pinn, "
                             "regression (NAME-large: sized for a GPU), or your own PATH.py:NAME (`afbench list "
                             "workloads`). It sets the data, model, learning rate and budget; flags given beside "
                             "it override them")
    parser.add_argument("--activations", type=types.activation_list,
                        help="comma-separated activations: names (`afbench list activations`), formulas in x "
                             "(commas inside parentheses are fine), PATH.py:NAME or module:NAME, or 'all' "
                             "(every hidden one)")
    parser.add_argument("--model", type=types.flag(rules.TEXT),
                        help="mlp, lenet, vgg11, resnet20, vit, or your own: PATH.py:NAME or package.module:NAME "
                             "(a function returning an nn.Module) (default: mlp)")
    parser.add_argument("--models", type=types.name_list, help="comma-separated models, to sweep several")
    parser.add_argument("--dataset", type=types.flag(rules.TEXT),
                        help="digits, mnist, fashion-mnist, cifar10, cifar100 or imagefolder:PATH (default: digits)")
    parser.add_argument("--datasets", type=types.name_list, help="comma-separated data sets, to sweep several")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=types.seeds,
                       help="N seeds (0..N-1, N at most 10,000), a comma list such as 3,7, or auto: start with 3 "
                            "paired seeds and add "
                            "seeds only where the comparison with --baseline is undecided (default 1)")
    seeds.add_argument("--seed", type=types.seed, help="one seed, e.g. --seed 42")
    parser.add_argument("--lr", type=types.learning_rates,
                        help="learning rate, or several comma-separated: then each activation gets the one with "
                             "the best validation accuracy (default 1e-3)")
    for flag, (name, text) in _SETTING_FLAGS.items():
        parser.add_argument(flag, type=types.flag(setting_rule(name)), help=text)
    for flag, (_, text) in _SETTING_SWITCHES.items():
        parser.add_argument(flag, action="store_true", default=None, help=text)
    for flag, text in _EXECUTION_FLAGS.items():
        parser.add_argument(flag, type=types.flag(rules.EXECUTION_RULES[_dest(flag)]), help=text)
    parser.add_argument("--compile", action="store_true", default=None,
                        help="train through torch.compile (with CUDA graphs on a GPU). Compiling happens in the "
                             "warm-up and is never counted as training time; on a CPU it needs a C++ compiler")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (off a terminal there are "
                                                                   "none: a line per finished run instead)")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--wide", action="store_true", help="the full comparison table (every column, Markdown "
                                                           "rows) instead of the 80-column one")
    shown.add_argument("--quiet", action="store_true", help="print only the verdict and the paths")
    shown.add_argument("--json", action="store_true", help="print a JSON summary on stdout (verdicts, paths, "
                                                           "counts, exit status) and nothing else there")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


# ---- flags -> Study ------------------------------------------------------------------------------


def _base_study(args: argparse.Namespace, given: bool):
    """The study the flags start from: --study FILE, --preset NAME, the quick preset
    when no flag says what to train, else the defaults. Returns (study, source)."""
    from afbench.sweep import study as studies

    if args.study and args.preset:
        raise AfbenchError("give --study or --preset, not both")
    if args.study:
        return studies.load_study(args.study), "the study"
    if args.preset:
        return studies.preset_study(args.preset), "the preset"
    if not given:
        return studies.preset_study("quick"), "the preset"
    return studies.Study(name="run"), None


def study_from_args(args: argparse.Namespace):
    """The Study the flags describe, and notes on what they override. Every value has
    passed its rule already (argparse types); the Study checks the whole once more."""
    from afbench.sweep.study import Execution

    settings = {name: getattr(args, _dest(flag)) for flag, (name, _) in {**_SETTING_FLAGS, **_SETTING_SWITCHES}.items()
                if getattr(args, _dest(flag)) is not None}
    for one, several in (("model", "models"), ("dataset", "datasets")):
        if getattr(args, one) and getattr(args, several):
            raise AfbenchError(f"give --{one} or --{several}, not both: --{one} {getattr(args, one)} trains one, "
                               f"--{several} {','.join(getattr(args, several))} sweeps each of them (add "
                               f"{getattr(args, one)} to --{several} to sweep it too)")
    grid = {}
    if args.activations is not None:
        grid["activations"] = args.activations
    if args.models or args.model:
        grid["models"] = args.models or (args.model,)
    if args.datasets or args.dataset:
        grid["datasets"] = args.datasets or (args.dataset,)
    if args.seeds is not None or args.seed is not None:
        grid["seeds"] = args.seeds if args.seeds is not None else (args.seed,)
    if args.lr is not None:
        grid["lrs"] = args.lr
    base, source = _base_study(args, given=bool(settings or grid or args.workload))
    if args.workload is not None:
        base = _with_workload(base, args.workload, named=source is not None)
    execution = {f.name: getattr(args, f.name) for f in fields(Execution) if getattr(args, f.name, None) is not None}
    notes = []
    if source == "the study":
        notes = _override_notes(base, grid, settings, execution)
    study = base.with_(**grid, settings=base.settings.with_(**settings),
                       execution=replace(base.execution, **execution))
    return study, notes


def _with_workload(base, name: str, named: bool):
    """--workload NAME on ``base``; a study without a name of its own is named after it."""
    from afbench.sweep.study import with_workload

    study = with_workload(base, name)
    if not named:
        short = Path(name.split(":")[0]).stem if ":" in name else name
        study = study.with_(name=short)
    return study


def grid_flags(args: argparse.Namespace) -> set[str]:
    """The grid flags given on the command line (the rest came from a preset or study)."""
    return {dest for dest in _GRID_DESTS if getattr(args, dest, None) is not None}


def _override_notes(base, grid: dict, settings: dict, execution: dict) -> list[str]:
    notes = []
    for group, values, owner in (("grid", grid, base), ("settings", settings, base.settings),
                                 ("execution", execution, base.execution)):
        for key, value in values.items():
            old = getattr(owner, key)
            if old != value:
                notes.append(f"--{key.replace('_', '-')} {_text(value)} overrides the study's {key} = {_text(old)}")
    return notes


def _text(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


# ---- names resolved once, at the edge -------------------------------------------------------------


def activation_names(study) -> tuple[tuple[str, ...], list[str]]:
    """The study's activations as the registry names them ("all" expanded, aliases
    and repeats folded, PATH.py:NAME made importable), and notes on what was folded."""
    from afbench import activations
    from afbench.sweep.execute import canonical_activations

    given = tuple(activations.names()) if study.activations == "all" else study.activations
    given = tuple(import_path(name) for name in given)
    repeats = len(given) - len(set(given))
    names, notes = canonical_activations(tuple(dict.fromkeys(given)))
    if repeats:
        notes.insert(0, f"{repeats} repeated activation{'s' if repeats > 1 else ''} dropped: each is trained once")
    return names, _fold(notes)


def _fold(notes: list[str]) -> list[str]:
    """At most a few notes of one kind: a list of 2,000 names is not 2,000 lines."""
    if len(notes) <= 5:
        return notes
    return notes[:3] + [f"... and {len(notes) - 3} more notes like these"]


def import_path(name: str) -> str:
    """``dir/myacts.py:Squareplus`` -> ``myacts:Squareplus``, with dir put on the import
    path of this process and of the workers it starts (as --model PATH.py:NAME works)."""
    match = re.fullmatch(r"(.+\.py):(\w+)", name.strip())
    if not match:
        return name
    path = Path(match.group(1)).expanduser()
    if not path.is_file():
        raise AfbenchError(f"activation '{name}': no file {path}. Give PATH.py:NAME with an existing file "
                           "(relative to the current folder)")
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if folder not in paths:  # spawned workers import it too
        os.environ["PYTHONPATH"] = os.pathsep.join([folder] + [p for p in paths if p])
    return f"{path.stem}:{match.group(2)}"


def check_models(names: tuple[str, ...], workload: str = "classification") -> None:
    """Unknown model names fail now, not as one failed run per config. A workload other
    than classification builds its own models: the name must be one of them."""
    from afbench import models, workloads
    from afbench.errors import lookup

    if workload != workloads.CLASSIFICATION:
        own = workloads.get(workload)
        for name in names:
            lookup("model", name, own.model_names, hint=f" ({own.name} builds these)")
        return
    for name in names:
        if ":" in name:
            models.identity(name)  # the file or module exists and holds NAME
        else:
            lookup("model", name, models.names(), hint=" Or your own: --model PATH.py:NAME")


def choose_baseline(given: str | None, names: tuple[str, ...]) -> tuple[str, str | None]:
    """The baseline: as given (it must be in the sweep), else relu, else the first activation."""
    from afbench.sweep.execute import canonical_activation

    if given is not None:
        baseline = canonical_activation(import_path(given))
        if baseline not in names:
            raise AfbenchError(f"--baseline {given} is not among the activations ({', '.join(names)}): add it or "
                               "choose one of them")
        return baseline, None
    if "relu" in names:
        return "relu", None
    return names[0], f"relu is not in the sweep: the baseline is {names[0]} (--baseline to choose)"


# ---- running ------------------------------------------------------------------------------------


def _backend(study, progress: bool):
    """The study's backend, from the registry (a plugin's included)."""
    from afbench.sweep import Runtime
    from afbench.sweep.backends import create

    ex = study.execution
    if ex.backend == "ray":
        from afbench.sweep.backends.ray import RayOptions

        options = RayOptions(ex.address, ex.cpus_per_run, ex.gpus_per_run, ex.max_retries, compile=ex.compile)
        runtime = Runtime(ex.data_dir, max(1, int(ex.cpus_per_run)), progress, compile=ex.compile,
                          run_timeout=ex.run_timeout, baseline=ex.baseline)
        return create("ray", runtime, options=options)
    return create(ex.backend, Runtime(ex.data_dir, ex.threads, progress, ex.workers, ex.stack, ex.compile,
                                      ex.cost_profile, run_timeout=ex.run_timeout, baseline=ex.baseline))


def _out_folder(study) -> Path:
    """--out, made and checked writable: called once the run is accepted (a refused run
    leaves no empty folder behind)."""
    out = study.out_folder()
    if out.exists() and not out.is_dir():
        raise AfbenchError(f"--out {out} is a file, not a folder: name a folder for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".afbench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise AfbenchError(f"cannot write to --out {out}: {path_problem(err)}") from None
    return out


def schedule_sentence(schedule: dict) -> str:
    """The scheduler's choice in words: '2 workers x 1 thread, 8 seeds stacked per
    model: calibrated, 3.1x faster than one at a time'."""
    workers, threads = schedule.get("workers", 1), schedule.get("threads", 1)
    text = f"{workers} worker{'s' if workers != 1 else ''} x {threads} thread{'s' if threads != 1 else ''}"
    how = schedule.get("how")
    if how:
        text += f" ({how})"
    stack = schedule.get("stack", 1)
    if stack and stack > 1:
        by = str(schedule.get("stack_by", "seed"))
        what = "runs (seeds and activations)" if by == "seed and activation" else "seeds"
        text += f", up to {stack} {what} stacked per model"
        gain = schedule.get("stack_gain")
        text += f": {schedule.get('stack_how', 'given')}" + (f", {gain:.1f}x faster than one at a time"
                                                             if gain else "")
        if by.startswith("seed ("):  # why activations do not share stacks
            text += f"; {by[len('seed ('):-1]}"
        apart = schedule.get("stack_apart") or {}
        if apart:
            text += f"; {', '.join(apart)} stack only their own seeds (other layer widths)"
    elif schedule.get("stack_how"):
        reason, gain = str(schedule["stack_how"]), schedule.get("stack_gain")
        measured = f": stacking measured {gain:.2f}x" if gain else ""
        text += "; no runs stacked" + ("" if reason == "given" else f" ({reason}{measured})")
    return text


def rough_seconds(configs, step_s: float = 0.002) -> float | None:
    """A floor on the training time from the settings alone (no data loaded): steps x a
    small model's step time on one core. Only the data sets whose size is known count."""
    sizes = {"digits": 1437, "mnist": 60000, "fashion-mnist": 60000, "cifar10": 50000, "cifar100": 50000}
    total = 0.0
    for config in configs:
        train = sizes.get(config.dataset)
        if train is None:
            continue
        train = min(train, config.train_subset or train)
        total += config.epochs * -(-train // config.batch_size) * step_s
    return total


def _say_duration(configs, output: Output) -> None:
    estimate = rough_seconds(configs)
    if estimate and estimate > LONG_RUN_S:
        output.note(f"note: this sweep trains {len(configs):,} runs for at least {estimate / 3600:.1f} hours "
                    f"(a lower bound from epochs x steps). Ctrl-C stops it keeping every finished run; the same "
                    "command resumes")


@dataclass(frozen=True)
class Plan:
    """A sweep resolved and checked, before anything is written: what cmd_run executes."""
    study: object  # afbench.sweep.study.Study
    grid: object  # afbench.sweep.grid.Grid, activations resolved
    configs: list  # RunConfig, device and names resolved
    baseline: str
    device: str
    notes: list[str]


def plan(args: argparse.Namespace) -> Plan:
    """Flags -> Study -> resolved runs; every check that needs no data runs here."""
    from afbench.engine.runtime import check_compile_toolchain
    from afbench.sweep.execute import check_beside_design, check_until_decided, resolve

    study, notes = study_from_args(args)
    ex = study.execution
    _check_flags_apply(args, study)
    if ex.backend == "ray" and ex.stack not in ("auto", 1):
        raise AfbenchError("--stack applies to the local backend; the Ray backend trains one run per task")
    try:
        names, folded = activation_names(study)
        check_models(study.models, study.settings.workload)
    except AfbenchError as err:  # a name from a study file: say which file
        where = f"{args.study}: [grid] " if args.study and not grid_flags(args) else ""
        raise AfbenchError(f"{where}{err}") from None
    grid = study.grid(names)
    baseline, note = choose_baseline(ex.baseline, grid.activations)
    device = "cuda" if ex.backend == "ray" and ex.gpus_per_run > 0 and ex.device == "auto" else ex.device
    if study.seeds == "auto":  # refused now, before --out's study.toml and database are touched
        check_until_decided(grid, baseline, ex.max_seeds, study.out_folder(), device,
                            _decided_on(grid.base, ex.equivalence)["equivalence"])
    else:
        check_beside_design(grid, study.out_folder(), device)
    configs = resolve(grid.configs(), device)  # the device is checked before anything is queued
    if ex.compile and ex.backend == "local":  # Ray tasks compile on their own nodes
        check_compile_toolchain(configs[0].device)
    held_out = [f"{len(grid.lrs)} learning rates: 10% of the training split is held out for validation to choose "
                "each activation's rate on (valid_fraction 0.1), never the test split"] \
        if grid.holds_out_validation() else []
    return Plan(study, grid, configs, baseline, device, notes + folded + held_out + ([note] if note else []))


RAY_FLAGS = ("--address", "--cpus-per-run", "--gpus-per-run", "--max-retries")
AUTO_SEED_FLAGS = ("--max-seeds", "--equivalence")


def _check_flags_apply(args: argparse.Namespace, study) -> None:
    """Flags given that this sweep would ignore are refused, naming why: Ray's options
    without the Ray backend, --seeds auto's without --seeds auto. Only flags typed here:
    a study file's [execution] may keep values for another use of it."""
    def given(flags: tuple[str, ...]) -> list[str]:
        return [flag for flag in flags if getattr(args, _dest(flag), None) is not None]

    def listed(flags: list[str]) -> str:
        return f"{', '.join(flags)} {'is' if len(flags) == 1 else 'are'}"

    ray = given(RAY_FLAGS)
    if ray and study.execution.backend != "ray":
        raise AfbenchError(f"{listed(ray)} for --backend ray, and this sweep uses the local backend, which would "
                           f"ignore {'it' if len(ray) == 1 else 'them'}: add --backend ray, or drop {', '.join(ray)}")
    auto = given(AUTO_SEED_FLAGS)
    if auto and study.seeds != "auto":
        count = len(study.seeds)
        raise AfbenchError(f"{listed(auto)} for --seeds auto, and this sweep trains a fixed {count:,} "
                           f"seed{'s' if count != 1 else ''} per activation, which would ignore "
                           f"{'it' if len(auto) == 1 else 'them'}: add --seeds auto, or drop {', '.join(auto)}")


def cmd_run(args: argparse.Namespace) -> int:
    from afbench.report import render
    from afbench.sweep.study import save_study

    output = Output(quiet=args.quiet, as_json=args.json)
    sweep = plan(args)
    for note in sweep.notes:
        output.note(f"note: {note}")
    _say_duration(sweep.configs, output)
    progress = progress_bars(args.no_progress) and not (args.quiet or args.json)
    backend = _backend(sweep.study, progress)
    if hasattr(backend, "check"):
        backend.check(sweep.configs)  # bad data fails before anything is written to --out
    out = _out_folder(sweep.study)  # only now: a run refused above leaves no empty folder behind
    save_study(out, sweep.study, sweep.grid.activations)
    started = time.monotonic()
    outcome = _execute(sweep, out, backend, output, lines=not progress and not args.quiet)
    counts = outcome.counts
    output.note(f"ran {counts['ran']}, skipped {counts['skipped']} already finished, failed {counts['failed']} "
                f"in {time.monotonic() - started:.0f} s")
    # A baseline not given is the folder's (relu where it holds relu), as `afbench report` chooses it:
    # one activation added to a folder must not become the baseline every other run is judged against.
    report = render.write(out, sweep.baseline if sweep.study.execution.baseline else None)
    show_report(report, out, output, wide=args.wide)
    output.summary.update(counts=counts, runs=len(sweep.configs), out=str(out), baseline=report.baseline,
                          verdicts=verdicts(report), paths=_paths(out))
    diverged = _all_diverged(report.runs, outcome.configs or sweep.configs)
    if diverged:
        output.note(f"every run diverged ({diverged} runs: the loss became NaN, infinite or exploded): no run "
                    "finished, so nothing can be compared; try a smaller --lr")
    if counts["failed"]:
        output.note(f"{counts['failed']} runs failed: their errors are in {out}/runs.csv (column error); rerun "
                    "the same command to retry them")
    return output.finish(1 if counts["failed"] or diverged else 0)


def _all_diverged(runs, configs: list) -> int:
    """How many of this sweep's runs (in the report's frame of the folder's runs) diverged
    when none of them finished (0 when one did, or none diverged): a sweep with nothing to
    compare exits non-zero, as one with a failed run does."""
    from afbench.results import Status

    keys = {c.key() for c in configs}
    statuses = list(runs.loc[runs["key"].isin(keys), "status"]) if len(runs) else []
    if Status.DONE.value in statuses:
        return 0
    return statuses.count(Status.DIVERGED.value)


def _execute(sweep: Plan, out: Path, backend, output: Output, lines: bool):
    """Train what is not done yet, saying what happens; returns the sweep's Outcome
    (its counts and configs)."""
    from afbench.sweep import execute, execute_until_decided

    ex, auto_seeds = sweep.study.execution, sweep.study.seeds == "auto"
    if (ex.workers == "auto" or ex.stack == "auto") and (auto_seeds or _unfinished(out, sweep.configs)):
        output.note("preparing: loading the data and timing a few steps to choose workers, threads and "
                    "stacking (seconds to a minute)")
    total = None if auto_seeds else len(sweep.configs)  # --seeds auto adds runs as it goes
    keys = None if auto_seeds else {c.key() for c in sweep.configs}  # not an earlier sweep's runs in the folder
    with RunLines(out, total, output.note, keys=keys) if lines else contextlib.nullcontext():
        if auto_seeds:
            output.note(f"--seeds auto: {len(sweep.grid.activations)} activations, 3 paired seeds first, at most "
                        f"{ex.max_seeds}, against {sweep.baseline} -> {out}/results.sqlite")
            outcome = execute_until_decided(sweep.grid, out, backend, baseline=sweep.baseline,
                                            max_seeds=ex.max_seeds, device=sweep.device,
                                            **_decided_on(sweep.grid.base, ex.equivalence))
            for activation, why in outcome.stopped.items():
                output.note(f"  {activation}: {why}")
        else:
            output.note(f"{len(sweep.configs)} runs -> {out}/results.sqlite")
            outcome = execute(sweep.configs, out, backend, resolved=True)
    schedule = getattr(backend, "schedule_used", None)
    if schedule:
        output.note(f"scheduler: {schedule_sentence(schedule)}")
    _note_cost_profile(out, output)
    return outcome


def _unfinished(out: Path, configs: list) -> bool:
    """Does ``out`` lack a finished run of any of ``configs``? (Only then does a sweep
    load data and time steps to plan its workers.)"""
    from afbench.results import FINISHED
    from afbench.store.reading import StoreView

    if not (out / "results.sqlite").exists():
        return True
    with StoreView(out) as view:  # read-only: asking never writes
        finished = {r.key for r in view.records() if r.status in FINISHED}
    return any(c.key() not in finished for c in configs)


def _decided_on(base, equivalence_pp: float) -> dict:
    """What --seeds auto decides on: the test error, with the --equivalence margin (in
    percentage points), or a workload's own primary metric in its own direction, with
    no margin (none is defined in mse, PSNR or bits per character: a workload's
    comparison stops when it is better or worse, or at --max-seeds)."""
    from afbench.workloads import for_config

    workload = for_config(base)
    if workload.family == "classification":
        return {"metric": "error_rate", "higher_is_better": False, "equivalence": equivalence_pp / 100}
    return {"metric": workload.primary.name, "higher_is_better": workload.primary.higher_is_better,
            "equivalence": 0.0}


MIN_ESTIMATE_FOR_SHARE_S = 1.0  # of training; under it the cost profile's note gives its seconds only


def _note_cost_profile(out: Path, output: Output) -> None:
    from afbench.store.database import Store

    store = Store(out)
    try:
        profile = store.meta().get("cost_profile")
    finally:
        store.close()
    if not profile:
        return
    estimated = profile.get("estimated_training_s") or 0
    # a share of an estimate under a second says nothing ("43441.1% of the estimated 0.0 s")
    share = (f", {100 * profile['share']:.1f}% of the estimated {estimated} s of training"
             if estimated >= MIN_ESTIMATE_FOR_SHARE_S and profile.get("share") is not None else "")
    output.note(f"cost profile: {profile['seconds']} s{share}; the tables' times and batch-1 latency come from it")


def _paths(out: Path) -> dict[str, str]:
    return {"database": f"{out}/results.sqlite", "summary": f"{out}/summary.md", "html": f"{out}/report.html",
            "csv": f"{out}/summary.csv", "epochs": f"{out}/epochs.csv", "figures": f"{out}/figures/"}


def verdicts(report) -> list[dict]:
    """Each activation's verdict against the baseline, as data: on the test error, and on
    each other workload's own primary metric (its rows name the ``metric``, its direction
    and the activation's ``mean``; differences and intervals in the metric's units)."""
    out = []
    for name, extra in (("tests", ()), ("workload_tests", ("metric", "higher_is_better", "mean", "baseline_mean"))):
        tests = getattr(report, name, None)
        if tests is None or len(tests) == 0:
            continue
        keep = [c for c in ("setting", "dataset", "model", "activation", "verdict", "n", "mean_diff", "p_holm",
                            "ci_low", "ci_high", *extra) if c in tests]
        out += json.loads(tests[keep].to_json(orient="records"))
    return out


def show_report(report, out: Path, output: Output, wide: bool = False) -> None:
    """The comparison table, the verdict in words and where the files are."""
    from afbench.cli.output import terminal_width
    from afbench.cli.table import format_compact, format_wide
    from afbench.report.render import verdict_text

    if not report.comparison():
        output.result("no finished runs")
        return
    rows, legend = (format_wide(report), []) if wide else format_compact(report, max(80, terminal_width()))
    for line in rows:
        output.result(line, wrap=False)
    for line in legend:
        output.result(line)
    output.result("verdict:", essential=True)
    for line in verdict_text(report):
        output.result(f"  {line}", essential=True)
    output.result(f"report: {out}/summary.md, {out}/report.html, {out}/summary.csv, {out}/epochs.csv, "
                  f"{out}/figures/", essential=True)
