"""Models: the papers' parameter counts and shapes, and a complete activation swap."""

import math

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from afbench import activations, models
from afbench.errors import AfbenchError, UnknownNameError

SHAPES = {"mlp": (1, 28, 28), "lenet": (1, 28, 28), "vgg11": (3, 32, 32), "resnet20": (3, 32, 32),
          "vit": (3, 32, 32)}
HIDDEN_PLACES = {"mlp": 2, "lenet": 3, "vgg11": 8, "resnet20": 19, "vit": 6}
# Structural layers a model may hold besides its activations.
STRUCTURE = (nn.Sequential, nn.Linear, nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout,
             nn.Dropout2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, models.resnet.ShortcutA)


@pytest.mark.parametrize("name,expected", [("mlp", 109_386), ("lenet", 21_840), ("vgg11", 9_231_114)])
def test_parameter_counts_match_the_papers(name, expected):
    assert models.count_parameters(models.build(name, "relu", SHAPES[name], 10)) == expected


def test_lenet_layer_shapes_match_s1_table():
    model = models.build("lenet", "relu", (1, 28, 28), 10)
    shapes = {}
    for name, module in model.named_children():
        module.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
    model.eval()(torch.zeros(2, 1, 28, 28))
    assert shapes["conv1"] == (10, 24, 24) and shapes["pool1"] == (10, 12, 12)
    assert shapes["conv2"] == (20, 8, 8) and shapes["pool2"] == (20, 4, 4)
    assert shapes["fc1"] == (50,) and shapes["fc2"] == (10,)


def test_mlp_adapts_to_input_size_and_classes():
    model = models.build("mlp", "relu", (3, 8, 8), 7)
    assert model(torch.zeros(4, 3, 8, 8)).shape == (4, 7)
    assert models.count_parameters(model) == 192 * 128 + 128 + 128 * 64 + 64 + 64 * 7 + 7


def _leaves(model):
    return [m for m in model.modules() if not list(m.children())]


@pytest.mark.parametrize("model_name", models.names())
@pytest.mark.parametrize("activation", activations.names())
def test_the_activation_fills_every_hidden_place_and_nothing_else_is_nonlinear(model_name, activation):
    model = models.build(model_name, activation, SHAPES[model_name], 10)
    act_type = type(activations.create(activation))
    placed = models.hidden_activations(model)
    assert len(placed) == HIDDEN_PLACES[model_name]
    assert all(type(module) is act_type for _, module in placed)
    placed_ids = {id(m) for _, m in placed}
    strays = [m for m in _leaves(model) if id(m) not in placed_ids and not isinstance(m, STRUCTURE)]
    assert not strays, f"unexpected layers: {strays}"


NONLINEAR = {"relu", "relu_", "tanh", "sigmoid", "gelu", "elu", "selu", "celu", "leaky_relu", "prelu", "softplus",
             "silu", "mish", "hardtanh", "hardsigmoid", "hardswish", "softsign", "relu6", "threshold", "softmax",
             "log_softmax", "rrelu"}


