"""Regenerate a suite's stored baselines from scratch: train the suite's standard
activations (and its gated units where a workload has a feed-forward block) over its
paired seeds, then ship the finished runs, without epoch records or step times, as
src/afbench/suite/baselines/<suite>-v<version>.sqlite.

    python bench/suite_baselines.py --suite small          # about 40 minutes on 2 CPU cores

Resumable: run it again after a crash and only the rest trains. Times are never taken
from these runs (a suite measures step times on the user's machine)."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from afbench.store.database import Store
from afbench.store.merge import merge
from afbench.suite.definition import load_suite
from afbench.suite.runner import run_suite
from afbench.sweep import Runtime

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "afbench" / "suite" / "baselines"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="small", help="a shipped suite or a suite file (default: %(default)s)")
    parser.add_argument("--work", default=None, help="results folder to train into (default: results/baselines-SUITE)")
    parser.add_argument("--workers", default="auto", help="worker processes (default: auto)")
    args = parser.parse_args()
    suite = load_suite(args.suite)
    work = Path(args.work or f"results/baselines-{suite.name}")
    workers = args.workers if args.workers == "auto" else int(args.workers)
    started = time.monotonic()
    outcome = run_suite(suite, None, work, mode="none", runtime=Runtime(progress=False, cost="off", workers=workers))
    print(f"trained {outcome.counts} in {time.monotonic() - started:.0f} s -> {work}/results.sqlite")
    staging = work / "shipped"
    shutil.rmtree(staging, ignore_errors=True)
    merge([work], staging, timings=False)
    store = Store(staging)
    try:
        store.keep_finished_only()
    finally:
        store.close()
    target = SHIPPED / f"{suite.name}-v{suite.version}.sqlite"
    shutil.copyfile(staging / "results.sqlite", target)
    print(f"stored baselines: {target} ({target.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
