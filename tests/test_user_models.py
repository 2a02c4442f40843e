"""Your own model: swap, the completeness proof, loading by path or module, identity."""

import hashlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from afbench import activations, models
from afbench.config import RunConfig
from afbench.engine.diagnostics import layer_diagnostics
from afbench.engine.train import train
from afbench.errors import AfbenchError

FIXTURES = Path(__file__).parent / "fixtures" / "models"
MY_NET = f"{FIXTURES / 'my_net.py'}:make"
FUNCTIONAL = f"{FIXTURES / 'functional_net.py'}:make"
ACT_LAYER = f"{FIXTURES / 'act_layer_net.py'}:make"


def _line_of(path: Path, text: str) -> int:
    """1-based line number of the first line containing ``text`` (the reference for 'where')."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


class Mixed(nn.Module):
    """Five activation modules of four types, one nested two levels down."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.act = nn.ReLU()
        self.inner = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1), nn.SiLU(), nn.Sequential(nn.Tanh()))
        self.fc = nn.Linear(6, 8)
        self.gelu, self.leaky, self.out = nn.GELU(), nn.LeakyReLU(), nn.Linear(8, 4)

    def forward(self, x):
        x = self.inner(self.act(self.conv(x))).mean(dim=(2, 3))
        return self.out(self.leaky(self.gelu(self.fc(x))))


def test_swap_replaces_every_activation_module_and_reports_each():
    model = Mixed()
    replaced = models.swap(model, "mish", (3, 8, 8))
    expected = [("act", nn.ReLU), ("inner.1", nn.SiLU), ("inner.2.0", nn.Tanh), ("gelu", nn.GELU),
                ("leaky", nn.LeakyReLU)]  # forward order, by hand
    assert [(s.path, s.old) for s in replaced] == expected
    assert all(s.new is nn.Mish for s in replaced)
    kinds = [type(m) for m in model.modules() if not list(m.children())]
    assert kinds.count(nn.Mish) == 5 and not {nn.ReLU, nn.SiLU, nn.Tanh, nn.GELU, nn.LeakyReLU} & set(kinds)
    assert [name for name, _ in models.hidden_activations(model)] == [p for p, _ in expected]


def test_swap_gives_per_channel_activations_the_channel_count():
    model = Mixed()
    models.swap(model, "prelu", (3, 8, 8))
    slopes = [m.weight.numel() for _, m in models.hidden_activations(model)]
    assert slopes == [6, 6, 6, 8, 8]  # conv channels 6, 6, 6 then linear features 8, 8


def test_swap_replaces_afbench_modules_too():
    model = nn.Sequential(nn.Linear(4, 4), activations.create("relu_softsign"), nn.Linear(4, 2))
    assert [s.path for s in models.swap(model, "tanh")] == ["1"]
    assert isinstance(model[1], nn.Tanh)


@pytest.mark.parametrize("activation", [n for n in activations.names() if activations.info(n).width_multiplier > 1])
def test_width_multiplier_activations_are_refused_with_the_fix(activation):
    with pytest.raises(AfbenchError, match="act_layer"):
        models.swap(Mixed(), activation)


class Functional(nn.Module):
    def __init__(self, call):
        super().__init__()
        self.fc, self.act, self.call = nn.Linear(4, 4), nn.ReLU(), call

    def forward(self, x):
        return self.call(self.act(self.fc(x)))


@pytest.mark.parametrize("call,named", [(F.relu, "F.relu"), (torch.relu, "torch.relu"),
                                        (lambda x: x.relu(), "x.relu()"), (F.gelu, "F.gelu"),
                                        (torch.sigmoid, "torch.sigmoid"), (torch.tanh, "torch.tanh"),
                                        (F.silu, "F.silu"), (lambda x: x.sigmoid_(), "x.sigmoid_()")])
def test_a_nonlinearity_called_in_forward_is_found_and_named(call, named):
    with pytest.raises(AfbenchError, match=rf"incomplete.*{named.replace('(', '[(]').replace(')', '[)]')}"):
        models.swap(Functional(call), "tanh", (4,))


