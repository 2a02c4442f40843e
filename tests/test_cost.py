"""afbench cost: saved bytes by hand count, ONNX failures as results, fp16 overflow,
interleaved rounds, ratio CIs against scipy, the cost table's round trip."""

import argparse
import math
import sys

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from afbench.cost import memory, numerics, timing
from afbench.store.cost import COLUMNS, load_cost, save_cost


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_saved_bytes_match_a_hand_count_with_the_relu_output_counted_once():
    # Hand count, float32 = 4 bytes, batch B = 5. The first Linear saves its input x
    # (B x 4) for the weight gradient; x needs no gradient, so its weight is not saved.
    # ReLU saves its output (B x 8); the second Linear saves the same tensor as its
    # input: one storage. Weights are parameters and left out.
    batch = 5
    x = torch.randn(batch, 4)
    assert memory.saved_bytes(_mlp(), x) == batch * 4 * 4 + batch * 8 * 4  # 240, not 400
    # cross-entropy adds log_softmax's output (B x 3 float32), the int64 targets (B x 8 bytes)
    # and nll_loss's total weight (one float32).
    y = torch.randint(0, 3, (batch,))
    assert memory.saved_bytes(_mlp(), x, y) == 240 + batch * 3 * 4 + batch * 8 + 4


def test_saved_bytes_count_a_storage_once_even_when_saved_through_views():
    class Twice(nn.Module):
        def forward(self, x):
            h = torch.tanh(x)           # saves its output h
            return (h[:, :2] * h[:, 2:]).sum(1)  # saves two views of h: same storage

    x = torch.randn(6, 4, requires_grad=True)
    assert memory.saved_bytes(Twice(), x) == 6 * 4 * 4


def test_forward_flops_of_a_linear_layer():
    # torch counts 2 FLOPs per multiply-add: 2 x B x in x out
    assert memory.forward_flops(nn.Linear(10, 7), torch.randn(3, 10)) == 2 * 3 * 10 * 7


class _Bessel(nn.Module):
    """An activation built on an op with no ONNX mapping (aten::i0)."""

    def forward(self, x):
        return torch.special.i0(x) - 1


def test_an_activation_onnx_cannot_export_is_reported_not_raised():
    pytest.importorskip("onnxruntime")
    from afbench import models
    from afbench.cost import deploy

    bad = deploy.check_onnx(models.build("mlp", _Bessel, (1, 8, 8), 10), torch.randn(16, 1, 8, 8))
    assert not bad.ok and bad.reason.startswith("export failed") and "i0" in bad.reason
    assert "\n" not in bad.reason and bad.opset == deploy.OPSET
    good = deploy.check_onnx(models.build("mlp", "mish", (1, 8, 8), 10), torch.randn(16, 1, 8, 8))
    assert good.ok and good.reason == "" and good.max_abs_error < 1e-4


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime"])
def test_a_missing_onnx_package_is_named_with_its_extra(monkeypatch, missing):
    from afbench import models
    from afbench.cost import deploy

    monkeypatch.setitem(sys.modules, missing, None)  # import now raises ImportError
    found = deploy.check_onnx(models.build("mlp", "relu", (1, 8, 8), 10), torch.randn(4, 1, 8, 8))
    assert not found.ok and found.reason == f"{missing} is not installed: pip install 'afbench[onnx]'"


def test_fp16_softplus_overflow_is_flagged_where_exp_passes_65504():
    naive = numerics.numerics(lambda x: torch.log1p(torch.exp(x)), torch.sigmoid, "fp16")
    assert any("forward overflow" in f for f in naive.flags)
    first = float(naive.flags[0].split("first x=")[1])
    assert math.log(65504) <= first < math.log(65504) + 0.02  # ln(65504) = 11.09
    # bf16 shares float32's exponent range: exp overflows only past ln(3.39e38) = 88.7
    wide = numerics.numerics(lambda x: torch.log1p(torch.exp(x)), torch.sigmoid, "bf16")
    assert float(wide.flags[0].split("first x=")[1]) > 88.7
    # the same softplus given as a formula (not registered: forward only) is flagged too
    formula = numerics.activation_numerics("log(1 + exp(x))")["fp16"]
    assert formula.derivative_error is None and any("forward overflow" in f for f in formula.flags)
    # torch's own Softplus returns x above its threshold of 20: no overflow in fp16
    assert numerics.activation_numerics("softplus")["fp16"].flags == ()


