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


def test_seeded_members_draw_the_masks_of_their_seed_alone():
    """Member i draws what ``torch.manual_seed(seed_i)`` then its lone forward would draw."""
    torch.manual_seed(0)
    nets = [models.build("mlp", "relu", (1, 8, 8), 10) for _ in range(3)]
    for net in nets[1:]:
        net.load_state_dict(nets[0].state_dict())
    for net in nets:
        net.add_module("dropout_out", nn.Dropout(0.5))
    stack = StackedSequential(nets).train()
    stack.seed_members([7, 7, 8], torch.device("cpu"))
    x = torch.randn(4, 1, 8, 8)
    torch.manual_seed(123)  # the global stream is not the members' and is left alone
    outs = [stack(x.expand(3, *x.shape)) for _ in range(2)]
    assert torch.equal(torch.random.get_rng_state(), torch.manual_seed(123).get_state())
    for step in range(2):
        torch.testing.assert_close(outs[step][0], outs[step][1], rtol=0, atol=0)  # same seed: same masks
        assert not torch.equal(outs[step][0], outs[step][2])
    torch.manual_seed(8)
    alone = [nets[2](x) for _ in range(2)]  # the seed-8 member's two lone draws
    for step in range(2):
        torch.testing.assert_close(outs[step][2], alone[step])


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


def test_only_runs_that_differ_in_seed_or_activation_stack(digits):
    with pytest.raises(AfbenchError, match="differ in their seed or activation"):
        engine.train_stack([RunConfig(seed=0), RunConfig(seed=1, lr=0.1)], digits)


def test_plan_stacks_only_when_it_measures_faster(monkeypatch):
    times = {1: 1.0, 3: 2.0}  # a stack of 3 takes 2x one run: 1.5x faster per run
    monkeypatch.setattr(engine, "time_training_steps",
                        lambda config, data, steps, stack=1, members=None: times[len(members) if members else stack])
    auto = Runtime()
    group = [RunConfig(seed=s) for s in range(3)]
    assert calibrate.plan_stack(auto, group, None, 2) == {"stack": 3, "stack_by": "seed",
                                                         "stack_how": "calibrated", "stack_gain": 1.5}
    times[3] = 3.0  # no faster per run: train one by one
    assert calibrate.plan_stack(auto, group, None, 2)["stack"] == 1
    assert calibrate.plan_stack(auto, group[:1], None, 2) == {"stack": 1, "stack_how": "no runs to stack"}
    assert calibrate.plan_stack(Runtime(stack=5), group, None, 2)["stack"] == 3  # no more than runs


def test_the_largest_stack_group_spans_activations_and_seeds_of_one_setting():
    configs = Grid(RunConfig(epochs=1), ("relu", "tanh", "elu"), seeds=(0, 1)).configs() \
        + [RunConfig(activation="relu", lr=0.5)]
    group = calibrate.largest_stack_group(configs)
    assert len(group) == 6 and {c.lr for c in group} == {RunConfig().lr}


def test_a_gated_unit_is_planned_and_trained_apart_from_the_others(digits):
    group = [RunConfig(activation=a, epochs=1, batch_size=64) for a in ("relu", "tanh", "geglu")]
    members, by = calibrate.stack_members(group, 3, digits)
    assert members == group[:1] and by.startswith("seed (activations cannot share a stack: ")
    results = engine.train_stack(group, digits)
    assert [r.config.activation for r in results] == ["relu", "tanh", "geglu"]
    assert all("layer 'fc1' differs" in r.provenance["stack_refused"] for r in results)
    assert [r.provenance["stack_size"] for r in results] == [1, 1, 1]
    alone = engine.train(group[2], digits)
    assert results[2].summary.error_rate == alone.summary.error_rate


