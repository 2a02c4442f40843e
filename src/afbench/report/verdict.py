"""The report's opening: what the statistics support, in plain words, and nothing
more. Every sentence is drawn from the paired tests (afbench.stats.paired, or the
replayed looks of a --seeds auto sweep, afbench.stats.sequential) and the top group
(afbench.stats.best). Advice is only given where the test can satisfy it."""

from __future__ import annotations

import pandas as pd

from afbench.stats.paired import ALPHA, DIVERGED, seeds_needed
from afbench.stats.sequential import judged_interval


def _pp(value: float) -> str:
    """An error difference (a fraction) in percentage points."""
    return f"{100 * value:+.2f}"


def _margin(value: float) -> str:
    """A margin (a fraction) in pp at 2 significant digits: '3.5', '12'; '100' at its
    ceiling (an interval clipped to +-100 pp), never '1e+02'."""
    return f"{100 * value:.2g}" if 100 * value < 99.5 else f"{100 * value:.0f}"


def _span(t, with_p: bool = False) -> str:
    """'tanh +0.21 pp, 95% CI +0.05 to +0.37 (unadjusted)' for one comparison row. A
    --seeds auto look decides equivalence (and what it rules out) on its own interval,
    at 1 - 2 x the look's level: that one is shown, not a 95% CI it did not use."""
    low, high, confidence, looked = judged_interval(t)
    which = "the equivalence test's, at its look's level" if looked else "unadjusted"
    text = f"{t['activation']} {_pp(t['mean_diff'])} pp, {100 * confidence:.4g}% CI {_pp(low)} to {_pp(high)} ({which})"
    return text + (f", adjusted p = {t['p_holm']:.3g}" if with_p else "") + _diverged(t)


def _diverged(t) -> str:
    """', 2 of 10 seeds diverged (counted at 100% error)' when any did."""
    parts = []
    for column, who in (("diverged", t["activation"]), ("diverged_reference", "the baseline")):
        count = t.get(column, 0)
        if count and not pd.isna(count):
            parts.append(f"{who} diverged on {int(count)} of {int(t['n'])} seeds")
    text = f"{'; '.join(parts)}, counted at 100% error" if parts else ""
    both = t.get("both_diverged", 0)
    if both and not pd.isna(both):
        text += (f"{'; ' if text else ''}both diverged on {int(both)} more seed{'s' if both != 1 else ''}, "
                 "left out of the test")
    return f" ({text})" if text else ""


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _seeds(group: pd.DataFrame) -> str:
    low, high = int(group["done"].min()), int(group["done"].max())
    counted = "finished seed" + ("s" if high != 1 else "")
    return f"{high} {counted} per activation" if low == high else f"{low} to {high} {counted} per activation"


def _tested(t, design: dict | None) -> str:
    """How the comparison was tested, for the sentence of a decided verdict."""
    if design:
        return (f"paired permutation test at look {int(t['look']) + 1} of {len(design['looks'])} with {int(t['n'])} "
                f"seeds, p = {t['p_permutation']:.3g} against the level {t['level']:.3g} that the group-sequential "
                f"design and Holm over {int(t['family'])} comparisons allow there")
    return (f"p = {t['p_holm']:.3g}, paired permutation test Holm-corrected over {int(t['family'])} comparison"
            f"{'s' if t['family'] != 1 else ''}, n = {int(t['n'])}")


def _interval(t) -> str:
    """The CI that matches a Holm p: simultaneous over the family (Bonferroni)."""
    if "sim_low" in t and not pd.isna(t.get("sim_low")) and t.get("family", 1) > 1:
        return (f"{100 * t['sim_confidence']:.3g}% CI {_pp(t['sim_low'])} to {_pp(t['sim_high'])}, simultaneous "
                f"over the {int(t['family'])} comparisons")
    unadjusted = ", unadjusted" if t.get("family", 1) > 1 else ""
    return f"{100 * t['confidence']:.4g}% CI {_pp(t['ci_low'])} to {_pp(t['ci_high'])}{unadjusted}"


