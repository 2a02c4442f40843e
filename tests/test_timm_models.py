"""Real timm models (no pretrained weights, nothing downloaded) swap completely or are
refused with the call named. timm's model code is imported beside a test-only torchvision
stand-in (tests/torchvision_stand_in.py) when torchvision cannot load; importing timm
takes several seconds, hence slow."""

from pathlib import Path

import pytest
import torch
from torch import nn

from afbench import models
from afbench.errors import AfbenchError

pytestmark = pytest.mark.slow




def _timm():
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import torchvision_stand_in

    torchvision_stand_in.install()
    return pytest.importorskip("timm")


@pytest.mark.parametrize("name,shape,old", [
    ("resnet18", (3, 32, 32), {"ReLU"}),
    ("vit_tiny_patch16_224", (3, 32, 32), {"GELU"}),
    ("convnext_atto", (3, 32, 32), {"GELU"}),  # timm.layers.activations.GELU, timm's own class
    ("efficientnet_b0", (3, 32, 32), {"SiLU", "Sigmoid"}),  # squeeze-excite gates are swapped too
])
def test_timm_models_swap_completely(name, shape, old):
    timm = _timm()
    kwargs = {"img_size": shape[1]} if name.startswith("vit") else {}
    model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs)
    before = [m for m in model.modules() if type(m).__name__ in old]
    replaced = models.swap(model, "mish", shape)
    assert {s.old.__name__ for s in replaced} == old and len(replaced) == len(before) > 0
    assert not any(type(m).__name__ in old for m in model.modules())
    assert all(isinstance(m, nn.Mish) for _, m in models.hidden_activations(model))
    assert models.leftover(model) == []
    assert model.eval()(torch.zeros(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize("name,shape,kwargs,call,source", [
    ("mobilevitv2_050", (3, 64, 64), {}, "F.relu", "mobilevit.py"),
    ("convit_tiny", (3, 32, 32), {"img_size": 32}, "torch.sigmoid", "convit.py"),
])
def test_timm_models_with_functional_nonlinearities_are_refused_with_the_call_named(name, shape, kwargs, call,
                                                                                      source):
    timm = _timm()
    model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs)
    path = Path(timm.__file__).parent / "models" / source
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if f"{call.split('.')[-1]}(" in text
                and "def " not in text and not text.strip().startswith("#"))
    with pytest.raises(AfbenchError, match=rf"{call} in forward of .* at .*{source}:{line}"):
        models.swap(model, "tanh", shape)