def test_numerics_error_is_in_units_of_epsilon_and_empty_for_maxout():
    relu = numerics.activation_numerics("relu")
    assert relu["fp16"].forward_error == 0.0  # exact in every format
    # float16 rounds tanh's output once more than float64: at most ~half an ulp, scored in eps
    assert 0.0 < numerics.activation_numerics("tanh")["fp16"].forward_error <= 1.0
    maxout = numerics.activation_numerics("maxout")
    assert all(math.isnan(v.forward_error) and "not elementwise" in v.reason for v in maxout.values())


def test_rounds_are_shuffled_and_every_activation_gets_the_same_count():
    names = ["relu", "tanh", "elu", "mish", "selu"]
    calls = []
    rng = np.random.default_rng(1)

    def measure(name):
        calls.append(name)
        return {"step_ms": (1 + names.index(name) / 10) * rng.lognormal(0, 0.2)}

    rounds = timing.run_rounds(names, measure, "relu", budget_s=1e9, max_rounds=12, seed=3)
    assert rounds.count == 12 and rounds.stop == "max_rounds"  # noise 20%: no convergence in 12
    assert all(len(rounds.times[n]) == 12 for n in names)
    assert all(sorted(order) == sorted(names) for order in rounds.orders)
    assert len({tuple(o) for o in rounds.orders}) > 1  # shuffled, not one fixed order
    assert calls == [n for order in rounds.orders for n in order]
    again = timing.run_rounds(names, lambda n: {"step_ms": 1.0}, "relu", 1e9, max_rounds=12, min_rounds=12, seed=3)
    assert again.orders == rounds.orders  # the seed fixes the orders


def test_rounds_stop_when_converged_or_when_the_budget_is_spent():
    steady = timing.run_rounds(["a", "b"], lambda n: {"step_ms": 2.0 if n == "b" else 1.0}, "a", 1e9)
    assert steady.stop == "converged" and steady.count == timing.MIN_ROUNDS
    assert steady.ratio_ci("b") == pytest.approx((2.0, 2.0, 2.0))
    ticks = iter(range(1000))
    rng = np.random.default_rng(0)
    noisy = timing.run_rounds(["a", "b"], lambda n: {"step_ms": rng.lognormal(0, 1)}, "a", budget_s=7,
                              clock=lambda: float(next(ticks)))
    assert noisy.stop == "budget" and noisy.count == 7  # one tick per round


def test_ratio_ci_matches_scipy_t_interval_on_log_ratios():
    rng = np.random.default_rng(7)
    base = rng.lognormal(0, 0.1, 30)
    act = 1.3 * base * rng.lognormal(0, 0.05, 30)
    centre, low, high = timing.ratio_ci(act / base)
    interval = stats.ttest_1samp(np.log(act / base), 0).confidence_interval(0.95)
    assert (low, high) == pytest.approx((math.exp(interval.low), math.exp(interval.high)), rel=1e-12)
    assert centre == pytest.approx(stats.gmean(act / base), rel=1e-12)
    assert timing.within(low, centre, high, 0.03) == (high / centre - 1 <= 0.03 and 1 - low / centre <= 0.03)


def _row(activation, threads=2, **extra):
    row = {k: None for k in COLUMNS}
    row.update(activation=activation, model="lenet", dataset="mnist", input_shape="1x28x28", device="cpu",
               threads=threads, batch_size=128, afbench_version="0.1.0", profile_id="p1", measured_at=1.0,
               step_ms=12.5, step_ratio=1.25, step_ratio_low=1.2, step_ratio_high=1.3, bf16_error=float("nan"),
               onnx=True, onnx_error="")
    row.update(extra)
    return row


def _table_row(activation, **extra):
    """A cost row as run_cost returns it, with wide numbers: 4-digit CIs, a big model."""
    return _row(activation, **{**dict(
        baseline="relu", step_ratio_low=0.9688, step_ratio_high=1.027, forward_ms=0.345, backward_ms=0.456,
        optimizer_ms=0.178, latency_ms=0.0532, latency_ms_low=0.05181, latency_ms_high=0.05474,
        latency_batch_ms=0.106, saved_bytes_per_sample=123456.0, peak_bytes=1_234_567_890, params=11_689_512,
        flops=1.82e9, bf16_error=128.0, fp16_error=1017.5, bf16_flags="", fp16_flags="", price_per_hour=2.0,
        train_cost=1.43e-05, cost_per_1000_inferences=2.96e-05), **extra})


