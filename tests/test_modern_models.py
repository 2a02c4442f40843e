"""ResNet-20 and the small ViT: counts against closed formulas, shapes, every activation."""

import pytest
import torch
from torch import nn

from afbench import activations, models
from afbench.engine.stack import StackedSequential
from afbench.errors import AfbenchError

CIFAR = (3, 32, 32)


def resnet20_parameters(classes: int = 10) -> int:
    """He et al. 2016, option A, by hand: bias-free 3x3 convolutions, BatchNorm (2 per channel)."""
    conv = lambda c_in, c_out: 9 * c_in * c_out + 2 * c_out
    stem = conv(3, 16)
    stage1 = 6 * conv(16, 16)
    stage2 = conv(16, 32) + 5 * conv(32, 32)
    stage3 = conv(32, 64) + 5 * conv(64, 64)
    return stem + stage1 + stage2 + stage3 + 64 * classes + classes


def vit_parameters(dim=128, depth=6, hidden=256, k=1, patch=4, chans=3, side=32, classes=10) -> int:
    """Pre-norm ViT: patch embedding, class token, positions, depth x (2 LayerNorms, qkv,
    projection, fc1 to k*hidden, fc2), final LayerNorm, head."""
    tokens = (side // patch) ** 2 + 1
    block = 2 * 2 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim) + (dim * k * hidden + k * hidden) \
        + (hidden * dim + dim)
    return (chans * patch * patch * dim + dim) + dim + tokens * dim + depth * block + 2 * dim + dim * classes + classes


def test_resnet20_has_exactly_the_published_count():
    assert resnet20_parameters() == 269_722  # the paper's 0.27M, as every reimplementation counts it
    assert models.count_parameters(models.build("resnet20", "relu", CIFAR, 10)) == 269_722


def test_resnet20_stage_shapes_and_option_a_shortcuts():
    model = models.build("resnet20", "relu", CIFAR, 10).eval()
    shapes = {}
    for name in ("layer1", "layer2", "layer3"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, o.shape[1:]))
    assert model(torch.zeros(2, *CIFAR)).shape == (2, 10)
    assert shapes == {"layer1": (16, 32, 32), "layer2": (32, 16, 16), "layer3": (64, 8, 8)}
    shortcut = model.layer2[0].shortcut  # subsample by 2 and zero-pad 16 -> 32 channels, no parameters
    x = torch.randn(1, 16, 4, 4)
    out = shortcut(x)
    assert not list(shortcut.parameters()) and out.shape == (1, 32, 2, 2)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2]) and not out[:, 16:].any()
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) + 1 == 20  # 19 convolutions + fc


def test_vit_count_matches_the_closed_formula():
    assert models.count_parameters(models.build("vit", "gelu", CIFAR, 10)) == vit_parameters() == 811_146
    assert models.count_parameters(models.build("vit", "maxout", CIFAR, 10)) == vit_parameters(k=2)
    assert models.count_parameters(models.build("vit", "relu", (1, 28, 28), 7)) == \
        vit_parameters(chans=1, side=28, classes=7)


@pytest.mark.parametrize("model_name", ["resnet20", "vit"])
@pytest.mark.parametrize("activation", activations.names())
def test_every_activation_trains_in_the_modern_models(model_name, activation):
    model = models.build(model_name, activation, (3, 8, 8), 10)
    placed = models.hidden_activations(model)
    assert len(placed) == {"resnet20": 19, "vit": 6}[model_name]
    out = model(torch.randn(4, 3, 8, 8))
    assert out.shape == (4, 10)
    out.square().mean().backward()
    assert model.head.weight.grad is not None if model_name == "vit" else model.fc.weight.grad is not None


def test_width_scale_scales_the_widths():
    model = models.build("resnet20", "relu", CIFAR, 10, width_scale=0.5)
    assert [model.layer1[0].conv1.out_channels, model.layer2[0].conv1.out_channels,
            model.layer3[0].conv1.out_channels] == [8, 16, 32]
    assert models.build("vit", "relu", CIFAR, 10, width_scale=0.5).blocks[0].mlp.fc1.out_features == 128


@pytest.mark.parametrize("model_name", ["resnet20", "vit"])
def test_stacking_refuses_them_with_an_afbench_error(model_name):
    # engine.stack stacks nn.Sequential models with one Flatten; the sweep trains these one at a time
    with pytest.raises(AfbenchError, match="nn.Flatten"):
        StackedSequential([models.build(model_name, "relu", CIFAR, 10) for _ in range(2)])


def test_bad_inputs_are_clear_errors():
    with pytest.raises(AfbenchError, match="divisible by 4"):
        models.build("vit", "relu", (3, 30, 30), 10)
    with pytest.raises(AfbenchError, match="LayerNorm only"):
        models.build("vit", "relu", CIFAR, 10, norm="batch")
    with pytest.raises(AfbenchError, match="at least 4x4"):
        models.build("resnet20", "relu", (1, 2, 2), 10)


@pytest.mark.slow
@pytest.mark.parametrize("model_name,activation,optimizer,lr", [("resnet20", "relu", "sgd", 0.1),
                                                                ("vit", "gelu", "adam", 1e-3)])
def test_one_epoch_on_cifar10_jpeg(cifar10_jpeg, model_name, activation, optimizer, lr):
    from afbench import data
    from afbench.config import RunConfig
    from afbench.engine.train import train

    prepared = data.prepare(data.load(f"imagefolder:{cifar10_jpeg}"), train_subset=4096)
    config = RunConfig(dataset=f"imagefolder:{cifar10_jpeg}", model=model_name, activation=activation, epochs=1,
                       batch_size=128, optimizer=optimizer, lr=lr, momentum=0.9, weight_decay=1e-4,
                       train_subset=4096, latency_samples=20, probe_size=128)
    result = train(config, prepared)
    assert result.status == "done" and result.summary.params == {"resnet20": 269_722, "vit": 811_146}[model_name]
    assert result.epochs[0].test_acc > 0.15  # ten classes: chance is 0.10
    assert len(result.epochs[0].layers["dead_output"]) == {"resnet20": 19, "vit": 6}[model_name]
