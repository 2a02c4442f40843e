"""`afbench suite`, `afbench show suite`, `afbench list suites`: a new activation
judged across task families against stored baselines (afbench.suite)."""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from afbench import rules
from afbench.cli import args as types
from afbench.cli.output import Output, RunLines, progress_bars
from afbench.errors import AfbenchError

EXAMPLES = """examples:
  afbench suite small
      the leaderboard of the stored baselines
  afbench suite small --activations "x*sigmoid(1.5*x)"
      judge yours: trains only it (minutes)
  afbench suite small --activations my_acts.py:MyAct --baselines local
      relu trained here too
  afbench show suite small > my-suite.toml
      a suite file to start your own"""


def _activations(given) -> tuple[str, ...]:
    """The activations as the registry names them (PATH.py:NAME made importable)."""
    from afbench.cli.run import import_path
    from afbench.sweep.execute import canonical_activations

    if given is None:
        return ()
    if given == "all":
        raise AfbenchError("--activations all would train every activation: name the ones to judge")
    names, _ = canonical_activations(tuple(dict.fromkeys(import_path(name) for name in given)))
    return names


def _out(args, suite) -> Path:
    out = Path(args.out or f"results/suite-{suite.name}" + ("-local" if args.baselines == "local" else ""))
    if out.exists() and not out.is_dir():
        raise AfbenchError(f"--out {out} is a file, not a folder: name a folder for the results")
    return out


def cmd_suite(args: argparse.Namespace) -> int:
    from afbench.suite import baselines, leaderboard, score
    from afbench.suite.definition import load_suite
    from afbench.suite.runner import planned_keys, plan_suite, prepare_folder, train_plan
    from afbench.sweep import Runtime

    output = Output(quiet=args.quiet, as_json=args.json)
    suite = load_suite(args.name)
    new = _activations(args.activations)
    if suite.baseline in new:
        output.note(f"note: {suite.baseline} is the suite's baseline: the others are judged against it")
        new = tuple(a for a in new if a != suite.baseline)
    if not new and args.baselines != "stored":
        if args.activations:  # all of them the baseline, which this choice trains anyway
            raise AfbenchError(f"--activations holds only the suite's baseline ({suite.baseline}), which --baselines "
                               f"{args.baselines} trains anyway: add the activations to judge against it")
        raise AfbenchError(f"--baselines {args.baselines} trains the activations you judge: give --activations")
    if args.stored and args.baselines != "stored":
        raise AfbenchError(f"--stored gives stored baselines to pair with; --baselines {args.baselines} uses none")
    out = _out(args, suite)
    if new:
        output.note(f"suite {suite.label}: {len(suite.workloads)} workloads x {len(suite.seeds)} paired seeds for "
                    f"{', '.join(new)}; baselines {args.baselines} -> {out}/results.sqlite")
    progress = progress_bars(args.no_progress) and not (args.quiet or args.json)
    runtime = Runtime(args.data_dir, args.threads, progress, args.workers, "auto", cost="on",
                      baseline=suite.baseline)
    started = time.monotonic()
    if not new:  # the stored baselines alone: their leaderboard
        outcome = _stored_only(suite, out, args)
    else:
        plan = plan_suite(suite, new, out, mode=args.baselines, runtime=runtime, device=args.device,
                          stored=args.stored)  # every refusal comes before anything is written
        prepare_folder(plan, out)  # the stored baselines are in before the per-run lines look
        keys = planned_keys(plan)
        lines = not progress and not args.quiet
        with RunLines(out, len(keys), output.note, keys=keys) if lines else contextlib.nullcontext():
            outcome = train_plan(plan, out)
    counts = outcome.counts if outcome else {"ran": 0, "skipped": 0, "failed": 0}
    if new:
        output.note(f"ran {counts['ran']}, skipped {counts['skipped']} already finished, failed {counts['failed']} "
                    f"in {time.monotonic() - started:.0f} s")
    result = score.score(out, suite, new)
    made = baselines.made_under(args.stored or baselines.stored_path(suite)) if args.baselines == "stored" else None
    paths = leaderboard.write(out, result, made)
    rows, legend = leaderboard.text_table(result, leaderboard.board(result))
    for line in rows:
        output.result(line, wrap=False)
    if legend:
        output.result(legend)
    for line in score.workload_lines(result) if new else []:
        output.result(line)
    output.result("suite verdict:", essential=True)
    for line in score.summary_lines(result) if new else [score.ranks_line(result)] + result.notes:
        output.result(f"  {line}", essential=True)
    output.result(f"leaderboard: {paths['html']}; {paths['markdown']}, {paths['json']}", essential=True)
    output.summary.update(suite=suite.name, version=suite.version, out=str(out), counts=counts,
                          verdicts={a: score.verdict_line(result, a) for a in new},
                          paths={k: str(v) for k, v in paths.items()})
    if counts["failed"]:
        output.note(f"{counts['failed']} runs failed: their errors are in {out}/results.sqlite (afbench report "
                    f"{out} lists them); rerun the same command to retry them")
        return output.finish(1)
    return output.finish(0)


