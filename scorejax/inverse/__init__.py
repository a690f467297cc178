"""Inverse problems y = A x + noise with a score-based prior (sparse-view CT, undersampled MRI).

    A = Radon(16, angles)                  # or SubsampledFourier(cartesian_line_mask(16, 4)),
                                           # PixelMask, MatrixOperator, Downsample, GaussianBlur
    y = measure(key, A, x, noise_std)      # A.forward(x) + noise
    x, nfe = solve_inverse_problem(key, sde, score_fn, y, A, x.shape, method="pigdm",
                                   noise_std=noise_std)

Modules: `operators` (the measurement operators: forward, adjoint, pseudo-inverse),
`radon` (the Radon transform and filtered back-projection), `solvers` (the methods of
`INVERSE_METHODS` and `solve_inverse_problem`). `scorejax.evaluation.inverse` runs them on
images (`--mode=sample` with `sampling.task='inverse'`); docs/inverse.md has the measurements.
"""

from scorejax.inverse.operators import (Downsample, GaussianBlur, LinearOperator, MatrixOperator,
                                        PixelMask, SubsampledFourier, cartesian_line_mask, measure)
from scorejax.inverse.radon import FBP_FILTERS, Radon, circle_mask
from scorejax.inverse.solvers import INVERSE_METHODS, solve_inverse_problem

__all__ = ["MatrixOperator", "Radon", "SubsampledFourier", "PixelMask", "Downsample",
           "GaussianBlur", "LinearOperator", "cartesian_line_mask", "circle_mask", "measure",
           "FBP_FILTERS", "INVERSE_METHODS", "solve_inverse_problem"]