def test_the_error_names_file_and_line_and_allow_partial_returns_what_is_left():
    path = FIXTURES / "functional_net.py"
    with pytest.raises(AfbenchError, match=rf"F\.relu .*functional_net\.py:{_line_of(path, 'F.relu(')}"):
        models.build(FUNCTIONAL, "tanh", (1, 8, 8), 10)
    model = models.build(FUNCTIONAL, "tanh", (1, 8, 8), 10, allow_partial=True)
    left = models.leftover(model)
    assert [(f.call, f.where) for f in left] == [("F.relu", f"{path.resolve()}:{_line_of(path, 'F.relu(')}")]
    assert [name for name, _ in models.hidden_activations(model)] == ["gelu"]


@pytest.mark.parametrize("activation", ["silu", "noisy_relu", "swish_beta", "gelu", "relu_softplus"])
def test_calls_made_by_the_swapped_in_activation_itself_do_not_count(activation):
    model = Mixed()
    models.swap(model, activation, (3, 8, 8))  # nn.SiLU calls F.silu, NoisyReLU torch.sigmoid: not leftovers
    assert models.leftover(model) == []


def test_a_model_file_with_relu_and_gelu_trains_with_tanh_and_mish_on_digits(digits):
    for activation, module in (("tanh", nn.Tanh), ("mish", nn.Mish)):
        config = RunConfig(dataset="digits", model=MY_NET, activation=activation, epochs=3, batch_size=64,
                           lr=3e-3, latency_samples=20, probe_size=64)
        result = train(config, digits)
        assert result.status == "done"
        assert result.epochs[-1].test_acc > 0.8  # chance is 0.1
        assert len(result.epochs[-1].layers["dead_output"]) == 2  # the file's nn.ReLU and nn.GELU
        model = models.build(MY_NET, activation, (1, 8, 8), 10)
        assert [type(m) for _, m in models.hidden_activations(model)] == [module, module]


def test_diagnostics_give_one_value_per_swapped_site(digits):
    model = Mixed()
    sites = models.swap(model, "elu", (3, 8, 8))
    probe = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    report = layer_diagnostics(model, probe, torch.arange(16) % 4)
    assert all(len(values) == len(sites) == 5 for values in report.values())
    # ELU outputs are never exactly zero: no dead units, unlike the ReLU it replaced.
    assert report["dead_output"] == [0.0] * 5


def test_act_layer_builders_build_their_own_activations_in_forward_order():
    model = models.build(ACT_LAYER, "maxout", (3, 8, 8), 10)  # k = 2: the layers before are twice as wide
    placed = models.hidden_activations(model)
    assert [name for name, _ in placed] == ["1", "5"]
    assert model[0].out_channels == 128 and model[4].out_features == 512
    relu = models.count_parameters(models.build(ACT_LAYER, "relu", (3, 8, 8), 10))
    matched = models.count_parameters(models.build(ACT_LAYER, "maxout", (3, 8, 8), 10, match_params=True))
    assert abs(matched - relu) / relu < 0.01
    prelu = models.build(ACT_LAYER, "prelu", (3, 8, 8), 10)
    assert [m.weight.numel() for _, m in models.hidden_activations(prelu)] == [64, 256]