class _Recorder(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.called = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.called.add(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("model_name", models.names())
def test_no_hidden_nonlinearity_is_hard_coded_in_forward(model_name):
    # With the identity activation, a forward pass must call no nonlinearity at all
    # (max pooling aside): any F.relu left in a forward() would show up here.
    model = models.build(model_name, "identity", SHAPES[model_name], 10).eval()
    with _Recorder() as recorder:
        model(torch.zeros(2, *SHAPES[model_name]))
    assert not recorder.called & NONLINEAR, recorder.called & NONLINEAR


@pytest.mark.parametrize("model_name", models.names())
def test_prelu_learns_one_slope_per_channel(model_name):
    model = models.build(model_name, "prelu", SHAPES[model_name], 10)
    widths = {"mlp": [128, 64], "lenet": [10, 20, 50], "vgg11": [64, 128, 256, 256, 512, 512, 512, 512],
              "resnet20": [16] * 7 + [32] * 6 + [64] * 6, "vit": [256] * 6}
    assert [m.weight.numel() for _, m in models.hidden_activations(model)] == widths[model_name]


WIDE = [name for name in activations.names() if activations.info(name).width_multiplier > 1]
# The ViT widens its feed-forward input only: 6 blocks x (128 x 256 + 256) more for k = 2.
WIDENING = {"mlp": 1.8, "lenet": 1.8, "vgg11": 1.8, "resnet20": 1.8, "vit": 1 + 6 * (128 * 256 + 256) / 811_146 - 1e-6}


@pytest.mark.parametrize("model_name", models.names())
@pytest.mark.parametrize("activation", WIDE)
def test_width_multipliers_widen_the_layer_before_and_match_params_stays_within_one_percent(model_name, activation):
    # maxout today; the gated units (glu, reglu, geglu, swiglu) the moment they are registered
    relu = models.count_parameters(models.build(model_name, "relu", SHAPES[model_name], 10))
    wide = models.build(model_name, activation, SHAPES[model_name], 10)
    assert wide(torch.zeros(2, *SHAPES[model_name])).shape == (2, 10)
    assert models.count_parameters(wide) >= WIDENING[model_name] * relu
    matched = models.build(model_name, activation, SHAPES[model_name], 10, match_params=True)
    assert abs(models.count_parameters(matched) - relu) / relu < 0.01
    assert matched(torch.zeros(2, *SHAPES[model_name])).shape == (2, 10)


def _weights(model):
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def test_initialisations_have_the_lecture_variances():
    torch.manual_seed(0)
    layer = lambda init: _weights(models.build("vgg11", "relu", (3, 32, 32), 10, init=init))[4]  # 512x256x3x3
    fan_in, fan_out = 256 * 9, 512 * 9
    assert layer("he").std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
    assert layer("xavier").std().item() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.02)
    assert layer("normal001").std().item() == pytest.approx(0.01, rel=0.02)
    assert all(w.abs().sum() == 0 for w in _weights(models.build("mlp", "relu", (1, 8, 8), 10, init="zeros")))


def test_hidden_bias_sets_every_bias_but_the_output_layer():
    model = models.build("lenet", "relu", (1, 28, 28), 10, hidden_bias=0.01)
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert all(torch.all(m.bias == 0.01) for m in layers[:-1]) and not torch.all(layers[-1].bias == 0.01)


@pytest.mark.parametrize("norm,kind,count", [("batch", nn.BatchNorm2d, 2), ("group", nn.GroupNorm, 2),
                                             ("layer", nn.GroupNorm, 2), ("instance", nn.GroupNorm, 2)])
def test_lenet_normalisation_options(norm, kind, count):
    model = models.build("lenet", "relu", (1, 28, 28), 10, norm=norm)
    assert sum(isinstance(m, kind) for m in model.modules()) == count
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_vgg_uses_batchnorm_by_default_and_none_removes_it():
    assert sum(isinstance(m, nn.BatchNorm2d) for m in models.build("vgg11", "relu", (3, 32, 32), 10).modules()) == 8
    bare = models.build("vgg11", "relu", (3, 32, 32), 10, norm="none")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in bare.modules())


def test_bad_model_options_are_clear_errors():
    with pytest.raises(UnknownNameError, match="Did you mean 'lenet'"):
        models.build("lenett", "relu", (1, 28, 28), 10)
    with pytest.raises(AfbenchError, match="at least 16x16"):
        models.build("lenet", "relu", (1, 8, 8), 10)
    with pytest.raises(AfbenchError, match="needs convolutional layers"):
        models.build("mlp", "relu", (1, 8, 8), 10, norm="group")
    with pytest.raises(AfbenchError, match="unknown --init"):
        models.build("mlp", "relu", (1, 8, 8), 10, init="orthogonal")
