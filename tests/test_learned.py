"""Issue 17: learnable activations get their own optimizer group and learning rate, and
the report shows each one's learned curve per layer beside its initial one."""

import pytest
import torch

from afbench import activations
from afbench.config import RunConfig
from afbench.engine import train as engine
from afbench.report import render
from afbench.sweep import Grid, LocalBackend, Runtime, execute


def test_act_lr_sets_the_learning_rate_of_activation_parameters_only(digits):
    config = RunConfig(activation="prelu", lr=1e-3, act_lr=0.05, weight_decay=0.1)
    model = engine.build_model(config, digits)
    groups = engine.make_optimizer(config, model).param_groups
    slopes = {id(p) for m in model.modules() if isinstance(m, torch.nn.PReLU) for p in m.parameters()}
    act_group = next(g for g in groups if {id(p) for p in g["params"]} == slopes)
    assert act_group["lr"] == 0.05 and act_group["weight_decay"] == 0.0
    assert all(g["lr"] == 1e-3 and g["weight_decay"] == 0.1 for g in groups if g is not act_group)


def test_learned_curves_are_stored_and_drawn(digits, tmp_path):
    result = engine.train(RunConfig(activation="prelu", epochs=1, latency_samples=5), digits)
    curves = result.summary.learned_curves
    assert [c["layer"] for c in curves] == ["act1", "act2"]
    x = torch.tensor(curves[0]["x"])
    assert curves[0]["initial"] == pytest.approx(torch.where(x > 0, x, 0.25 * x).tolist())  # PReLU's init
    assert curves[0]["y"] != curves[0]["initial"]  # it learned
    assert engine.train(RunConfig(activation="relu", epochs=1, latency_samples=5), digits).summary.learned_curves \
        is None
    execute(Grid(RunConfig(epochs=1, latency_samples=5), ("relu", "star_relu")), tmp_path,
            LocalBackend(Runtime(progress=False, workers=1, stack=1, cost="off")), device="cpu")
    report = render.write(tmp_path, "relu")
    assert "learned-star_relu-digits-mlp" in report.figures and (tmp_path / "figures" /
                                                                "learned-star_relu-digits-mlp.png").exists()


@pytest.mark.parametrize("per_channel", [False, True])
def test_pau_exports_to_onnx_and_onnxruntime_agrees(per_channel):
    ort = pytest.importorskip("onnxruntime")
    import io

    import numpy as np

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), activations.create("pau", num_features=16,
                                                                            per_channel=per_channel),
                                torch.nn.Linear(16, 3)).eval()
    x = torch.randn(5, 8)
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, opset_version=17, dynamo=False)
    session = ort.InferenceSession(buffer.getvalue())
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(out, model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