def test_the_cost_table_fits_80_columns_and_folds_no_row():
    """`afbench cost` printed 14 columns in Markdown rows up to 170 wide, folded at 80.
    Now: blocks of columns, each row whole, every line within 80, for the default
    activations (S1), a 22-character name and a formula long enough for an alias."""
    from afbench.cli.cost import table_lines
    from afbench.sweep.grid import S1_ACTIVATIONS

    formula = "x * sigmoid(1.5 * x) + 0.25 * tanh(x)"
    names = list(S1_ACTIVATIONS) + ["relu_softsign", "a_name_of_22_character", formula]
    rows = [_table_row(n) for n in names]
    rows[-1].update(onnx=False, onnx_error="Exporting the operator 'aten::special_i0' to ONNX opset version 17 "
                                           "is not supported.\ntraceback ...", fp16_flags="forward overflow")
    rows[1].update(step_flag="its rounds vary by 69% (sd / mean): not published", step_ms=math.nan,
                   step_ratio=math.nan)
    lines = table_lines(rows)
    assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
    shown = names[:-1] + ["a1"]
    blocks = [i for i, line in enumerate(lines) if line.startswith("activation ")]
    assert len(blocks) >= 4  # training step, inference, memory and deployment, price
    for start in blocks:  # every block has one whole row per activation, in order
        assert [line.split("  ")[0].strip() for line in lines[start + 2:start + 2 + len(names)]] == shown
    relu = [line for line in lines if line.startswith("relu  ")]
    assert "1.250 [0.9688, 1.027]" in relu[0] and "0.34/0.46/0.18" in relu[0]
    assert any("0.0532 [0.0518, 0.0547]" in line and "11,689,512" in line for line in relu)
    text = " ".join(lines)
    assert f"a1 = {formula}" in text and "onnx no: " + formula + ": Exporting the operator" in text
    assert "traceback" not in text and "1,018 (!)" in text and "step -: tanh: its rounds vary by 69%" in text
    assert "train cost" in text and "1.43e-05" in text


def test_a_cost_block_too_wide_for_80_columns_is_split_not_folded():
    from afbench.cli.cost import table_lines

    rows = [_table_row("a_name_of_22_character", latency_ms=123456.7, latency_ms_low=123400.1,
                       latency_ms_high=123500.9, latency_batch_ms=1234567.1, flops=1.23e15,
                       params=123_456_789_012)]
    lines = table_lines(rows)
    assert max(len(line) for line in lines) <= 80
    assert "inference and size (continued):" in lines


def test_cost_table_round_trips_and_filters_by_conditions(tmp_path, monkeypatch):
    import afbench
    from afbench.store.database import Store

    monkeypatch.setattr(afbench, "__version__", "0.1.0")
    store = Store(tmp_path)
    save_cost(store, [_row("relu"), _row("mish", step_ms=15.0), _row("mish", threads=1)])
    got = load_cost(store, "lenet", (1, 28, 28), ["mish"], "cpu", 2)
    assert len(got) == 1 and got[0]["step_ms"] == 15.0 and got[0]["onnx"] is True
    assert got[0]["bf16_error"] is None  # NaN is stored as null
    assert {r["activation"] for r in load_cost(store, "lenet", "1x28x28", None, "cpu", 2)} == {"relu", "mish"}
    assert load_cost(store, "lenet", (1, 28, 28), ["relu"], "cpu", 4) == []
    assert load_cost(store, "lenet", (3, 32, 32), ["relu"], "cpu", 2) == []
    assert load_cost(store, "lenet", (1, 28, 28), ["relu"], "cpu", 2, version="9.9") == []
    save_cost(store, [_row("relu", step_ms=11.0)])  # same conditions: replaced, not duplicated
    assert [r["step_ms"] for r in load_cost(store, "lenet", (1, 28, 28), ["relu"], "cpu", 2)] == [11.0]
    store.close()


def test_cost_csv_has_the_issue_columns(tmp_path):
    import csv

    from afbench.store.cost import write_csv

    path = write_csv([_row("relu", extra_column=3)], tmp_path / "cost.csv")
    header = next(csv.reader(path.open()))
    required = ("activation, model, dataset, device, threads, batch_size, params, flops, step_ms, step_ratio, "
                "step_ratio_low, step_ratio_high, forward_ms, backward_ms, optimizer_ms, latency_ms, "
                "latency_batch_ms, saved_bytes_per_sample, peak_bytes, onnx, bf16_error, fp16_error, rounds")
    assert set(required.split(", ")) <= set(header) and header[-1] == "extra_column"


