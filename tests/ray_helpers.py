"""Activations that misbehave on purpose, imported by Ray workers in test_ray.py."""

import os
import signal
from pathlib import Path

import torch
from torch import nn


class DieOnce(nn.Module):
    """ReLU whose first forward pass, in any process, kills that process (SIGKILL):
    a worker dying mid-run. The marker file makes every later attempt behave."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        marker = Path(os.environ["AFBENCH_TEST_MARKER"])
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return torch.relu(x)


class Raises(nn.Module):
    """Passes the up-front check (a few samples), fails on a training batch of 64."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] >= 64:
            raise ValueError("this activation always fails in training")
        return x


class Hangs(nn.Module):
    """An activation whose forward never returns: a stuck user module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import time

        while True:
            time.sleep(0.05)
