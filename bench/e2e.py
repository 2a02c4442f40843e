"""S1's MNIST table end to end: afbench as a user runs it against a plain PyTorch loop.

What it measures. The preset s1-mnist (LeNet, MNIST, Adam 1e-3, batch 128, the
activations relu,tanh,selu,prelu,elu,leaky_relu, 1 seed; --epochs of them, default 3)
is trained two ways, alternating A B A B for --repeats rounds (default 2), each way
as a fresh child process of this driver so both pay the same interpreter, torch
import and data reading:

- A, afbench: ``python -m afbench.cli run --preset s1-mnist --epochs E --out FRESH
  --no-progress --json`` (what a user gets: data loading, the scheduler's
  calibration, training, evaluation after each epoch, layer diagnostics, batch-1
  latency over all test images, the statistics and the report). Every round writes
  a fresh results folder, so nothing is skipped as already done. Its threads are
  afbench's own choice (--workers auto) unless --threads is given, which is passed
  on as ``--threads``.
- B, plain: the same six models one after another in a standard loop: a
  ``torch.utils.data.DataLoader`` (shuffle=True, num_workers=0) over the MNIST
  tensors as afbench prepares them (``afbench.data.load`` + ``prepare``: scaled to
  [0, 1], standardised with the training split's mean and std, the same
  --train-subset rows), the model built by ``afbench.models.build("lenet", act)``
  (the same net and initialisation as A; default memory format), plain
  ``torch.optim.Adam(lr=1e-3)``, cross-entropy, test accuracy after each epoch in
  batches of 1,000. Its threads: torch's default (one per core), or --threads.
  Nothing else: no diagnostics, no latency, no report.

Per round it prints the wall seconds of each, and B/A (afbench's speedup: above 1,
afbench finishes the table sooner); then the means over rounds, the training
seconds alone (afbench's epoch_train_s summed, over the runs it trains side by side;
the plain loop's timed epochs), what
else afbench spent its time on, and the arithmetic limit: LeNet's training FLOPs per
epoch (3 x 2 x forward multiply-adds per image, bench/speed.py's forward_macs) over a
matmul FLOP/s measured in this run (bench/speed.py's matmul_flops), i.e. the ideal
epoch seconds, against afbench's and the plain loop's measured epoch seconds.
On --device cuda every clock read follows torch.cuda.synchronize().

Run it (from the project root; MNIST's four IDX .gz files in DIR or DIR/mnist):
  PYTHONPATH=src python bench/e2e.py --data-dir DIR                 # 3 epochs x 6 activations, 2 rounds
  PYTHONPATH=src python bench/e2e.py --data-dir DIR --device cuda
  PYTHONPATH=src python bench/e2e.py --data-dir DIR --quick --activations relu,tanh   # smoke: 1 epoch, 2,000 images
  ... --out DIR2   keeps afbench's results folders (DIR2/afbench-1/summary.md, ...) and the logs
The default data folder is AFBENCH_DATA_DIR, else ../shared/data beside the project.
Compare only numbers from one run: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import afbench
from afbench import data, models
from speed import DEFAULT_DATA, forward_macs, matmul_flops, sync  # bench/ is on sys.path when a script in it runs

PRESET = "s1-mnist"
ACTIVATIONS = "relu,tanh,selu,prelu,elu,leaky_relu"  # the preset's
BATCH, LR, SEED = 128, 1e-3, 0  # the preset's
QUICK_SUBSET = 2000


def child_env() -> dict:
    """The children import the afbench this driver imported."""
    env = dict(os.environ)
    src = str(Path(afbench.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ---- B: the plain loop (runs in a child process: --plain-worker) -----------------------------

def plain_table(args) -> dict:
    """Train the activations one after another in a standard DataLoader loop; the
    seconds of loading, training (the epochs' loops alone) and evaluating."""
    device = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    prepared = data.prepare(data.load("mnist", args.data_dir, download=False), train_subset=args.train_subset)
    train = torch.utils.data.TensorDataset(prepared.train.x, prepared.train.y)
    test_x, test_y = prepared.test.x.to(device), prepared.test.y.to(device)
    load_s = time.perf_counter() - start
    out = {"load_s": load_s, "train_s": 0.0, "eval_s": 0.0, "epochs": 0, "threads": torch.get_num_threads(),
           "acc": {}, "train_images": len(train)}
    for act in args.activations.split(","):
        torch.manual_seed(SEED)
        model = models.build("lenet", act, prepared.input_shape, prepared.num_classes).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        loader = torch.utils.data.DataLoader(train, batch_size=BATCH, shuffle=True)
        for _ in range(args.epochs):
            sync(device)
            t0 = time.perf_counter()
            model.train()
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                loss = F.cross_entropy(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            sync(device)
            t1 = time.perf_counter()
            model.eval()
            correct = 0
            with torch.no_grad():
                for i in range(0, len(test_y), 1000):
                    correct += int((model(test_x[i:i + 1000]).argmax(1) == test_y[i:i + 1000]).sum())
            sync(device)
            out["train_s"] += t1 - t0
            out["eval_s"] += time.perf_counter() - t1
            out["epochs"] += 1
            out["acc"][act] = correct / len(test_y)
    return out


# ---- A: afbench's CLI ----------------------------------------------------------------------

def afbench_command(args, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "afbench.cli", "run", "--preset", PRESET, "--epochs", str(args.epochs),
           "--activations", args.activations, "--device", args.device, "--data-dir", str(args.data_dir),
           "--out", str(out), "--no-progress", "--json"]
    if args.train_subset:
        cmd += ["--train-subset", str(args.train_subset)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    return cmd


def run_child(cmd: list[str], log: Path, what: str) -> tuple[float, str]:
    """Wall seconds and stdout of a child; its stderr goes to ``log``. A failure ends the driver."""
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=child_env())
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-15:]
        sys.exit(f"e2e: {what} failed (exit status {proc.returncode}): {' '.join(cmd)}\n" + "\n".join(tail))
    return seconds, proc.stdout


def cost_profile_seconds(out: Path) -> float:
    """Seconds the sweep spent measuring its cost profile (0 when it measured none)."""
    with sqlite3.connect(out / "results.sqlite") as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'cost_profile'").fetchone()
    return json.loads(row[0])["seconds"] if row else 0.0


def afbench_round(args, out: Path) -> dict:
    seconds, stdout = run_child(afbench_command(args, out), out.with_suffix(".log"), "afbench run")
    summary = json.loads(stdout)
    n = len(args.activations.split(","))
    if summary["counts"]["ran"] != n or summary["counts"]["failed"]:
        sys.exit(f"e2e: afbench ran {summary['counts']} of {n} runs; see {out}")
    with open(out / "epochs.csv") as f:
        epochs = list(csv.DictReader(f))
    with open(out / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    return {"wall_s": seconds,
            "train_s": sum(float(e["epoch_train_s"]) for e in epochs),
            "epoch_s": [float(e["epoch_train_s"]) for e in epochs],
            "runs_wall_s": sum(float(r["wall_s"]) for r in runs),
            "latency_s": sum(float(r["ms_per_sample"]) * 1e-3 * (int(r["config.latency_samples"] or 0)
                                                                  or 10_000) for r in runs if r["ms_per_sample"]),
            "cost_s": cost_profile_seconds(out),
            "threads": runs[0].get("provenance.threads"),
            "workers": int(float(runs[0].get("provenance.concurrent_runs") or 1)),
            "acc": {r["activation"]: float(r["accuracy"]) for r in runs}}


def plain_round(args, folder: Path, index: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--plain-worker", "--epochs", str(args.epochs),
           "--activations", args.activations, "--device", args.device, "--data-dir", str(args.data_dir)]
    if args.train_subset:
        cmd += ["--train-subset", str(args.train_subset)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    seconds, stdout = run_child(cmd, folder / f"plain-{index}.log", "the plain loop")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["wall_s"] = seconds
    return result


# ---- the driver ----------------------------------------------------------------------------

def check_data(args) -> None:
    """MNIST present (decoded once here, so no round pays the first decoding), or a clear exit."""
    try:
        data.load("mnist", args.data_dir, download=False)
    except data.DataError as error:
        sys.exit(f"e2e: MNIST not found under {args.data_dir} (nor AFBENCH_DATA_DIR, nor afbench's cache).\n"
                 f"Pass --data-dir DIR with the four IDX .gz files in DIR or DIR/mnist, or set AFBENCH_DATA_DIR.\n"
                 f"afbench said: {error}")


def limit(args, a_epoch_s: float, b_epoch_s: float, train_images: int) -> None:
    threads = args.threads or torch.get_num_threads()
    if args.device.startswith("cuda"):
        flops = matmul_flops(threads, device=args.device)
    else:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        flops = matmul_flops(threads)
        torch.set_num_threads(previous)
    per_image = 3 * 2 * forward_macs(models.build("lenet", "relu", (1, 28, 28), 10), (1, 28, 28))
    ideal = per_image * train_images / flops
    print(f"limit: LeNet {per_image / 1e6:.2f} MFLOP per training image x {train_images} images = "
          f"{per_image * train_images / 1e9:.2f} GFLOP per epoch; matmul {flops / 1e9:.1f} GFLOP/s "
          f"({args.device}, {threads} threads, fp32 1024^2) -> ideal epoch {ideal:.3f} s")
    print(f"limit: afbench epoch {a_epoch_s:.3f} s (its runs' epoch seconds over the runs side by side; fraction "
          f"of the limit {ideal / a_epoch_s:.3f}); "
          f"plain epoch {b_epoch_s:.3f} s (fraction {ideal / b_epoch_s:.3f})")


def positive(text: str) -> int:
    """A whole number of at least 1, for argparse."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=positive, default=None, help="epochs per run (default: 3; --quick: 1)")
    parser.add_argument("--repeats", type=positive, default=None, help="A B rounds (default: 2; --quick: 1)")
    parser.add_argument("--activations", default=ACTIVATIONS, help="comma-separated (default: the preset's six)")
    parser.add_argument("--data-dir", default=os.environ.get("AFBENCH_DATA_DIR") or str(DEFAULT_DATA),
                        help="holds mnist/ or the four IDX files (default: AFBENCH_DATA_DIR, else %(default)s)")
    parser.add_argument("--threads", type=positive, default=None,
                        help="torch threads: passed to afbench as --threads and set in the plain loop (default: "
                             "afbench's auto choice for A, torch's default, one per core, for B)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: 1 epoch on a {QUICK_SUBSET:,}-image training subset, 1 round")
    parser.add_argument("--train-subset", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep the results folders and logs (printed)")
    parser.add_argument("--out", default=None, help="write afbench's results folders (OUT/afbench-ROUND) and the "
                        "logs here and keep them (default: a temporary folder, removed)")
    parser.add_argument("--plain-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.epochs = args.epochs or (1 if args.quick else 3)
    if args.quick and args.train_subset is None:
        args.train_subset = QUICK_SUBSET
    if args.plain_worker:
        print(json.dumps(plain_table(args)))
        return
    repeats = args.repeats or (1 if args.quick else 2)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("e2e: --device cuda, but torch sees no CUDA device")
    check_data(args)
    n = len(args.activations.split(","))
    if args.out:
        args.keep = True
        folder = Path(args.out)
        for r in range(1, repeats + 1):  # fresh results folders: nothing skipped as already done
            shutil.rmtree(folder / f"afbench-{r}", ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix="afbench-e2e-"))
    print(f"# e2e: {PRESET}, lenet/mnist, {n} activations x {args.epochs} epochs, batch {BATCH}, "
          f"train subset {args.train_subset or 'none'}, device {args.device}, {repeats} rounds A B; "
          f"torch {torch.__version__}, {os.cpu_count()} cores; plain loop threads "
          f"{args.threads or torch.get_num_threads()}, afbench threads {args.threads or 'auto'}", flush=True)
    a_rounds, b_rounds = [], []
    try:
        for r in range(1, repeats + 1):
            a = afbench_round(args, folder / f"afbench-{r}")
            b = plain_round(args, folder, r)
            a_rounds.append(a)
            b_rounds.append(b)
            print(f"round={r} afbench_s={a['wall_s']:.1f} plain_s={b['wall_s']:.1f} "
                  f"speedup_B/A={b['wall_s'] / a['wall_s']:.2f} "
                  f"(training alone: afbench {a['train_s'] / a['workers']:.1f} s, plain {b['train_s']:.1f} s, "
                  f"B/A {b['train_s'] * a['workers'] / a['train_s']:.2f}; afbench workers x threads "
                  f"{a['workers']} x {a['threads']})", flush=True)
    finally:
        if args.keep:
            print(f"# kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    mean = lambda rows, key: statistics.mean(row[key] for row in rows)
    a_wall, b_wall = mean(a_rounds, "wall_s"), mean(b_rounds, "wall_s")
    ratios = [b["wall_s"] / a["wall_s"] for a, b in zip(a_rounds, b_rounds)]
    train_ratios = [b["train_s"] * a["workers"] / a["train_s"] for a, b in zip(a_rounds, b_rounds)]
    print(f"mean afbench_s={a_wall:.1f} plain_s={b_wall:.1f} speedup_B/A={statistics.mean(ratios):.2f} "
          f"(training alone B/A {statistics.mean(train_ratios):.2f})")
    a_runs, a_train, a_lat = mean(a_rounds, "runs_wall_s"), mean(a_rounds, "train_s"), mean(a_rounds, "latency_s")
    a_cost = mean(a_rounds, "cost_s")
    print(f"afbench's seconds, mean per round: {a_wall:.1f} wall; in its runs {a_runs:.1f} (training "
          f"{a_train:.1f}, batch-1 latency of the test images about {a_lat:.1f}, evaluation and diagnostics "
          f"{max(a_runs - a_train - a_lat, 0):.1f}; summed over runs, which overlap when workers train side by "
          f"side); the cost profile (step times and batch-1 latency, measured alone) {a_cost:.1f}")
    print(f"plain loop's seconds, mean per round: {b_wall:.1f} wall = data {mean(b_rounds, 'load_s'):.1f} + "
          f"training {mean(b_rounds, 'train_s'):.1f} + evaluation {mean(b_rounds, 'eval_s'):.1f} + "
          f"the rest {b_wall - mean(b_rounds, 'load_s') - mean(b_rounds, 'train_s') - mean(b_rounds, 'eval_s'):.1f}"
          f" (start, imports)")
    print("final test accuracy (last round): " + ", ".join(
        f"{act} afbench {a_rounds[-1]['acc'].get(act, float('nan')):.4f} plain {acc:.4f}"
        for act, acc in b_rounds[-1]["acc"].items()))
    # Runs side by side each take an epoch's seconds, together: the machine's seconds per epoch trained.
    a_epoch = statistics.mean(s / a["workers"] for a in a_rounds for s in a["epoch_s"])
    b_epoch = statistics.mean(b["train_s"] / b["epochs"] for b in b_rounds)
    limit(args, a_epoch, b_epoch, b_rounds[-1]["train_images"])


if __name__ == "__main__":
    main()
