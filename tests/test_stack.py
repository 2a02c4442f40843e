"""A stack of k models must compute exactly what the k models compute alone."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from afbench import models
from afbench.config import RunConfig
from afbench.engine import train as engine
from afbench.engine.stack import StackedSequential
from afbench.errors import AfbenchError
from afbench.sweep import LocalBackend, Runtime, calibrate
from afbench.sweep.grid import Grid
from afbench.store.database import Store

SHAPES = {"mlp": (1, 12, 12), "lenet": (1, 20, 20), "vgg11": (3, 32, 32)}
CASES = [("mlp", "relu", "none"), ("mlp", "prelu", "batch"), ("mlp", "maxout", "layer"),
         ("mlp", "swish_beta", "none"), ("lenet", "relu", "none"), ("lenet", "prelu", "group"),
         ("lenet", "maxout", "batch"), ("lenet", "tanh", "layer"), ("vgg11", "elu", "batch")]


def members(model, activation, norm, k=3):
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        kwargs = {"width_scale": 0.125} if model == "vgg11" else {}
        net = models.MODELS[model](models.activations.factory(activation), SHAPES[model], 10,
                                   norm=norm, **kwargs).double()
        for m in net.modules():  # no dropout: the stack and the members draw different masks
            if isinstance(m, (nn.Dropout, nn.Dropout2d)):
                m.p = 0.0
        out.append(net)
    return out


@pytest.mark.parametrize("model,activation,norm", CASES)
def test_stack_forward_and_gradients_match_each_member_alone(model, activation, norm):
    nets = members(model, activation, norm)
    alone = [m for m in members(model, activation, norm)]  # separate copies, same seeds
    stack = StackedSequential(nets).double()
    x = torch.randn(3, 6, *SHAPES[model], dtype=torch.float64)
    y = torch.randint(0, 10, (3, 6))

    logits = stack(x)
    assert logits.shape == (3, 6, 10)
    per_member = F.cross_entropy(logits.reshape(-1, 10), y.reshape(-1), reduction="none").view(3, 6).mean(1)
    per_member.sum().backward()
    stack.write_back()

    for i, net in enumerate(alone):
        out = net(x[i])
        torch.testing.assert_close(logits[i], out)
        F.cross_entropy(out, y[i]).backward()
    # Gradients: the stack's are laid out differently, so compare one step of SGD.
    with torch.no_grad():
        for p in stack.parameters():
            p -= 0.1 * p.grad
        for net in alone:
            for p in net.parameters():
                p -= 0.1 * p.grad
    for i, net in enumerate(alone):  # evaluation: BatchNorm's running statistics count too
        torch.testing.assert_close(stack.write_back()[i].eval()(x[i]), net.eval()(x[i]))


def test_batchnorm_running_statistics_are_per_member():
    nets = members("lenet", "relu", "batch")
    alone = members("lenet", "relu", "batch")
    stack = StackedSequential(nets).double()
    x = torch.randn(3, 8, 1, 20, 20, dtype=torch.float64)
    for _ in range(2):
        stack(x)
    stack.write_back()
    for i, net in enumerate(alone):
        for _ in range(2):
            net(x[i])
        torch.testing.assert_close(nets[i].norm1.running_mean, net.norm1.running_mean)
        torch.testing.assert_close(nets[i].norm2.running_var, net.norm2.running_var)
        assert int(nets[i].norm1.num_batches_tracked) == 2


def test_parametrised_activations_train_the_members_own_modules():
    nets = members("mlp", "prelu", "none", k=2)
    stack = StackedSequential(nets)
    own = {id(p) for net in nets for name, p in net.named_parameters() if name.startswith("act")}
    assert own and own <= {id(p) for p in stack.parameters()}


def test_dropout_masks_differ_between_members():
    torch.manual_seed(0)
    nets = [models.build("mlp", "relu", (1, 8, 8), 10) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    for net in nets:
        net.add_module("dropout_out", nn.Dropout(0.5))
    stack = StackedSequential(nets).train()
    x = torch.randn(1, 4, 1, 8, 8).expand(2, 4, 1, 8, 8)
    out = stack(x)
    assert not torch.equal(out[0], out[1])  # same weights and input: only the masks differ


def test_different_architectures_and_unknown_layers_are_refused():
    with pytest.raises(AfbenchError, match="same layers"):
        StackedSequential([models.build("mlp", "relu", (1, 8, 8), 10), models.build("lenet", "relu", (1, 20, 20), 10)])
    with pytest.raises(AfbenchError, match="cannot stack layer '1' \\(LSTM\\)"):
        StackedSequential([nn.Sequential(nn.Flatten(), nn.LSTM(4, 4))])
    StackedSequential([models.build("lenet", "relu", (1, 28, 28), 10)])  # every afbench model stacks


# --- training a stack (engine) and stacking in sweeps (runner) ---


def test_a_stack_of_seeds_trains_each_seed_as_it_would_alone(digits):
    """The MLP has no dropout, so stacked and lone runs follow the same arithmetic."""
    configs = [RunConfig(activation="prelu", seed=s, epochs=2, batch_size=64) for s in range(3)]
    stacked = engine.train_stack(configs, digits)
    for config, result in zip(configs, stacked):
        alone = engine.train(config, digits)
        assert [e.test_acc for e in result.epochs] == pytest.approx([e.test_acc for e in alone.epochs],
                                                                         abs=2 / len(digits.test))
        assert result.summary.params == alone.summary.params
        assert result.provenance["stack_size"] == 3
        first = result.epochs[0]
        assert first.epoch_train_s == pytest.approx(first.stack_epoch_s / 3)
        assert len(first.layers["dead_output"]) == 2  # diagnostics on the member's own model


def test_a_diverged_member_stops_and_the_others_go_on(digits, monkeypatch):
    real = engine.build_model

    def poisoned(config, data):
        model = real(config, data)
        if config.seed == 1:
            with torch.no_grad():
                model.fc1.weight.fill_(float("nan"))
        return model

    monkeypatch.setattr(engine, "build_model", poisoned)
    configs = [RunConfig(seed=s, epochs=3, batch_size=64) for s in range(3)]
    results = engine.train_stack(configs, digits)
    assert [r.status for r in results] == ["done", "diverged", "done"]
    assert results[1].summary.diverged_epoch == 1 and len(results[1].epochs) == 1
    assert len(results[0].epochs) == 3 and results[2].epochs[-1].test_acc > 0.8


def test_only_seeds_of_one_configuration_stack(digits):
    with pytest.raises(AfbenchError, match="differ in their seed"):
        engine.train_stack([RunConfig(seed=0), RunConfig(seed=1, activation="tanh")], digits)


def test_plan_stacks_only_when_it_measures_faster(monkeypatch):
    times = {1: 1.0, 3: 2.0}  # a stack of 3 takes 2x one run: 1.5x faster per run
    monkeypatch.setattr(engine, "time_training_steps", lambda config, data, steps, stack=1: times[stack])
    auto = Runtime()
    assert calibrate.plan_stack(auto, RunConfig(), None, 3, 2) == {"stack": 3, "stack_how": "calibrated",
                                                                  "stack_gain": 1.5}
    times[3] = 3.0  # no faster per run: train one by one
    assert calibrate.plan_stack(auto, RunConfig(), None, 3, 2)["stack"] == 1
    assert calibrate.plan_stack(auto, RunConfig(), None, 1, 2) == {"stack": 1, "stack_how": "no seeds to stack"}
    assert calibrate.plan_stack(Runtime(stack=5), RunConfig(), None, 3, 2)["stack"] == 3  # no more than seeds


def test_a_stacked_sweep_records_every_seed_and_a_failed_stack_is_redone(tmp_path, monkeypatch):
    cells = Grid(RunConfig(epochs=2, batch_size=64), ("relu", "tanh"), seeds=(0, 1, 2)).configs()
    real = engine.train_stack

    def flaky(configs, data, on_epoch=None, **options):
        if configs[0].activation == "tanh":
            raise RuntimeError("simulated crash")
        return real(configs, data, on_epoch, **options)

    monkeypatch.setattr(engine, "train_stack", flaky)
    store = Store(tmp_path)
    stacked = Runtime(progress=False, workers=1, stack=3)
    assert LocalBackend(stacked).execute(cells, store) == {"ran": 3, "skipped": 0, "failed": 3}
    assert store.meta()["scheduler"]["stack"] == 3
    monkeypatch.setattr(engine, "train_stack", real)
    assert LocalBackend(stacked).execute(cells, store) == {"ran": 3, "skipped": 3, "failed": 0}
    runs = store.runs()
    assert all(r["status"] == "done" and r["provenance"]["stack_size"] == 3 for r in runs)
    assert len(store.epochs()) == 12
