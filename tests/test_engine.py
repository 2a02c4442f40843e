"""The engine: each metric's definition on known numbers, and training behaviour."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion, precision_recall_fscore_support
from torch import nn

from afbench.config import RunConfig
from afbench.engine import metrics
from afbench.engine.train import build_model, make_optimizer, train
from afbench.errors import AfbenchError


def test_time_to_target_is_the_first_epoch_at_or_above_it():
    accuracy, cumulative = [0.90, 0.97, 0.98, 0.975, 0.99], [1.0, 2.5, 4.0, 5.5, 7.0]
    assert metrics.time_to_target(accuracy, cumulative, 0.98) == (3, 4.0)
    assert metrics.time_to_target(accuracy, cumulative, 0.995) == (None, None)
    assert metrics.time_to_target(accuracy, cumulative, None) == (None, None)


def test_classification_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 500), rng.integers(0, 5, 500)
    p[:200] = y[:200]  # better than chance
    confusion = metrics.confusion_matrix(torch.tensor(y), torch.tensor(p), 5)
    np.testing.assert_array_equal(confusion, sk_confusion(y, p, labels=range(5)))
    report = metrics.classification_report(confusion)
    precision, recall, f1, _ = precision_recall_fscore_support(y, p, average="macro", zero_division=0)
    assert (report["precision"], report["recall"], report["f1"]) == pytest.approx((precision, recall, f1))
    assert report["accuracy"] == pytest.approx((y == p).mean()) and report["error_rate"] == pytest.approx(
        1 - (y == p).mean())


def test_a_class_never_predicted_has_zero_precision():
    confusion = metrics.confusion_matrix(torch.tensor([0, 1, 2]), torch.tensor([0, 0, 2]), 3)
    precision, recall, f1, _ = precision_recall_fscore_support([0, 1, 2], [0, 0, 2], average="macro",
                                                               zero_division=0)
    assert metrics.classification_report(confusion)["f1"] == pytest.approx(f1)


def test_latency_summary_in_milliseconds():
    summary = metrics.latency_summary([0.001, 0.002, 0.003, 0.010])
    assert summary["ms_per_sample"] == pytest.approx(4.0) and summary["ms_per_sample_median"] == pytest.approx(2.5)
    assert summary["ms_per_sample_sd"] == pytest.approx(np.std([1, 2, 3, 10], ddof=1))


def test_training_is_reproducible_with_a_seed(digits):
    config = RunConfig(activation="relu", epochs=2, batch_size=64, seed=3)
    a, b = train(config, digits), train(config, digits, latency=False)  # a sweep's cost profile times b's latency
    for key in ("train_loss", "test_loss", "test_acc"):
        assert [getattr(e, key) for e in a.epochs] == [getattr(e, key) for e in b.epochs]
    assert a.summary.error_rate == b.summary.error_rate and a.summary.ms_per_sample > 0
    assert b.summary.ms_per_sample is None and b.summary.throughput_per_s is None
    assert "cost profile" in b.provenance["latency"] and "latency" not in a.provenance
    c = train(config.with_(seed=4), digits)
    assert [e.train_loss for e in c.epochs] != [e.train_loss for e in a.epochs]


def test_a_run_records_every_epoch_and_its_provenance(digits):
    seen = []
    result = train(RunConfig(activation="tanh", epochs=3, batch_size=64, target=0.5), digits, on_epoch=seen.append)
    assert [e.epoch for e in seen] == [1, 2, 3] and result.status == "done"
    assert result.summary.total_train_s == pytest.approx(sum(e.epoch_train_s for e in seen))
    assert all(seen[i].cum_train_s < seen[i + 1].cum_train_s for i in range(2))
    assert result.summary.epoch_to_target == 1 and result.summary.time_to_target_s == seen[0].cum_train_s
    for key in ("afbench", "torch", "device_name", "threads", "git_revision"):
        assert key in result.provenance
    assert result.summary.ms_per_sample > 0 and result.summary.throughput_per_s > 0
    assert np.array(result.summary.confusion).sum() == len(digits.test)


def test_divergence_is_a_result_not_a_crash(digits):
    result = train(RunConfig(activation="relu", epochs=3, optimizer="sgd", lr=1e12, batch_size=64), digits)
    assert result.status == "diverged" and result.summary.diverged_epoch == 1
    assert math.isnan(result.epochs[0].train_loss) or math.isinf(result.epochs[0].train_loss)


def test_same_seed_gives_the_same_initial_weights_across_activations(digits):
    relu = build_model(RunConfig(activation="relu", seed=5), digits)
    tanh = build_model(RunConfig(activation="tanh", seed=5), digits)
    for a, b in zip(relu.state_dict().values(), tanh.state_dict().values()):
        assert torch.equal(a, b)


def test_learned_activation_parameters_get_no_weight_decay(digits):
    config = RunConfig(activation="prelu", weight_decay=0.1)
    model = build_model(config, digits)
    optimizer = make_optimizer(config, model)
    decays = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    prelu = [m.weight for m in model.modules() if isinstance(m, nn.PReLU)]
    assert prelu and all(decays[id(p)] == 0.0 for p in prelu)
    assert sum(d == 0.1 for d in decays.values()) == 6  # three linear layers: weight and bias each


def test_bad_settings_are_named():
    with pytest.raises(AfbenchError, match="target is an accuracy"):
        RunConfig(target=98)
    with pytest.raises(AfbenchError, match="unknown optimizer"):
        RunConfig(optimizer="rmsprop")


@pytest.mark.parametrize("stacked", [False, True])
def test_the_warm_up_leaves_weights_buffers_and_gradients_as_built(digits, stacked):
    from afbench.engine.stack import StackedSequential
    from afbench.engine.trainer import StackTrainer, Trainer, on_device

    configs = [RunConfig(activation="prelu", norm="batch", batch_size=64, seed=s) for s in (0, 1)]
    if stacked:
        model = on_device(StackedSequential([build_model(c, digits) for c in configs]), digits)
        trainer = StackTrainer(configs, digits, model)
    else:
        model = on_device(build_model(configs[0], digits), digits)
        trainer = Trainer(configs[0], digits, model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tensors = [id(p) for p in model.parameters()]
    trainer.warm_up()
    after = model.state_dict()
    assert any("running_mean" in k for k in after)  # BatchNorm's statistics are among what is checked
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [id(p) for p in model.parameters()] == tensors and all(p.grad is None for p in model.parameters())


def test_timed_steps_are_full_batches_even_from_a_small_training_split(digits, monkeypatch):
    """12 calibration steps of a 200-image sweep were 2 steps: what a stacking gain or a
    worker layout was decided on measured noise. The split's rows repeat, in order."""
    from afbench.data import Prepared, Split
    from afbench.engine import train as engine

    small = Prepared(digits.name, digits.classes, Split(digits.train.x[:200], digits.train.y[:200]), digits.test,
                     None, digits.mean, digits.std)
    seen = []
    real = engine._trainer
    monkeypatch.setattr(engine, "_trainer", lambda configs, data, *a, **k: seen.append(data) or real(configs, data,
                                                                                                      *a, **k))
    engine.time_training_steps(RunConfig(batch_size=64), small, 12)
    assert len(seen[0].train.y) == 12 * 64
    assert torch.equal(seen[0].train.x[200:400], small.train.x)  # the same rows again, in order