def _advice(tests: pd.DataFrame, undecided: pd.DataFrame, seeds: int, alpha: float, design: dict | None) -> str:
    """What more seeds can and cannot do for the undecided comparisons."""
    ruled_out = "the data rule out differences beyond " + ", ".join(
        f"±{_margin(t['margin_supported'])} pp for {t['activation']}" for _, t in undecided.iterrows())
    # Holm's family: this setting's comparisons, or with family="all" every setting's
    comparisons = int(tests["family"].max()) if "family" in tests and tests["family"].notna().any() else len(tests)
    if design:
        # seeds run, not pairs compared: a seed both runs diverged on still counts towards the cap
        at_cap = undecided[undecided["seeds" if "seeds" in undecided else "n"] >= design["looks"][-1]]
        needed = seeds_needed(comparisons, alpha)
        if len(at_cap):
            more = (f"--max-seeds {design['looks'][-1]} is too few for the exact test to decide anything: it needs "
                    f"at least {needed} seeds for {comparisons} comparison{'s' if comparisons != 1 else ''} "
                    "(a new sweep, in its own --out)"
                    if design["looks"][-1] < needed else "a new sweep with a larger --max-seeds, in its own --out, "
                    "could narrow this")
            return (f" --seeds auto stopped {_names(list(at_cap['activation']))} at its maximum of "
                    f"{design['looks'][-1]} seeds: {ruled_out}; {more}.")
        return f" {ruled_out[0].upper()}{ruled_out[1:]}; rerun the same command to continue the looks."
    too_few = too_few_seeds(comparisons, seeds, alpha)
    if too_few:
        return f" {too_few}; so far {ruled_out}."
    return f" So far {ruled_out}; more seeds (--seeds auto) would narrow this."


def too_few_seeds(comparisons: int, seeds: int, alpha: float = ALPHA) -> str:
    """Why ``seeds`` paired seeds cannot decide any of ``comparisons`` Holm-corrected
    comparisons at ``alpha``, and how many can (stats.paired.seeds_needed); '' when they can.
    The guidance of every undecided verdict, in any metric."""
    needed = seeds_needed(comparisons, alpha)
    if seeds >= needed:
        return ""
    return (f"With {seeds} seed{'s' if seeds != 1 else ''} no comparison can reach p < {alpha:.3g}: the smallest "
            f"possible permutation p is "
            f"2/2^{seeds}, {min(1.0, comparisons * 2.0 ** (1 - seeds)):.3g} after Holm over {comparisons}. The exact "
            f"test needs at least {needed} seeds for {comparisons} comparison{'s' if comparisons != 1 else ''} "
            f"(--seeds {needed}), or --seeds auto to add seeds until each is decided")


def _top(top) -> str:
    if top is None:
        return ""
    if top.cannot_rank:
        return f"Top group: cannot rank ({top.cannot_rank})."
    line = (f"Top group (the 95% confidence set for the lowest error: an activation as good as the best is left out "
            f"with chance at most 5%, its own family apart from the tests against the baseline): "
            f"{_names(top.members)}.")
    if top.unranked:
        line += (f" Not ranked, fewer seeds than the {top.seeds} of the others: {_names(top.unranked)}.")
    return line


def setting_lines(setting: str, group: pd.DataFrame, tests: pd.DataFrame, top, baseline: str,
                  equivalence: float, alpha: float = ALPHA, design: dict | None = None) -> list[str]:
    """Sentences for one setting."""
    seeds = int(group["done"].max()) if len(group) else 0
    head = f"On {setting} ({_seeds(group)})"
    if seeds == 0 and len(group) and group["diverged"].sum() > 0:
        return [f"On {setting}, every run diverged ({int(group['diverged'].sum())} runs: the loss became NaN, "
                "infinite or exploded), so there is no error rate to compare and nothing can be compared or "
                "ranked; a smaller learning rate (--lr) may let the runs finish."]
    if seeds < 2:
        needed = seeds_needed(max(len(group) - 1, 1), alpha)
        return [f"{head}, nothing can be ranked: one seed cannot separate an activation from the luck of its "
                f"initialisation. Rerun with --seeds {needed} (the fewest at which the exact test can decide "
                f"{max(len(group) - 1, 1)} comparisons), or --seeds auto to add seeds until each comparison is "
                "decided."]
    if tests.empty:
        if "activation" in group and set(group["activation"]) == {baseline}:
            return [f"{head}: only {baseline} ran in this setting, so there is nothing to compare it with."]
        return [f"{head}: no paired comparison with {baseline} (is it in this setting?)."]
    lines = []
    for verdict in ("worse", "better"):
        for _, t in tests[tests["verdict"] == verdict].iterrows():
            lines.append(f"{t['activation']} is {verdict} than {baseline}: test error {_pp(t['mean_diff'])} pp "
                         f"({_interval(t)}), {_tested(t, design)}{_diverged(t)}.")
    equivalent = tests[tests["verdict"] == "equivalent"]
    if len(equivalent):
        spans = "; ".join(_span(t) for _, t in equivalent.iterrows())
        lines.append(f"{_names(list(equivalent['activation']))} "
                     f"{'is' if len(equivalent) == 1 else 'are'} practically equivalent to {baseline} "
                     f"(every difference within ±{100 * equivalence:.2g} pp: {spans}).")
    diverged = tests[tests["verdict"] == DIVERGED]
    if len(diverged):
        lines.append(f"{_names(list(diverged['activation']))} cannot be compared with {baseline}: both diverged on "
                     "every seed, so there is no error rate to compare (verdict: diverged).")
    undecided = tests[tests["verdict"] == "undecided"]
    if len(undecided):
        spans = "; ".join(_span(t, with_p=True) for _, t in undecided.iterrows())
        lines.append(f"Undecided against {baseline}: {spans}. The data cannot tell these apart from {baseline} "
                     f"yet.{_advice(tests, undecided, seeds, alpha, design)}")
    top_line = _top(top)
    if top_line:
        lines.append(top_line)
    return [f"{head}:"] + lines


