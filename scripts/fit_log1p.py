"""Fit the polynomial behind afbench.activations.kernels.log1p_unit and print its coefficients.

log(1 + u) = u P(2u - 1) on u in [0, 1], P of degree 8 with the least largest relative error
(Lawson's iteratively reweighted least squares, which converges to the minimax fit). The
kernels use it instead of 2 atanh(u / (2 + u)), which needs a division on their longest chain.
Usage: python scripts/fit_log1p.py
"""

import numpy as np

DEGREE = 8


def fit(degree: int = DEGREE, iterations: int = 100) -> tuple[np.ndarray, float]:
    u = np.linspace(1e-12, 1.0, 40_001)
    target = np.log1p(u) / u
    basis = np.vander(2 * u - 1, degree + 1, increasing=True)
    weights = np.ones_like(u)
    for _ in range(iterations):
        scale = np.sqrt(weights) / target  # relative error
        coefficients, *_ = np.linalg.lstsq(basis * scale[:, None], target * scale, rcond=None)
        error = np.abs(basis @ coefficients - target) / target
        weights = weights * error / error.max() + 1e-15
        weights /= weights.sum()
    return coefficients, float(error.max())


if __name__ == "__main__":
    coefficients, error = fit()
    print(f"# degree {DEGREE}, largest relative error {error:.2e}")
    print("(" + ", ".join(f"{c:.10g}" for c in coefficients) + ")")