def test_package_module_names_work(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    model = models.build("my_net:make", "tanh", (1, 8, 8), 10)
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert models.identity("my_net:make").startswith("my_net:make@")


def test_identity_holds_the_path_and_the_file_hash_and_an_edited_file_is_refused(tmp_path):
    path = tmp_path / "net.py"
    path.write_text((FIXTURES / "my_net.py").read_text())
    ident = models.identity(f"{path}:make")
    assert ident == f"{path.resolve()}:make@{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    assert models.count_parameters(models.build(ident, "relu", (1, 8, 8), 10)) == 64 * 64 + 64 + 64 * 32 + 32 + 330
    path.write_text(path.read_text() + "\n# edited\n")
    assert models.identity(f"{path}:make") != ident
    with pytest.raises(AfbenchError, match="changed since"):
        models.build(ident, "relu", (1, 8, 8), 10)


def test_a_model_file_sent_elsewhere_loads_under_its_identity_without_its_path(tmp_path):
    """What a Ray worker does: the driver reads the file, the worker never sees PATH."""
    from afbench.models import user

    path = tmp_path / "driver_only" / "net.py"
    path.parent.mkdir()
    path.write_text((FIXTURES / "my_net.py").read_text())
    ident = models.identity(f"{path}:make")
    data = user.source(ident)
    assert data == path.read_bytes()
    path.unlink()
    path.parent.rmdir()
    with pytest.raises(AfbenchError, match="does not exist"):
        models.build(ident, "relu", (1, 8, 8), 10)
    user.provide(ident, data)
    assert models.identity(ident) == ident  # the same configuration as on the driver
    assert models.count_parameters(models.build(ident, "tanh", (1, 8, 8), 10)) == 64 * 64 + 64 + 64 * 32 + 32 + 330
    with pytest.raises(AfbenchError, match="has hash .* not"):
        user.provide(ident, data + b"# edited on the way\n")


def test_a_model_file_sent_to_where_its_path_exists_uses_the_path_and_its_siblings(tmp_path, monkeypatch):
    from afbench.models import user

    (tmp_path / "blocks.py").write_text("from torch import nn\n\ndef body(n):\n    return nn.Linear(n, 10)\n")
    (tmp_path / "net.py").write_text("import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parent))\n"
                                     "from torch import nn\nfrom blocks import body\n\n"
                                     "def make():\n    return nn.Sequential(nn.Flatten(), body(64), nn.ReLU(), "
                                     "nn.Linear(10, 10))\n")
    ident = models.identity(f"{tmp_path / 'net.py'}:make")
    user.provide(ident, user.source(ident))
    assert (str((tmp_path / "net.py").resolve()), ident.rsplit("@", 1)[1]) not in user._SHIPPED
    assert models.count_parameters(models.build(ident, "tanh", (1, 8, 8), 10)) == 650 + 110


def test_afbench_cost_names_a_user_model_by_its_identity(tmp_path):
    from afbench.cost.api import run_cost

    result = run_cost(tmp_path, "digits", MY_NET, ["tanh"], budget_s=0.5, figure=False)
    assert {row["model"] for row in result.rows} == {models.identity(MY_NET)}
    assert {row["activation"] for row in result.rows} == {"relu", "tanh"}
    assert all(row["params"] == 64 * 64 + 64 + 64 * 32 + 32 + 330 for row in result.rows)


@pytest.mark.parametrize("source,name,message", [
    ("def make(:\n", "make", "syntax error"),
    ("raise RuntimeError('no GPU here')\n", "make", "RuntimeError: no GPU here"),
    ("from torch import nn\ndef build():\n    return nn.ReLU()\n", "make", "no callable 'make'.*build"),
    ("def make():\n    return 3\n", "make", "returned int, not an nn.Module"),
    ("def make(depth):\n    pass\n", "make", "requires depth"),
    ("from torch import nn\ndef make():\n    return nn.Linear(4, 4)\n", "make", "fails on a batch of shape"),
    ("from torch import nn\ndef make():\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))\n", "make",
     "logits of shape .batch, 10.*got .2, 3."),
])
def test_bad_model_files_are_clear_errors(tmp_path, source, name, message):
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(AfbenchError, match=message):
        models.build(f"{path}:{name}", "relu", (1, 8, 8), 10)


def test_missing_files_and_modules_are_clear_errors():
    with pytest.raises(AfbenchError, match="does not exist"):
        models.build("no/such/file.py:make", "relu", (1, 8, 8), 10)
    with pytest.raises(AfbenchError, match="cannot find module"):
        models.build("no_such_package_xyz.nets:make", "relu", (1, 8, 8), 10)


def test_a_swapped_model_swaps_again_even_from_identity():
    model = Mixed()
    models.swap(model, "identity", (3, 8, 8))
    assert [s.old for s in models.swap(model, "tanh", (3, 8, 8))] == [nn.Identity] * 5
    assert all(isinstance(m, nn.Tanh) for _, m in models.hidden_activations(model))


def test_a_module_called_twice_stays_one_module():
    class Shared(nn.Module):  # torchvision's ResNet blocks call one self.relu twice
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.relu, self.out = nn.Linear(4, 4), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)

        def forward(self, x):
            return self.out(self.relu(self.fc2(self.relu(self.fc1(x)))))

    model = Shared()
    assert [s.path for s in models.swap(model, "elu", (4,))] == ["relu"]
    assert isinstance(model.relu, nn.ELU) and models.leftover(model) == []
