"""Plugins: an installed package adds an activation through an ``afbench.activations``
entry point, and every process sees it (a spawned worker, a Ray task), not only the one
that imported the package. The package is a folder on sys.path with a ``*.dist-info``
beside it: what pip leaves behind, without pip."""

import multiprocessing
import os
import textwrap

import pytest
import torch
from torch import nn

from afbench.activations.registry import plugin_spec
from afbench.errors import AfbenchError
from afbench.plugins import Registry

PLUGIN = textwrap.dedent('''
    import torch
    from torch import nn


    class Twice(nn.Module):
        def forward(self, x):
            return 2 * x


    class Scaled(nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale


    def cube(x):
        return x ** 3


    def tiny_net(num_classes, in_chans):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * 16, 8), nn.ReLU(), nn.Linear(8, num_classes))


    def tiny_data(data_dir=None):
        from afbench.data import from_tensors
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (12, 1, 4, 4), generator=g, dtype=torch.uint8)
        y = torch.arange(12) % 3
        return from_tensors(x, y, x, y, name="tiny")


    def probe():
        """What a worker computes with the plugin: resolved by name inside afbench."""
        from afbench import activations, models
        out = activations.create("twice")(torch.tensor([1.0, -3.0])).tolist()
        net = models.build("mlp", "afb-twice", (1, 4, 4), 3)  # any case and '-' for '_'
        return out, tuple(net(torch.zeros(2, 1, 4, 4)).shape), activations.info("cube").name


    def probe_model_and_data():
        from afbench import data, models
        raw = data.load("tiny")
        net = models.build("tiny-net", "twice", raw.image_shape, len(raw.classes))
        return type(net[2]).__name__, tuple(net(torch.zeros(5, *raw.image_shape)).shape)
''')
ENTRY_POINTS = textwrap.dedent('''
    [afbench.activations]
    twice = afb_test_plugin:Twice
    afb_twice = afb_test_plugin:Twice
    cube = afb_test_plugin:cube
    relu = afb_test_plugin:cube
    broken = afb_test_plugin_missing:Nope
    scaled = afb_test_plugin:Scaled

    [afbench.models]
    tiny_net = afb_test_plugin:tiny_net

    [afbench.datasets]
    tiny = afb_test_plugin:tiny_data
''')


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A distribution 'afb-test-plugin' installed into tmp_path, on sys.path and PYTHONPATH."""
    (tmp_path / "afb_test_plugin.py").write_text(PLUGIN)
    info = tmp_path / "afb_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: afb-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    return tmp_path


def _fresh_registry() -> Registry:
    registry = Registry("activations", adapt=plugin_spec)
    registry.register("relu", plugin_spec("relu", nn.ReLU))
    return registry


def test_an_entry_point_adds_an_activation_and_a_built_in_name_stays_built_in(installed):
    registry = _fresh_registry()
    assert {"twice", "cube"} <= set(registry.names())
    assert isinstance(registry.get("Twice").factory(), nn.Module)
    x = torch.tensor([-1.5, 2.0])
    torch.testing.assert_close(registry.get("cube").factory()(x), torch.tensor([-3.375, 8.0]))
    assert isinstance(registry.get("relu").factory(), nn.ReLU)  # the plugin's 'relu' is ignored


def test_a_broken_plugin_is_named_when_asked_for_and_harms_no_other(installed):
    registry = _fresh_registry()
    assert "broken" not in registry.names() and "twice" in registry.names()
    with pytest.raises(AfbenchError, match="'broken'.*afb_test_plugin_missing.*ModuleNotFoundError.*afb-test-plugin"):
        registry.get("broken")
    with pytest.raises(AfbenchError, match="'scaled'.*Scaled.__init__ requires scale.*give scale a default"):
        registry.get("scaled")


def test_an_unknown_name_lists_the_plugins_too(installed):
    with pytest.raises(AfbenchError, match="Did you mean 'twice'.*cube"):
        _fresh_registry().get("twicee")


def test_a_spawned_worker_process_finds_the_plugins_by_their_entry_points(installed):
    import afb_test_plugin

    with multiprocessing.get_context("spawn").Pool(1) as pool:  # one fresh process: torch imports once
        out, shape, cube = pool.apply(afb_test_plugin.probe)
        swapped, data_shape = pool.apply(afb_test_plugin.probe_model_and_data)
    assert out == [2.0, -6.0] and shape == (2, 3) and cube == "cube"
    assert swapped == "Twice" and data_shape == (5, 3)  # the plugin model's ReLU became the plugin activation


@pytest.mark.slow
def test_a_ray_task_finds_the_plugin_by_its_entry_point(installed):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("Ray is already running in this process")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
    try:
        @ray.remote
        def probe():
            import afb_test_plugin  # found through PYTHONPATH, as an installed package would be

            return afb_test_plugin.probe(), os.getpid()

        (out, shape, cube), pid = ray.get(probe.remote(), timeout=120)
    finally:
        ray.shutdown()
    assert out == [2.0, -6.0] and shape == (2, 3) and cube == "cube" and pid != os.getpid()


def test_the_lists_show_plugins_without_failing(installed, monkeypatch):
    from afbench import data, models

    monkeypatch.setattr(models, "REGISTRY", _fresh_models_registry())
    monkeypatch.setattr(data, "REGISTRY", _fresh_data_registry())
    assert models.names()[-1] == "tiny_net" and "installed package" in models.DESCRIPTIONS["tiny_net"]
    assert models.DEFAULT_NORM["tiny_net"] == "its own" and models.DEFAULT_NORM["vgg11"] == "batch"
    row = data.availability()[-1]
    assert row["name"] == "tiny" and "afb_test_plugin:tiny_data" in row["description"]
    assert "tiny" in data.names()


def _fresh_models_registry() -> Registry:
    from afbench import models

    registry = Registry("models", adapt=models._plugin_model)
    for name, builder in models.MODELS.items():
        registry.register(name, builder)
    return registry


def _fresh_data_registry() -> Registry:
    from afbench import data

    registry = Registry("datasets", adapt=data._plugin_dataset, label="data set")
    for key, info in data.DATASETS.items():
        registry.register(key, info)
    return registry