def _synthetic_images(n_train=384, n_test=192, side=20):
    """Four classes told apart by the mean brightness of the image's halves: LeNet-sized input."""
    from afbench.data import Prepared, Split
    g = torch.Generator().manual_seed(0)

    def split(n):
        x = torch.randn(n, 1, side, side, generator=g)
        y = (x[:, 0, : side // 2].mean((1, 2)) > 0).long() + 2 * (x[:, 0, side // 2:].mean((1, 2)) > 0).long()
        return Split(x, y)
    return Prepared("halves", [str(i) for i in range(4)], split(n_train), split(n_test), None, (0.0,), (1.0,))


def test_a_stack_across_activations_trains_each_member_as_it_would_alone():
    """LeNet has Dropout2d in its convolutional part and Dropout before its last layer;
    members differ in activation (one learned, one random) and in seed. Each member's
    test accuracy after every epoch, and so its final error, equals its lone run's
    bit for bit on CPU."""
    data = _synthetic_images()
    configs = [RunConfig(model="lenet", activation=a, seed=s, epochs=2, batch_size=64)
               for a, s in (("relu", 0), ("tanh", 0), ("elu", 1), ("prelu", 0), ("rrelu", 2))]
    stacked = engine.train_stack(configs, data)
    for config, result in zip(configs, stacked):
        alone = engine.train(config, data)
        assert [e.test_acc for e in result.epochs] == [e.test_acc for e in alone.epochs], config.activation
        assert result.summary.error_rate == alone.summary.error_rate
        assert result.epochs[-1].train_loss == pytest.approx(alone.epochs[-1].train_loss, rel=1e-5)
        assert result.provenance["stack_size"] == 5 and result.provenance["stack_activations"] == 5
        assert "stack_refused" not in result.provenance


def test_an_mlp_stack_across_activations_follows_the_same_arithmetic(digits):
    configs = [RunConfig(activation=a, seed=s, epochs=2, batch_size=64)
               for a, s in (("relu", 0), ("tanh", 0), ("elu", 1), ("swish_beta", 0))]
    for config, result in zip(configs, engine.train_stack(configs, digits)):
        alone = engine.train(config, digits)
        assert [e.train_loss for e in result.epochs] == pytest.approx([e.train_loss for e in alone.epochs], rel=1e-5)
        assert result.summary.error_rate == alone.summary.error_rate


def test_a_sweep_stacks_activations_and_gets_the_runs_it_gets_one_by_one(tmp_path):
    cells = Grid(RunConfig(epochs=2, batch_size=64), ("relu", "tanh", "elu"), seeds=(0,)).configs()
    stores = {stack: Store(tmp_path / str(stack)) for stack in (1, 3)}
    for stack, store in stores.items():  # cost on: only a cost profile gives fused activations their times
        runtime = Runtime(progress=False, workers=1, stack=stack, cost="on")
        assert LocalBackend(runtime).execute(cells, store)["ran"] == 3
    assert stores[3].meta()["scheduler"]["stack_by"] == "seed and activation"
    short = Store(tmp_path / "short")  # too short for a profile (cost auto): seeds alone share stacks
    LocalBackend(Runtime(progress=False, workers=1, stack=3)).execute(cells, short)
    assert short.meta()["scheduler"]["stack_by"].startswith("seed (activations share a stack only where")
    assert {r["provenance"]["stack_size"] for r in short.runs()} == {1}
    fused, lone = ({r["config"]["activation"]: r for r in stores[s].runs()} for s in (3, 1))
    for activation in ("relu", "tanh", "elu"):
        assert fused[activation]["provenance"]["stack_activations"] == 3
        assert lone[activation]["provenance"]["stack_size"] == 1
        assert fused[activation]["summary"]["error_rate"] == lone[activation]["summary"]["error_rate"]


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


def test_wall_clocks_of_activations_fused_in_one_stack_are_never_compared():
    import pandas as pd

    from afbench.report import timing
    runs = pd.DataFrame({"status": ["done", "done"], "provenance.stack_size": [2, 2],
                         "provenance.stack_activations": [2, 2]})
    assert "activations trained together in one stack share one clock" in timing.wall_clock_caveat(runs)


def test_random_activations_outside_torch_draw_from_each_members_own_state(digits):
    """noisy_relu keeps a bank of normals that it refreshes from the random stream: seeds
    stacked, and stacked beside relu, each member ends as its lone run ends."""
    for group in ([("noisy_relu", 0), ("noisy_relu", 1)], [("relu", 0), ("noisy_relu", 0), ("noisy_relu", 1)]):
        configs = [RunConfig(activation=a, seed=s, epochs=1, batch_size=64) for a, s in group]
        for config, result in zip(configs, engine.train_stack(configs, digits)):
            assert result.summary.error_rate == engine.train(config, digits).summary.error_rate, config


def test_a_weightless_activation_that_draws_random_numbers_runs_per_member():
    from afbench.engine.stack import _PerMember, _PerSample

    class Jitter(nn.Module):  # a user's: no torch random layer, yet random in training
        def forward(self, x):
            return torch.relu(x) + 0.1 * torch.randn_like(x) if self.training else torch.relu(x)

    def net(act):
        return nn.Sequential(nn.Flatten(), nn.Linear(4, 3), act, nn.Linear(3, 2))
    for act, kind in ((Jitter(), _PerMember), (nn.ReLU(), _PerSample)):
        named = [nn.Sequential(*[]) for _ in range(2)]
        for model in named:
            for name, layer in zip(("flatten", "fc1", "act1", "fc2"), net(act)):
                model.add_module(name, layer)
        assert isinstance(StackedSequential(named).layers[1], kind)


def test_a_sweep_stacks_gated_units_with_their_own_seeds_and_fuses_the_rest(tmp_path):
    cells = Grid(RunConfig(epochs=1, batch_size=64), ("relu", "geglu", "tanh"), seeds=(0, 1)).configs()
    store = Store(tmp_path)
    assert LocalBackend(Runtime(progress=False, workers=1, stack=4, cost="on")).execute(cells, store)["ran"] == 6
    scheduler = store.meta()["scheduler"]
    assert scheduler["stack_by"] == "seed and activation" and "layer 'fc1' differs" in scheduler["stack_apart"]["geglu"]
    runs = {(r["config"]["activation"], r["config"].get("seed", 0)): r["provenance"] for r in store.runs()}
    assert {runs["geglu", s]["stack_activations"] for s in (0, 1)} == {1}  # its own seeds, together
    assert runs["geglu", 0]["stack_size"] == 2
    assert {runs[a, s]["stack_activations"] for a in ("relu", "tanh") for s in (0, 1)} == {2}


def test_the_scheduler_sentence_says_what_shares_a_stack_and_why_not():
    from afbench.cli.run import schedule_sentence
    fused = schedule_sentence({"workers": 1, "threads": 2, "stack": 4, "stack_by": "seed and activation",
                               "stack_how": "given", "stack_apart": {"geglu": "layer 'fc1' differs"}})
    assert "up to 4 runs (seeds and activations) stacked" in fused and "geglu stack only their own seeds" in fused
    seeds = schedule_sentence({"workers": 1, "threads": 2, "stack": 4, "stack_how": "given",
                               "stack_by": "seed (activations share a stack only where a cost profile measures "
                                           "their times)"})
    assert "up to 4 seeds stacked" in seeds and "only where a cost profile measures their times" in seeds


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_stack_on_a_gpu_evaluates_its_members_there():
    """Members keep their own linear layers (the stack holds stacked copies): they must
    be on the GPU too, or evaluation meets CPU weights."""
    from afbench import data

    on_gpu = data.prepare(data.load("digits"), device="cuda")
    configs = [RunConfig(activation=a, epochs=1, batch_size=64, device="cuda") for a in ("relu", "tanh")]
    results = engine.train_stack(configs, on_gpu)
    assert [r.status for r in results] == ["done", "done"]
    assert all(r.provenance["stack_size"] == 2 for r in results)
