"""usercode.check: user models and activations are checked once, before a sweep queues
anything, and fail with the file, the name and the fix (one AfbenchError, no traceback)."""

import sys
import textwrap
from pathlib import Path

import pytest

from afbench import usercode
from afbench.config import RunConfig
from afbench.errors import AfbenchError

FIXTURES = Path(__file__).parent / "fixtures" / "models"

MODELS = textwrap.dedent('''
    import torch
    from torch import nn


    class Raises(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.fc, self.act = nn.Linear(64, num_classes), nn.ReLU()

        def forward(self, x):
            raise ValueError("boom in forward")


    class Parameterless(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.act, self.k = nn.ReLU(), num_classes

        def forward(self, x):
            return self.act(x.flatten(1)[:, :self.k])


    class Infinite(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.fc, self.act = nn.Linear(64, num_classes), nn.ReLU()

        def forward(self, x):
            return self.act(self.fc(x.flatten(1))) / 0.0


    class Detached(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.fc, self.act = nn.Linear(64, num_classes), nn.ReLU()

        def forward(self, x):
            return self.act(self.fc(x.flatten(1))).detach()


    def raises(num_classes):
        return Raises(num_classes)


    def parameterless(num_classes):
        return Parameterless(num_classes)


    def infinite(num_classes):
        return Infinite(num_classes)


    def detached(num_classes):
        return Detached(num_classes)
''')

ACTIVATIONS = textwrap.dedent('''
    import torch
    from torch import nn


    class NeedsArgument(nn.Module):
        def __init__(self, alpha):
            super().__init__()
            self.alpha = alpha

        def forward(self, x):
            return self.alpha * x


    class Halves(nn.Module):
        def forward(self, x):
            return x[:, : x.shape[1] // 2]


    class Fine(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(2 * x)
''')


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("usercode")
    (folder / "uc_models.py").write_text(MODELS)
    (folder / "afb_uc_acts.py").write_text(ACTIVATIONS)
    sys.path.insert(0, str(folder))  # once for the module: Python imports afb_uc_acts once per process
    yield folder
    sys.path.remove(str(folder))


def _check(digits, **settings):
    usercode.check([RunConfig(**settings)], lambda config: digits)


@pytest.mark.parametrize("builder, problem, fix", [
    ("raises", "ValueError: boom in forward", "make its forward take float images"),
    ("parameterless", "no trainable parameters", "create its layers in __init__"),
    ("infinite", "NaN or inf", "division, log or exp"),
    ("detached", "no parameter receives a gradient", "do not detach"),
])
def test_a_bad_model_fails_before_the_sweep_with_its_file_name_and_fix(digits, files, builder, problem, fix):
    path = files / "uc_models.py"
    with pytest.raises(usercode.UserCodeError) as caught:
        _check(digits, model=f"{path}:{builder}")
    message = str(caught.value)
    assert str(path) in message and builder in message and problem in message and fix in message
    assert "\n" not in message and isinstance(caught.value, AfbenchError)


@pytest.mark.parametrize("activation, problem, fix", [
    ("afb_uc_acts:NeedsArgument", "its __init__ requires alpha", "give alpha a default"),
    ("afb_uc_acts:Halves", "maps a (4, 24) float32 tensor to (4, 12)", "one value per input element"),
    ("log(x)", "NaN or inf on inputs in [-6, 6] (at x = -6)", "keep it finite"),
])
def test_a_bad_activation_fails_with_its_file_name_and_fix(digits, files, activation, problem, fix):
    with pytest.raises(usercode.UserCodeError) as caught:
        _check(digits, activation=activation)
    message = str(caught.value)
    assert activation in message and problem in message and "Fix: " in message and fix in message
    if ":" in activation:
        assert str(files / "afb_uc_acts.py") in message


def test_a_boolean_formula_is_refused_when_it_is_named_with_the_fix():
    from afbench import activations

    with pytest.raises(AfbenchError, match=r"'x > 0' gives bool values.*where\(x > 0, x, 0 \* x\)"):
        activations.factory("x > 0")
    assert activations.factory("(x > 0) * 1.0").name == "(x > 0) * 1.0"  # the fix it gives works


def test_good_user_code_passes_and_built_ins_are_not_rebuilt(digits, files, monkeypatch):
    _check(digits, model=f"{FIXTURES / 'my_net.py'}:make", activation="afb_uc_acts:Fine")
    _check(digits, model="mlp", activation="x * sigmoid(1.5 * x)")
    built = []
    monkeypatch.setattr(usercode, "check_model", lambda config, prepared: built.append(config))
    usercode.check([RunConfig(activation=a, seed=s) for a in ("relu", "gelu", "x * tanh(x)") for s in range(3)],
                   lambda config: digits)
    assert [c.activation for c in built] == ["x * tanh(x)"]  # once for its three seeds; relu and gelu skipped
