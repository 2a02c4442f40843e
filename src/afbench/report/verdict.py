"""The report's opening: what the statistics support, in plain words, and nothing
more. Every sentence is drawn from the paired tests (afbench.stats.paired)."""

from __future__ import annotations

import pandas as pd


def _pp(value: float) -> str:
    """An error difference (a fraction) in percentage points."""
    return f"{100 * value:+.2f}"


def _span(t, with_p: bool = False) -> str:
    """'tanh +0.21 pp, CI +0.05 to +0.37' for one comparison row."""
    text = f"{t['activation']} {_pp(t['mean_diff'])} pp, CI {_pp(t['ci_low'])} to {_pp(t['ci_high'])}"
    return text + (f", p = {t['p_holm']:.3g}" if with_p else "")


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def setting_lines(dataset: str, model: str, group: pd.DataFrame, tests: pd.DataFrame, top: list[str],
                  baseline: str, equivalence: float) -> list[str]:
    """Sentences for one setting (data set, model)."""
    seeds = int(group["done"].max()) if len(group) else 0
    head = f"On {model} / {dataset} ({seeds} seed{'s' if seeds != 1 else ''} per activation)"
    if seeds < 2:
        return [f"{head}, nothing can be ranked: one seed cannot separate an activation from the luck of its "
                "initialisation. Rerun with --seeds 5, or --seeds auto to add seeds until each comparison is "
                "decided."]
    if tests.empty:
        return [f"{head}: no paired comparison with {baseline} (is it in this setting?)."]
    lines = []
    for verdict in ("worse", "better"):
        for _, t in tests[tests["verdict"] == verdict].iterrows():
            lines.append(f"{t['activation']} is {verdict} than {baseline}: test error {_pp(t['mean_diff'])} pp "
                         f"({100 * t['confidence']:.4g}% CI {_pp(t['ci_low'])} to {_pp(t['ci_high'])}), "
                         f"p = {t['p_holm']:.3g} (paired permutation test, Holm-corrected, n = {t['n']}).")
    equivalent = tests[tests["verdict"] == "equivalent"]
    if len(equivalent):
        spans = "; ".join(_span(t) for _, t in equivalent.iterrows())
        lines.append(f"{_names(list(equivalent['activation']))} "
                     f"{'is' if len(equivalent) == 1 else 'are'} practically equivalent to {baseline} "
                     f"(every CI within ±{100 * equivalence:.2g} pp: {spans}).")
    undecided = tests[tests["verdict"] == "undecided"]
    if len(undecided):
        spans = "; ".join(_span(t, with_p=True) for _, t in undecided.iterrows())
        smallest = min(1.0, len(tests) * 2.0 ** (1 - seeds))  # a float power: 2 ** 1024 overflows a float  # all differences of one sign, Holm's first step
        limit = (f" With {seeds} seeds no comparison can reach p < 0.05: the smallest possible permutation p is "
                 f"2/2^{seeds}, {smallest:.3g} after Holm over {len(tests)}.") if smallest >= 0.05 else ""
        lines.append(f"Undecided against {baseline}: {spans}. The data cannot tell these apart from {baseline} "
                     f"yet; more seeds (--seeds auto) would decide.{limit}")
    if top:
        lines.append(f"Top group (not significantly worse than the lowest error): {_names(top)}.")
    return [f"{head}:"] + lines


def verdict_lines(aggregate: pd.DataFrame, tests: pd.DataFrame, top: dict, ranks: dict, baseline: str,
                  equivalence: float) -> list[str]:
    """Every sentence of the Verdict section."""
    if aggregate.empty:
        return ["No finished runs yet: nothing to compare. Runs that failed are listed in runs.csv with their "
                "errors."]
    lines = []
    for (dataset, model), group in aggregate.groupby(["dataset", "model"], sort=False):
        part = tests[(tests["dataset"] == dataset) & (tests["model"] == model)] if len(tests) else tests
        lines += setting_lines(dataset, model, group, part, top.get((dataset, model), []), baseline, equivalence)
    if ranks:
        order = ", ".join(f"{a} {r:.2f}" for a, r in ranks["average_ranks"].items())
        if ranks["p"] < 0.05:
            lines.append(f"Across {ranks['blocks']} settings, average ranks by error (1 = best): {order}; the "
                         f"Friedman test rejects equal ranks (p = {ranks['p']:.3g}): see the critical-difference "
                         f"diagram (Nemenyi CD = {ranks['cd']:.2f}).")
        else:
            lines.append(f"Across {ranks['blocks']} settings, average ranks by error (1 = best): {order}; the "
                         f"Friedman test does not reject equal ranks (p = {ranks['p']:.3g}), so no ranking across "
                         "settings is supported and no critical-difference diagram is drawn.")
    return lines