def _stored_only(suite, out: Path, args):
    """No activation to judge: the stored baselines alone, for their leaderboard."""
    from afbench.store.merge import merge
    from afbench.suite import baselines

    path = baselines.check_pairable(suite, "cpu" if args.device == "auto" else args.device, args.stored)
    baselines.refuse_sweep_folder(out)
    baselines.record(out, suite, "stored")
    merge([path], out, timings=False)
    return None


def cmd_show_suite(args: argparse.Namespace) -> None:
    from afbench.suite.definition import show_suite

    print(show_suite(args.name), end="")  # plain print: the output is a file to redirect


def cmd_list_suites(args: argparse.Namespace) -> None:
    from afbench.suite import baselines
    from afbench.suite.definition import load_suite, suite_names

    output = Output()
    for name in suite_names():
        suite = load_suite(name)
        stored = "stored baselines" if baselines.stored_path(suite) else "no stored baselines (--baselines local)"
        output.result(f"{name:<8} v{suite.version}, {len(suite.workloads)} workloads, {len(suite.seeds)} seeds, "
                      f"{stored}: {suite.description}")  # wrapped to the terminal, 80 columns in a log


def add_parsers(commands, listing_what, show_what) -> None:
    """`afbench suite`, `afbench list suites` and `afbench show suite`."""
    parser = commands.add_parser(
        "suite", help="judge activations across task families against the stored baselines of a versioned suite",
        description="Train the given activations on every workload of a suite (fixed settings, budget and paired "
                    "seeds) and judge them, paired by seed, against the suite's stored runs of the standard "
                    "activations: per workload in its own metric, and across workloads (average ranks, Friedman, "
                    "performance profiles). Only your activations train; step times are measured on this machine. "
                    "Writes OUT/suite.md, suite.json and leaderboard.html.",
        epilog=EXAMPLES)
    parser.add_argument("name", help="a shipped suite (afbench list suites) or a suite file PATH.toml")
    parser.add_argument("--activations", type=types.activation_list,
                        help="the activations to judge: names, formulas in x, PATH.py:NAME, comma-separated "
                             "(none: the leaderboard of the stored baselines alone)")
    parser.add_argument("--baselines", choices=("stored", "local", "none"), default="stored",
                        help="stored: pair with the shipped runs (refused where they were made under another torch "
                             "minor version or device class); local: train the suite's baseline here too; none: "
                             "train only the given activations, nothing merged in (how stored baselines are made: "
                             "verdicts need the suite's baseline among them) (default: stored)")
    parser.add_argument("--stored", help="a results folder or .sqlite of this suite's baselines to pair with, "
                                         "instead of the shipped one (e.g. a merge of contributions)")
    parser.add_argument("--out", type=types.path,
                        help="results folder (default: results/suite-NAME, -local with --baselines local)")
    parser.add_argument("--workers", type=types.flag(rules.EXECUTION_RULES["workers"]), default="auto",
                        help="worker processes, or auto (default: auto)")
    parser.add_argument("--threads", type=types.flag(rules.EXECUTION_RULES["threads"]),
                        help="torch threads per worker (default: chosen with --workers)")
    parser.add_argument("--device", type=types.device, default="auto",
                        help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--data-dir", help="folder with local copies of the data")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--quiet", action="store_true", help="only the suite verdict and the paths")
    parser.add_argument("--json", action="store_true", help="one JSON summary on stdout")
    parser.set_defaults(func=cmd_suite)
    listing_what.add_parser("suites", help="the suites shipped with afbench",
                            epilog="example:\n  afbench list suites").set_defaults(func=cmd_list_suites)
    show = show_what.add_parser("suite", help="print a suite's file, to start your own",
                                epilog="example:\n  afbench show suite small > my-suite.toml")
    show.add_argument("name", help="a suite: afbench list suites")
    show.set_defaults(func=cmd_show_suite)
