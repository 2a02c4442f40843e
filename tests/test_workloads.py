"""Issue 26: one workload contract, one training step, and the new task families."""

import importlib
import math
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import special

from afbench import data as datasets
from afbench import workloads
from afbench.config import RunConfig
from afbench.engine import train as engine
from afbench.engine.step import Step, model_for
from afbench.errors import AfbenchError
from afbench.results import Status
from afbench.store.database import Store
from afbench.sweep import Grid, LocalBackend, Runtime, execute

FIXTURES = Path(__file__).parent / "fixtures"
QUIET = Runtime(progress=False, workers=1, stack=1, cost="off")
FAMILIES = ("charlm", "inr", "pinn", "regression")


def config_for(name: str, **changes) -> RunConfig:
    return RunConfig(**{**workloads.get(name).settings(), "latency_samples": 5, **changes})


@pytest.fixture(scope="module")
def prepared():
    return {name: datasets.prepare(workloads.load(workloads.get(name).data)) for name in FAMILIES}


# ---- the contract -------------------------------------------------------------------------

def test_every_workload_names_one_primary_metric_and_its_direction():
    expected = {"classification": ("error_rate", False), "charlm": ("bpc", False), "inr": ("psnr", True),
                "pinn": ("rel_l2_error", False), "regression": ("mse", False)}
    for name, (metric, higher) in expected.items():
        primary = workloads.get(name).primary
        assert (primary.name, primary.higher_is_better) == (metric, higher)
    rows = {r["workload"]: r for r in workloads.rows()}
    assert {"charlm-large", "inr-large", "pinn-large", "regression-large"} <= set(rows)
    assert rows["inr"]["direction"] == "higher is better" and rows["charlm"]["available"] is True


def test_metric_direction_decides_what_reaching_a_target_means():
    lower, higher = workloads.Metric("bpc", False), workloads.Metric("psnr", True)
    assert lower.reached(2.9, 3.0) and not lower.reached(3.1, 3.0)
    assert higher.reached(25.5, 25.0) and not higher.reached(24.0, 25.0)
    assert not higher.reached(float("nan"), 25.0) and not higher.reached(30.0, None)


def test_an_unknown_workload_names_the_known_ones():
    with pytest.raises(AfbenchError, match="charlm"):
        workloads.get("charlmm")


def test_classification_keys_are_those_of_0_2_0():
    # The new field is left out of the key at its default: every stored key stays.
    assert RunConfig(activation="tanh", seed=3).key() == "24b00c2c6afae5fa"
    assert RunConfig(workload="charlm").key() != RunConfig().key()
    assert "workload" not in RunConfig().identity()


def test_a_database_written_by_afbench_0_2_0_resumes_without_retraining_and_retrains_identically(tmp_path):
    shutil.copy(FIXTURES / "results-v0.2.0.sqlite", tmp_path / "results.sqlite")
    grid = Grid(RunConfig(epochs=2, latency_samples=20), ("relu", "tanh"), seeds=(0, 1))
    outcome = execute(grid, tmp_path, LocalBackend(QUIET), device="cpu")
    assert outcome.counts == {"ran": 0, "skipped": 4, "failed": 0}
    store = Store(tmp_path)
    stored = {r.key: r for r in store.records()}
    store.close()
    assert set(stored) == {c.key() for c in outcome.configs}
    # The shared step trains exactly what 0.2.0 trained: same loss and predictions, bit for bit.
    config = next(c for c in outcome.configs if c.activation == "tanh" and c.seed == 1)
    again = engine.train(config, datasets.prepare(workloads.load("digits")))
    old = stored[config.key()].summary
    assert again.summary.test_loss == old.test_loss and again.summary.confusion == old.confusion
    assert again.summary.primary_metric == "error_rate" and again.summary.higher_is_better is False
    assert again.summary.primary_value == old.error_rate


# ---- one step -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ("classification",) + FAMILIES)
def test_the_cost_profile_steps_the_model_and_step_that_train(name, prepared):
    cost_profile = importlib.import_module("afbench.cost.profile")  # the module, not the function

    config = config_for(name, activation="gelu", allow_partial=name == "classification")
    data = datasets.prepare(workloads.load("digits")) if name == "classification" else prepared[name]
    trainer = engine._trainer([config], data, [engine.build_model(config, data)], stacked=False)
    subject = cost_profile._build("gelu", config, data, data.train.x.device)
    assert [type(m) for m in subject.model.modules()] == [type(m) for m in trainer.model.modules()]
    assert type(subject.step) is type(trainer.step) and subject.step.loss_fn == trainer.step.loss_fn
    assert type(subject.step.autocast) is type(trainer.step.autocast)
    formats = lambda model: [p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters()
                             if p.dim() == 4]
    assert formats(subject.model) == formats(trainer.model)
    for a, b in zip(subject.model.state_dict().values(), trainer.model.state_dict().values()):
        assert torch.equal(a, b)  # the same seeded weights, built by the same function
    assert subject.config.allow_partial == config.allow_partial


