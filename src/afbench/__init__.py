"""afbench: benchmark activation functions fairly, fast and reproducibly.

Data flows one way: config -> data + model -> engine -> results store -> report.
"""

__version__ = "0.2.0"