def family_line(tests: pd.DataFrame, baseline: str, alpha: float, family: str = "setting") -> str:
    """Which comparisons Holm corrects over, and what that means across settings."""
    if tests.empty:
        return ""
    count = tests["setting"].nunique()
    metrics = tests["metric"].nunique() if "metric" in tests else 1
    if family == "all" and metrics > 1:  # each metric's tests are one family across its settings
        return (f"Holm corrects over all comparisons with {baseline} of each metric across its settings "
                f"({metrics} families): the chance of a false verdict is at most {100 * alpha:.3g}% per metric, up "
                f"to {min(100, 100 * metrics * alpha):.3g}% for the whole report.")
    if family == "all" or count == 1:
        what = f"all {len(tests)} comparisons" if len(tests) > 1 else "the 1 comparison"
        return (f"Holm corrects over {what} with {baseline}"
                + (f" across the {count} settings" if count > 1 else "") + f": the chance of any false better/worse "
                f"verdict in this report is at most {100 * alpha:.3g}%.")
    return (f"Holm corrects over the comparisons with {baseline} within each setting ({count} families): the "
            f"chance of a false verdict is at most {100 * alpha:.3g}% per setting, up to "
            f"{min(100, 100 * count * alpha):.3g}% for the whole report (a report built with family='all' "
            "corrects across every setting).")


def verdict_lines(aggregate: pd.DataFrame, tests: pd.DataFrame, top: dict, ranks: dict, baseline: str,
                  equivalence: float, alpha: float = ALPHA, design: dict | None = None,
                  family: str = "setting", family_tests: pd.DataFrame | None = None) -> list[str]:
    """Every sentence of the Verdict section. ``design``: a --seeds auto sweep's
    (meta ``sequential``), whose margin and levels the tests used. ``family_tests``:
    every test of the report, for the family line (default ``tests``): a folder that
    also holds other workloads' settings has their families too."""
    if aggregate.empty:
        return ["No finished runs yet: nothing to compare. Runs that failed are listed in runs.csv with their "
                "errors."]
    lines = []
    if "setting" not in aggregate:
        aggregate = aggregate.assign(setting=aggregate["model"] + " / " + aggregate["dataset"])
    for setting, group in aggregate.groupby("setting", sort=False):
        part = tests[tests["setting"] == setting] if len(tests) else tests
        # the design's words only where its looks judged this setting (another's runs in the folder: fixed)
        looked = design if len(part) and "look" in part and part["look"].notna().any() else None
        lines += setting_lines(setting, group, part, top.get(setting), baseline, equivalence, alpha, looked)
    compared = tests[tests["verdict"] != DIVERGED] if len(tests) and "verdict" in tests else tests
    counted = tests if family_tests is None or not len(family_tests) else family_tests
    family_text = family_line(counted, baseline, alpha, family) if len(compared) and "setting" in tests else ""
    if family_text:
        lines.append(family_text)
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


def marks_legend(baseline: str, alpha: float = ALPHA, design: dict | None = None) -> str:
    """The marks' legend with the level actually tested (for the console table's title:
    afbench.cli prints it; render.MARKS is the report's longer version)."""
    level = (f"group-sequential over {len(design['looks'])} looks, {100 * alpha:.3g}% familywise" if design
             else f"p < {alpha:.3g}")
    return (f"▲ / ▼ error significantly worse / better than {baseline} (paired permutation test, Holm, {level}); "
            "bold: top group (95% confidence set for the best)")