def test_a_conv_model_steps_channels_last_in_training_and_in_the_cost_profile():
    cost_profile = importlib.import_module("afbench.cost.profile")
    config = RunConfig(model="lenet", latency_samples=5)
    images = datasets.Split(torch.randn(64, 1, 16, 16), torch.arange(64) % 10)
    data = datasets.Prepared("noise", tuple("0123456789"), images, images, None, (0.0,), (1.0,))
    subject = cost_profile._build("relu", config, data, data.train.x.device)
    conv = next(m for m in subject.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert model_for(config, data).state_dict().keys() == subject.model.state_dict().keys()


# ---- the families -----------------------------------------------------------------------------

def test_the_corpus_is_pinned_and_text_files_are_accepted(tmp_path):
    from afbench.workloads import charlm

    text = charlm.corpus_text(charlm.CORPUS)
    assert len(text) > 700_000 and "iris" in text.lower() and "def fit" in text
    own = tmp_path / "own.txt"
    own.write_text("to be or not to be, that is the question. " * 200)
    data = datasets.prepare(workloads.load(f"text:{own}"))
    assert data.train.x.shape[1] == charlm.CONTEXT and torch.equal(data.train.x[0, 1:], data.train.y[0, :-1])
    with pytest.raises(AfbenchError, match="does not exist"):
        workloads.load(f"text:{tmp_path / 'missing.txt'}")


def test_gated_feed_forward_blocks_match_the_plain_ones_in_parameters(prepared):
    counts = {}
    for act in ("relu", "gelu", "geglu", "swiglu", "reglu"):
        model = engine.build_model(config_for("charlm", activation=act), prepared["charlm"])
        counts[act] = sum(p.numel() for p in model.parameters())
        ffn = model.blocks[0].ffn
        assert ffn.hidden == (512 if act in ("relu", "gelu") else 341)  # 2/3 of the width for a gated unit
    assert counts["relu"] == counts["gelu"]
    for gated in ("geglu", "swiglu", "reglu"):
        assert abs(counts[gated] - counts["relu"]) / counts["relu"] < 0.001


def test_a_gated_block_computes_act_of_xw_times_xv(prepared):
    model = engine.build_model(config_for("charlm", activation="swiglu"), prepared["charlm"])
    ffn = model.blocks[0].ffn
    x = torch.randn(2, 5, 128)
    w, v = ffn.fc_in.weight[:341], ffn.fc_in.weight[341:]
    bw, bv = ffn.fc_in.bias[:341], ffn.fc_in.bias[341:]
    expected = (torch.nn.functional.silu(x @ w.T + bw) * (x @ v.T + bv)) @ ffn.fc_out.weight.T + ffn.fc_out.bias
    torch.testing.assert_close(ffn(x), expected, rtol=1e-5, atol=1e-5)


def test_the_model_is_causal(prepared):
    model = engine.build_model(config_for("charlm", activation="relu"), prepared["charlm"]).eval()
    x = prepared["charlm"].test.x[:1].clone()
    changed = x.clone()
    changed[0, 100:] = (changed[0, 100:] + 1) % len(prepared["charlm"].classes)
    torch.testing.assert_close(model(x)[0, :100], model(changed)[0, :100])


def test_bits_per_character_of_a_uniform_model_is_log2_of_the_vocabulary(prepared):
    workload = workloads.get("charlm")
    split = prepared["charlm"].test
    vocab = len(prepared["charlm"].classes)

    class Uniform(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(*x.shape, vocab)

    assert workload.evaluate(Uniform(), split)["bpc"] == pytest.approx(math.log2(vocab))


def test_siren_has_its_own_initialisation_and_frequency(prepared):
    from afbench.workloads import inr

    model = engine.build_model(config_for("inr", activation="sin(x)"), prepared["inr"])
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert float(linears[0].weight.detach().abs().max()) <= 1 / 2  # U(-1/in, 1/in), in = 2
    assert float(linears[1].weight.detach().abs().max()) <= math.sqrt(6 / 128) / inr.W0
    assert any(isinstance(m, inr.Scale) and m.factor == 30.0 for m in model)
    relu = engine.build_model(config_for("inr", activation="relu"), prepared["inr"])
    assert not any(isinstance(m, inr.Scale) for m in relu)
    pe = engine.build_model(config_for("inr", activation="relu", model="mlp-pe"), prepared["inr"])
    assert isinstance(pe[0], inr.Fourier) and pe[1].in_features == 2 * inr.FOURIER_FEATURES


def test_psnr_is_ten_log10_of_one_over_the_mse_on_unit_grey_levels(prepared):
    split = prepared["inr"].test
    grey01 = (split.y + 1) / 2
    noisy = grey01 + 0.05 * torch.randn(grey01.shape, generator=torch.Generator().manual_seed(0))
    expected = 10 * np.log10(1 / float(((noisy - grey01) ** 2).mean()))

    class Fixed(torch.nn.Module):  # answers the noisy levels, batch after batch in order
        done = 0

        def forward(self, x):
            out = 2 * noisy[self.done:self.done + len(x)] - 1
            self.done += len(x)
            return out

    assert workloads.get("inr").evaluate(Fixed(), split)["psnr"] == pytest.approx(expected, rel=1e-4)


def test_the_poisson_data_match_the_exact_solution():
    data = workloads.load("poisson2d")
    points, (source, boundary) = data.train.x, data.train.y.T
    u = torch.sin(math.pi * points[:, 0]) * torch.sin(math.pi * points[:, 1])
    torch.testing.assert_close(source, 2 * math.pi ** 2 * u)
    on_edge = (points == 0).any(1) | (points == 1).any(1)
    assert torch.equal(on_edge, boundary.bool())


def test_the_laplacian_is_exact_for_a_known_function():
    from afbench.workloads.pinn import laplacian

    points = torch.rand(50, 2, dtype=torch.float64).requires_grad_(True)
    u = (points[:, :1] ** 3) * torch.sin(points[:, 1:])  # Laplacian: 6x sin y - x^3 sin y
    x, y = points[:, :1].detach(), points[:, 1:].detach()
    torch.testing.assert_close(laplacian(u, points).detach(), 6 * x * torch.sin(y) - x ** 3 * torch.sin(y))


def test_every_zoo_activation_is_differentiated_twice_or_refused_before_training(prepared):
    from afbench import activations

    workload = workloads.get("pinn")
    refused = {}
    for name in activations.names():
        config = config_for("pinn", activation=name, epochs=1, batch_size=2400)
        try:
            model = engine.build_model(config, prepared["pinn"])
        except AfbenchError as error:
            refused[name] = str(error)
            continue
        points = prepared["pinn"].train  # every 10th point: interior and boundary both
        loss, _ = workload.loss(lambda m, x: m(x), model, points.x[::10], points.y[::10])
        loss.backward()  # the double backward itself, through the activation's second derivative
        assert math.isfinite(float(loss)), name
    assert all("second derivatives" in why for why in refused.values())
    assert "tanh" not in refused and "relu" not in refused and "silu" not in refused


def test_regression_targets_are_the_scipy_functions():
    data = workloads.load("special:j0")
    assert float(data.train.x.min()) == -1 and float(data.train.x.max()) == 1
    # 1024 uniform draws on [0, 20] reach within about 0.05 of either end: x back in the domain
    raw = (data.train.x[:, 0].double() + 1) / 2 * 20
    y = data.train.y[:, 0].double() * data.std[0] + data.mean[0]
    np.testing.assert_allclose(y.numpy(), special.j0(raw.numpy()), atol=0.05)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_trains_and_records_its_primary_metric(name, prepared):
    act = "relu" if name in ("charlm", "inr") else "tanh"  # no kernel to compile: the test is of the bookkeeping
    data = prepared[name]
    if name == "charlm":  # a few windows: the test is of the bookkeeping, not the model
        data = datasets.Prepared(data.name, data.classes, datasets.Split(data.train.x[:32], data.train.y[:32]),
                                 datasets.Split(data.test.x[:4], data.test.y[:4]), None, data.mean, data.std)
    result = engine.train(config_for(name, activation=act, epochs=1), data)
    summary = result.summary
    primary = workloads.get(name).primary
    assert result.status == Status.DONE
    assert summary.primary_metric == primary.name and summary.higher_is_better == primary.higher_is_better
    assert summary.primary_value == summary.metrics[primary.name] == result.epochs[-1].test_metric
    assert summary.accuracy is None and math.isnan(result.epochs[-1].train_acc)


def test_a_sweep_runs_a_workload_and_stores_its_metric(tmp_path):
    base = config_for("regression", epochs=1)
    outcome = execute(Grid(base, ("relu", "tanh"), seeds=(0, 1)), tmp_path, LocalBackend(QUIET), device="cpu")
    assert outcome.counts == {"ran": 4, "skipped": 0, "failed": 0}
    store = Store(tmp_path)
    records = store.records()
    store.close()
    assert {r.summary.primary_metric for r in records} == {"mse"}
    assert all(r.config["workload"] == "regression" and r.config["dataset"] == "special:j0" for r in records)


def test_train_subset_trains_a_workload_on_the_same_fewer_rows_every_time():
    # --train-subset was ignored for workload data before: the suite sizes charlm with it
    full = workloads.load("special:j0")
    a, b = datasets.prepare(full, train_subset=100), datasets.prepare(full, train_subset=100)
    assert len(a.train.y) == 100 and torch.equal(a.train.x, b.train.x)
    rows = {tuple(r.tolist()) for r in full.train.x}
    assert all(tuple(r.tolist()) in rows for r in a.train.x)  # rows of the full split, none made up
    assert torch.equal(a.test.x, full.test.x)  # the test split is never cut
    assert len(datasets.prepare(full, train_subset=10 ** 9).train.y) == len(full.train.y)
