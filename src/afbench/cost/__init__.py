"""The cost profile of activations in a model: time (paired, interleaved, with CIs),
memory, FLOPs, ONNX deployability, low-precision numerics and price.

>>> from afbench import cost, data
>>> prepared = data.prepare(data.load("mnist"))
>>> result = cost.profile("lenet", prepared, ["relu", "tanh", "mish"])   # doctest: +SKIP
>>> result.rows[1]["step_ratio"], result.rounds.stop                      # doctest: +SKIP
"""

from afbench.cost.api import profile_for_sweep, run_cost
from afbench.cost.profile import CostProfile, profile
from afbench.store.cost import COLUMNS, load_cost, save_cost, write_csv

__all__ = ["COLUMNS", "CostProfile", "load_cost", "profile", "profile_for_sweep", "run_cost", "save_cost",
           "write_csv"]
