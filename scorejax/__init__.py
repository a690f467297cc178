"""scorejax: score-based generative modeling through SDEs in JAX/Flax.

Modules: `sde` (VE/VP/sub-VP SDEs), `analytic` (Gaussian-mixture oracle),
`losses` (score matching), `sampling` (PC, ODE, annealed Langevin),
`likelihood` (exact log-likelihood, bits/dim), `models` (Flax score networks),
`data`, `train` / `main` (training CLI), `evaluate`, `metrics` (FID/IS/KID).
See docs/design.md for the map.
"""

__version__ = "0.1.0"
