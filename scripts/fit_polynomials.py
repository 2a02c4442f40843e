"""Fit the polynomials behind afbench's activation kernels and print their coefficients.

- log1p: log(1 + u) = u P(2u - 1) on u in [0, 1], P of degree 8 (kernels.log1p_unit and
  native.cpp's log1p_unit; the coefficients live once, in native.LOG1P). It replaces
  2 atanh(u / (2 + u)), which needs a division on the kernels' longest chain.
- exp: e^r = 1 + r + r^2 Q(r) on |r| <= ln 2 / 2, Q of degree 3 (native.cpp's exp_nonpositive).

Each is the fit with the least largest relative error, found by Lawson's iteratively
reweighted least squares, which converges to the minimax fit.
Usage: python scripts/fit_polynomials.py
"""

import numpy as np


def minimax(basis: np.ndarray, target: np.ndarray, scale: np.ndarray, iterations: int = 150):
    """Coefficients c minimising max |scale * (basis @ c - target)|, and that maximum."""
    weights = np.ones_like(target)
    for _ in range(iterations):
        w = np.sqrt(weights) * scale
        coefficients, *_ = np.linalg.lstsq(basis * w[:, None], target * w, rcond=None)
        error = np.abs(scale * (basis @ coefficients - target))
        weights = weights * error / error.max() + 1e-15
        weights /= weights.sum()
    return coefficients, float(error.max())


def log1p_fit(degree: int = 8):
    u = np.linspace(1e-12, 1.0, 40_001)
    target = np.log1p(u) / u
    return minimax(np.vander(2 * u - 1, degree + 1, increasing=True), target, 1 / target)


def exp_fit(degree: int = 3):
    half = np.log(2) / 2 + 2e-7  # float32 rounding can carry r a little past ln 2 / 2
    r = np.linspace(-half, half, 40_001)
    basis = np.vander(r, degree + 1, increasing=True) * (r * r)[:, None]
    return minimax(basis, np.exp(r) - 1 - r, np.exp(-r))  # relative to e^r


if __name__ == "__main__":
    for name, (coefficients, error) in (("log1p", log1p_fit()), ("exp", exp_fit())):
        print(f"# {name}: largest relative error {error:.3g}")
        print("(" + ", ".join(f"{c:.10g}" for c in coefficients) + ")")
