"""--seeds auto by simulation: the old design (Bonferroni over the looks), the
group-sequential ones (Lan-DeMets O'Brien-Fleming and Pocock alpha spending) and a
fixed design of 20 seeds; and the top group, old (lowest mean, then Holm tests
against it) against the confidence set for the best (afbench.stats.best).

Model: per-seed test error of each activation = a shared seed effect + independent
noise of sd 0.21 pp (so paired differences have sd 0.3 pp), 6 activations (the
baseline and 5 others), looks at 3, 6, 9, 14, 20 seeds, alpha 0.05, equivalence
margin 0.1 pp. The decisions are afbench.stats.sequential.decide, the code the sweep
and the report run (Monte Carlo permutation p beyond 16 seeds with --draws patterns).
- null: every activation identical; familywise false-verdict rate = share of sweeps
  with any better/worse verdict (must stay <= 5%);
- power: one activation 0.3 pp worse, the rest identical; power = share of sweeps
  that call it worse;
- runs/comparison: mean seeds of the 5 compared activations (null and power cases),
  and of the one truly 0.3 pp worse.
- top group: 7 identical activations, 10 seeds; the share of sweeps that exclude
  any of them (each exclusion is an error).

Pure numpy/scipy, one thread. Usage:
  OMP_NUM_THREADS=1 PYTHONPATH=src python bench/sequential.py [--sweeps 400] [--draws 2000] [--seed 0]
Prints a Markdown table (README "Reading a verdict").
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from afbench.stats import best, sequential
from afbench.stats.paired import holm, sign_flip_p

SD = 0.003 / math.sqrt(2)  # per-run noise: paired differences have sd 0.3 pp of error
EFFECT = 0.003  # the true difference the power case plants: 0.3 pp
ACTIVATIONS = 6  # baseline + 5 compared
LOOKS = (3, 6, 9, 14, 20)


def sweep_data(rng: np.random.Generator, effect: float) -> np.ndarray:
    """(20 seeds, 6 activations) of errors; column 0 the baseline, column 1 shifted by ``effect``."""
    x = 0.1 + 0.01 * rng.standard_normal((LOOKS[-1], 1)) + SD * rng.standard_normal((LOOKS[-1], ACTIVATIONS))
    x[:, 1] += effect
    return x


def sequential_sweep(x: np.ndarray, design: sequential.Design) -> tuple[list[str], list[int]]:
    """Verdict and seeds used per compared activation, look by look as the sweep does."""
    m = x.shape[1] - 1
    verdicts, seeds = ["undecided"] * m, [LOOKS[0]] * m
    rejected = 0
    for look, n in enumerate(design.looks):
        open_ = [i for i in range(m) if verdicts[i] == "undecided"]
        if not open_:
            break
        diffs = [x[:n, i + 1] - x[:n, 0] for i in open_]
        for i, row in zip(open_, sequential.decide(diffs, design, look, m, rejected, full=False)):
            verdicts[i], seeds[i] = row["verdict"], n
            rejected += row["verdict"] in ("worse", "better")
    return verdicts, seeds


def fixed_sweep(x: np.ndarray, draws: int) -> tuple[list[str], list[int]]:
    """Every comparison at 20 seeds, Holm at 0.05 (no equivalence verdicts counted)."""
    diffs = [x[:, i] - x[:, 0] for i in range(1, x.shape[1])]
    p = holm([sign_flip_p(d, draws)[0] for d in diffs])
    return (["worse" if q < 0.05 and d.mean() > 0 else "better" if q < 0.05 else "undecided"
             for q, d in zip(p, diffs)], [LOOKS[-1]] * len(diffs))


def old_top_group(x: np.ndarray, draws: int) -> int:
    """The old rule: the lowest mean is the reference, the others are excluded when
    Holm-corrected sign-flip tests find them worse. Returns the group's size."""
    reference = int(np.argmin(x.mean(axis=0)))
    others = [j for j in range(x.shape[1]) if j != reference]
    p = holm([sign_flip_p(x[:, j] - x[:, reference], draws)[0] for j in others])
    return x.shape[1] - sum(q < 0.05 and (x[:, j] - x[:, reference]).mean() > 0 for q, j in zip(p, others))


def rate(hits: int, n: int) -> str:
    share = hits / n
    return f"{100 * share:.1f}% ± {100 * math.sqrt(max(share * (1 - share), 1e-12) / n):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweeps", type=int, default=400, help="simulated sweeps per design and case (400)")
    parser.add_argument("--draws", type=int, default=2000, help="Monte Carlo sign patterns beyond 16 seeds (2000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    designs = {"Bonferroni over looks (old)": sequential.Design(looks=LOOKS, spending="bonferroni", draws=args.draws),
               "O'Brien-Fleming spending (new)": sequential.Design(looks=LOOKS, draws=args.draws),
               "Pocock spending": sequential.Design(looks=LOOKS, spending="pocock", draws=args.draws),
               "fixed 20 seeds, Holm": None}
    start = time.perf_counter()
    print(f"{args.sweeps} sweeps per cell; paired differences of sd {100 * SD * math.sqrt(2):.1f} pp, "
          f"{ACTIVATIONS} activations, looks at {', '.join(map(str, LOOKS))} seeds; ± is one standard error\n")
    print("| design | familywise false verdicts (null) | power, 0.3 pp worse | runs/comparison (null) "
          "| runs/comparison (0.3 pp case) | runs of the 0.3 pp one | undecided at the end (null) |")
    print("|---|---|---|---|---|---|---|")
    for name, design in designs.items():
        rng = np.random.default_rng(args.seed)
        false, found, runs_null, runs_alt, runs_effect, undecided = 0, 0, [], [], [], 0
        for _ in range(args.sweeps):
            for effect in (0.0, EFFECT):
                x = sweep_data(rng, effect)
                verdicts, seeds = fixed_sweep(x, args.draws) if design is None else sequential_sweep(x, design)
                if effect == 0.0:
                    false += any(v in ("worse", "better") for v in verdicts)
                    undecided += sum(v == "undecided" for v in verdicts)
                    runs_null += seeds
                else:
                    found += verdicts[0] == "worse"
                    runs_alt += seeds
                    runs_effect.append(seeds[0])
        print(f"| {name} | {rate(false, args.sweeps)} | {rate(found, args.sweeps)} | {np.mean(runs_null):.1f} "
              f"| {np.mean(runs_alt):.1f} | {np.mean(runs_effect):.1f} | {100 * undecided / (5 * args.sweeps):.0f}% |")
    rng = np.random.default_rng(args.seed + 1)
    old = new = 0
    for _ in range(args.sweeps):
        x = 0.1 + 0.01 * rng.standard_normal((10, 1)) + SD * rng.standard_normal((10, 7))  # 7 identical
        old += old_top_group(x, args.draws) < 7
        new += len(best.best_set(x, 0.05, draws=999, rng=rng)) < 7
    print("\n| top group, 7 identical activations, 10 seeds | sweeps excluding any (each an error) |")
    print("|---|---|")
    print(f"| lowest mean + Holm tests against it (old) | {rate(old, args.sweeps)} |")
    print(f"| confidence set for the best, step-down max-T (new) | {rate(new, args.sweeps)} |")
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