def test_cost_command_parses_with_the_issue_flags():
    from afbench.cli import build_parser
    from afbench.cli.cost import add_parser, cmd_cost

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "cost" not in commands.choices:
        add_parser(commands)
    args = parser.parse_args(["cost", "--dataset", "mnist", "--model", "lenet", "--activations", "relu,mish",
                              "--threads", "2", "--budget", "30", "--price-per-hour", "1.5", "--out", "o"])
    assert (args.func, args.baseline, args.batch_size, args.threads, args.budget, args.price_per_hour) == (
        cmd_cost, None, 128, 2, 30.0, 1.5)  # None: relu, added where --activations lacks it


def test_profile_on_digits_measures_every_activation_in_paired_rounds(digits, tmp_path):
    from afbench.cost import profile, profile_for_sweep
    from afbench.config import RunConfig
    from afbench.store.database import Store

    threads_before = torch.get_num_threads()
    result = profile("mlp", digits, ["tanh", "prelu"], budget_s=0.5, price_per_hour=3.6, epochs=1,
                     check_onnx=False, threads=1)
    assert torch.get_num_threads() == threads_before and result.rows[0]["threads"] == 1
    rows = {r["activation"]: r for r in result.rows}
    assert list(rows) == ["relu", "tanh", "prelu"]  # the baseline is added first
    assert rows["relu"]["step_ratio"] == 1.0 and result.rounds.count == rows["tanh"]["rounds"] >= 2
    r = rows["prelu"]
    assert r["step_ratio_low"] <= r["step_ratio"] <= r["step_ratio_high"]
    assert r["params"] == rows["relu"]["params"] + 128 + 64  # one PReLU slope per hidden unit
    # price 3.6 per hour = 1e-3 per second: 1,000 inferences of latency_ms cost latency_ms * 1e-3
    assert r["cost_per_1000_inferences"] == pytest.approx(r["latency_ms"] * 1e-3)
    assert r["train_steps"] == math.ceil(len(digits.train) / 128)
    store = Store(tmp_path)
    configs = [RunConfig(model="mlp", activation=a) for a in ("relu", "tanh")]
    first = profile_for_sweep(configs, digits, torch.get_num_threads(), store, budget_s=0.3)
    again = profile_for_sweep(configs, digits, torch.get_num_threads(), store, budget_s=0.3)
    assert set(first) == {("mlp", "relu"), ("mlp", "tanh")}
    assert again[("mlp", "tanh")]["profile_id"] == first[("mlp", "tanh")]["profile_id"]  # reused, not remeasured
    store.close()


def _cost_args(*extra):
    from afbench.cli import build_parser
    from afbench.cli.cost import add_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "cost" not in commands.choices:
        add_parser(commands)
    return parser.parse_args(["cost", *extra])


def test_cost_command_writes_csv_figure_and_database_rows(tmp_path, capsys, monkeypatch):
    import csv
    import sqlite3

    monkeypatch.delenv("COLUMNS", raising=False)  # off a terminal: 80 columns

    args = _cost_args("--dataset", "digits", "--model", "mlp", "--activations", "tanh,mish", "--budget", "0.3",
                      "--price-per-hour", "2", "--out", str(tmp_path))
    args.func(args)
    rows = list(csv.DictReader((tmp_path / "cost.csv").open()))
    assert [r["activation"] for r in rows] == ["relu", "tanh", "mish"]
    assert all(r["onnx"] == "True" and r["onnx_opset"] == "17" for r in rows)
    assert (tmp_path / "cost.png").stat().st_size > 0
    stored = sqlite3.connect(tmp_path / "results.sqlite").execute("SELECT activation FROM cost").fetchall()
    assert sorted(a for (a,) in stored) == ["mish", "relu", "tanh"]
    printed = capsys.readouterr().out
    assert "rounds in" in printed and max(len(line) for line in printed.splitlines()) <= 80
    assert sum(line.startswith("mish ") for line in printed.splitlines()) == 4  # a whole row in each block


