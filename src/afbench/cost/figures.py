"""The cost figure: step-time ratio to the baseline with its 95% CI, and saved bytes per sample."""

from __future__ import annotations

import math
from pathlib import Path


def plot_cost(rows: list[dict], path: str | Path) -> Path:
    """Two panels, one bar per activation: step-time ratio (error bars: 95% CI) and
    bytes saved for backward per sample."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["activation"] for r in rows]
    ratio = [r["step_ratio"] for r in rows]
    low = [max(0.0, r["step_ratio"] - r["step_ratio_low"]) if not math.isnan(r["step_ratio_low"]) else 0.0
           for r in rows]
    high = [max(0.0, r["step_ratio_high"] - r["step_ratio"]) if not math.isnan(r["step_ratio_high"]) else 0.0
            for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.5), sharey=True)
    positions = range(len(rows))
    left.barh(positions, ratio, xerr=[low, high], color="tab:blue", capsize=3)
    left.axvline(1.0, color="grey", lw=0.8, ls="--")
    left.set_yticks(list(positions), names)
    left.invert_yaxis()
    baseline = rows[0].get("baseline", "baseline") if rows else "baseline"
    left.set_xlabel(f"training step time / {baseline} (95% CI)")
    right.barh(positions, [r["saved_bytes_per_sample"] / 1024 for r in rows], color="tab:orange")
    right.set_xlabel("KiB saved for backward per sample")
    if rows:
        r = rows[0]
        fig.suptitle(f"{r['model']} / {r['dataset']}, batch {r['batch_size']}, {r['device']}, "
                     f"{r['threads']} threads, {r['rounds']} rounds ({r['stop']})")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
