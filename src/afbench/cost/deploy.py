"""Deployability: does the model export to ONNX, run in onnxruntime, and agree with PyTorch?

Exporter: the TorchScript one (``torch.onnx.export(..., dynamo=False)``) at opset 17.
Here it exports LeNet in tens of milliseconds and works for every registered
activation; the dynamo exporter took 1.5-5 s per model and rewrites opset 17 requests
to 18. Failure at any stage (export, session creation, run, mismatch) is a result,
reported in one line, never an exception.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

OPSET = 17
RTOL, ATOL = 1e-3, 1e-4  # |onnx - torch| <= ATOL + RTOL |torch|, elementwise on the logits


@dataclass(frozen=True)
class Deployment:
    ok: bool  # exported, ran and matched within the tolerance
    opset: int
    max_abs_error: float | None  # on the logits of the test inputs; None when it did not run
    reason: str  # "" when ok, else one line: the stage that failed and why


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


@contextlib.contextmanager
def _silent_stdout():
    """Send file descriptor 1 to /dev/null: on failure the TorchScript exporter prints
    the whole IR graph from C++, past Python's sys.stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def export_bytes(model: nn.Module, example: torch.Tensor, opset: int = OPSET) -> bytes:
    """The ONNX model as bytes, with a dynamic batch dimension."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), _silent_stdout():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=opset, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    return buffer.getvalue()


def check_onnx(model: nn.Module, inputs: torch.Tensor, opset: int = OPSET) -> Deployment:
    """Export ``model`` (eval mode, on CPU), run ``inputs`` (real test images) in
    onnxruntime's CPU provider and compare the logits with PyTorch's."""
    try:
        import onnx  # noqa: F401  torch's exporter needs it, and would only say "OnnxExporterError"
        import onnxruntime as ort
    except ImportError as err:
        missing = (err.name or "onnxruntime").split(".")[0]
        return Deployment(False, opset, None, f"{missing} is not installed: pip install 'afbench[onnx]'")
    model = copy.deepcopy(model).eval().cpu()  # the caller's model stays where and as it was
    inputs = inputs.detach().cpu().float()
    try:
        blob = export_bytes(model, inputs[:1], opset)
    except Exception as err:  # any exporter failure is a finding about the activation
        return Deployment(False, opset, None, "export failed: " + _one_line(err))
    try:
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        got = session.run(None, {"x": inputs.numpy()})[0]
    except Exception as err:
        return Deployment(False, opset, None, "onnxruntime failed: " + _one_line(err))
    with torch.no_grad():
        want = model(inputs).numpy()
    error = float(np.max(np.abs(got - want)))
    if not np.all(np.abs(got - want) <= ATOL + RTOL * np.abs(want)):
        return Deployment(False, opset, error, f"mismatch: max |onnx - torch| = {error:.3g} "
                                               f"> {ATOL:g} + {RTOL:g} |torch|")
    return Deployment(True, opset, error, "")