@pytest.mark.parametrize("flags, message", [(("--activations", "relu,nosuch"), "nosuch")])  # bad numbers:
# refused by the parser (tests/test_cli_commands.py)
def test_bad_cost_input_is_an_afbench_error(tmp_path, flags, message):
    from afbench.errors import AfbenchError

    args = _cost_args("--dataset", "digits", "--model", "mlp", "--out", str(tmp_path), *flags)
    with pytest.raises(AfbenchError, match=message):
        args.func(args)


@pytest.mark.slow
def test_lenet_mnist_cost_profile_of_the_issue(mnist_dir, tmp_path):
    """The issue's command, on a short budget: every activation exports, LeNet's sizes are right."""
    from afbench.cost import run_cost

    names = ["relu", "tanh", "selu", "prelu", "elu", "leaky_relu", "mish", "relu_softsign"]
    result = run_cost(tmp_path, "mnist", "lenet", names, data_dir=mnist_dir, budget_s=10)
    rows = {r["activation"]: r for r in result.rows}
    assert all(r["onnx"] for r in rows.values()) and result.rounds.count >= 2
    assert rows["relu"]["params"] == 21840  # as afbench.models' docstring states
    # forward FLOPs by hand: conv1 10x24x24 outputs x 25 MACs, conv2 20x8x8 x 250, fc 320x50 + 50x10; 2 per MAC
    assert rows["relu"]["flops"] == 2 * (10 * 24 * 24 * 25 + 20 * 8 * 8 * 250 + 320 * 50 + 50 * 10)


# ---- issue 29: measurements a busy machine cannot fake --------------------------------------------------


def test_a_step_far_from_the_sum_of_its_parts_or_with_wild_rounds_is_flagged():
    from statistics import mean, stdev

    from afbench.cost.profile import step_flag

    # The issue's case: a 12.2 ms step whose forward, backward and optimizer add up to 2.5 ms.
    assert "parts add up to 2.5 ms" in step_flag(12.2, 2.5, [12.0, 12.4, 12.2])
    assert step_flag(2.5, 2.4, [2.5, 2.6, 2.45]) == ""  # within 50% of its parts, rounds agree
    rounds = [1.0, 5.0, 1.0, 5.0]
    spread = stdev(rounds) / mean(rounds)  # 0.77, written out apart from the code under test
    assert f"vary by {100 * spread:.0f}%" in step_flag(3.0, 3.0, rounds)


def test_flagged_rows_publish_no_step_figure_and_a_flagged_baseline_takes_the_ratios():
    from afbench.cost.profile import withhold_flagged

    def row(name, flag=""):
        return {"activation": name, "step_ms": 2.0, "step_ms_low": 1.9, "step_ms_high": 2.1, "step_ratio": 1.1,
                "step_ratio_low": 1.0, "step_ratio_high": 1.2, "train_cost": None, "step_flag": flag}

    rows = withhold_flagged([row("relu"), row("tanh", "step 12 ms but its parts add up to 2 ms")], "relu")
    assert rows[0]["step_ms"] == 2.0 and rows[0]["step_flag"] == ""
    assert math.isnan(rows[1]["step_ms"]) and math.isnan(rows[1]["step_ratio"]) and rows[1]["step_ms_measured"] == 2.0
    assert "not published" in rows[1]["step_flag"]
    rows = withhold_flagged([row("relu", "its rounds vary by 90% (sd / mean)"), row("tanh")], "relu")
    assert math.isnan(rows[1]["step_ratio"]) and "baseline relu's step is flagged" in rows[1]["step_flag"]


def test_a_profile_defaults_to_one_thread_states_its_scope_and_flags_a_budget_stop(digits):
    from afbench.cost import profile

    torch.set_num_threads(2)
    result = profile("mlp", digits, ["tanh"], budget_s=0.0, check_onnx=False, check_numerics=False)
    assert torch.get_num_threads() == 2  # restored
    for r in result.rows:
        assert (r["threads"], r["threads_from"], r["ci_covers"]) == (1, "default", "one process")
        assert r["stop"] == "budget" and "stopped on its time budget after 2 rounds" in r["profile_flag"]
        assert r["latency_mean_ms"] > 0 and r["latency_batch_mean_ms"] > 0  # mean beside the median
    given = profile("mlp", digits, ["tanh"], budget_s=0.0, threads=2, check_onnx=False, check_numerics=False)
    assert {(r["threads"], r["threads_from"]) for r in given.rows} == {(2, "given")}
