"""--compile: the training step through torch.compile, compiled in the warm-up only."""

import pandas as pd
import pytest
import torch

from afbench.cli import main
from afbench.config import RunConfig
from afbench.engine import train as engine
from afbench.engine import trainer as engine_trainer


@pytest.fixture
def recompiles_fail_after_warm_up(monkeypatch):
    """A compilation after the warm-up would land in a timed epoch: make it an error."""
    warm_up = engine_trainer.Trainer.warm_up

    def strict_warm_up(self):
        seconds = warm_up(self)
        torch._dynamo.config.error_on_recompile = True
        return seconds

    monkeypatch.setattr(engine_trainer.Trainer, "warm_up", strict_warm_up)
    with torch._dynamo.config.patch(error_on_recompile=False):  # restored afterwards (monkeypatch would delete it)
        yield


@pytest.mark.slow  # the compiled stack below covers compiled training in the default run
def test_a_compiled_run_trains_as_the_eager_one(digits, recompiles_fail_after_warm_up):
    # 1,437 training images in batches of 64 end with a batch of 29: a second shape, warmed up too.
    config = RunConfig(activation="tanh", epochs=2, batch_size=64, seed=1)
    compiled = engine.train(config, digits, compile=True)
    torch._dynamo.config.error_on_recompile = False
    eager = engine.train(config, digits)
    assert [e.train_loss for e in compiled.epochs] == pytest.approx([e.train_loss for e in eager.epochs],
                                                                       rel=1e-5)
    assert [e.test_acc for e in compiled.epochs] == [e.test_acc for e in eager.epochs]
    assert compiled.provenance["compile"] == "default" and compiled.provenance["compile_s"] > 0
    assert "compile_s" not in eager.provenance


@pytest.mark.slow  # a compiled single run is in the default run; a stack adds 10-20 s
def test_a_compiled_stack_trains_as_the_eager_one(digits, recompiles_fail_after_warm_up):
    configs = [RunConfig(activation="relu", epochs=2, batch_size=64, seed=s) for s in (0, 1)]
    compiled = engine.train_stack(configs, digits, compile=True)
    torch._dynamo.config.error_on_recompile = False
    eager = engine.train_stack(configs, digits)
    for c, e in zip(compiled, eager):
        assert [r.train_loss for r in c.epochs] == pytest.approx([r.train_loss for r in e.epochs], rel=1e-5)
        assert c.provenance["stack_size"] == 2 and c.provenance["compile_s"] > 0


def test_cuda_graphs_on_a_gpu_inductor_on_a_cpu():
    assert engine.compile_mode(torch.device("cuda")) == "reduce-overhead"
    assert engine.compile_mode(torch.device("cpu")) == "default"


@pytest.mark.slow  # compiling on a CPU: 5 s
def test_the_compile_flag_reaches_the_runs_and_the_report(tmp_path, capsys):
    assert main(["run", "--activations", "relu", "--epochs", "1", "--seeds", "1", "--out", str(tmp_path),
                 "--no-progress", "--compile"]) == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert (runs["provenance.compile_s"] > 0).all() and (runs["provenance.compile"] == "default").all()
    assert "1 of 1 runs trained through torch.compile" in (tmp_path / "summary.md").read_text()


def test_compile_without_a_cpp_compiler_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert main(["run", "--device", "cpu", "--compile", "--out", str(tmp_path)]) == 2
    assert "--compile on a CPU needs a C++ compiler" in capsys.readouterr().err
    assert not (tmp_path / "results.sqlite").exists()  # refused before anything was queued


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_compiled_run_on_a_gpu_uses_cuda_graphs(digits):
    from afbench import data

    on_gpu = data.prepare(data.load("digits"), device="cuda")
    result = engine.train(RunConfig(activation="relu", epochs=2, batch_size=64, device="cuda"), on_gpu,
                          compile=True)
    assert result.status == "done" and result.provenance["compile"] == "reduce-overhead"
    assert result.epochs[-1].test_acc > 0.8
