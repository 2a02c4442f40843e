"""bench/e2e.py: the end-to-end benchmark's smoke run, and its exit without MNIST."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def test_e2e_exits_cleanly_without_mnist(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    e2e = importlib.import_module("e2e")
    monkeypatch.setattr(sys, "argv", ["e2e.py", "--quick", "--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        e2e.main()
    message = str(exit_.value.code)
    assert "MNIST not found" in message and "--data-dir" in message


@pytest.mark.slow  # 22 s on a quiet 2-core machine, a minute under load (latency on 10,000 images)
def test_e2e_quick_two_activations(mnist_dir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(BENCH / "e2e.py"), "--quick", "--activations", "relu,tanh",
                           "--threads", "1", "--data-dir", str(mnist_dir)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "round=1 afbench_s=" in out and "speedup_B/A=" in out
    assert "mean afbench_s=" in out
    assert "ideal epoch" in out and "fraction of the limit" in out
    assert "relu afbench" in out and "tanh afbench" in out
