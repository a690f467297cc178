"""Inaccurate scores in low-density regions: the toy MLP's learned score vs the data score.

Song & Ermon 2019 (NCSN), Sec. 3.2.1 and Fig. 2; seed 001's Fig. 3. Score matching
weighs the score error by the data density (Eq. 1: E_p[|s_theta - grad log p|^2]),
so where the data have almost no mass nothing constrains the network. The toy MLP
of configs/toy_2d.py is trained (continuous VP SDE, denoising score matching) on the
imbalanced 2-D mixture 0.2 N((-1.5,-1.5), 0.35^2 I) + 0.8 N((1.5,1.5), 0.35^2 I) and
its score at a small time t = 0.01 (sigma(t) = 0.03: p_t is the data distribution to
within 0.01 %) is compared with the exact grad log p_t on a grid.

The error is |s_theta - s| / max(|s|, 1): relative where the score is large (far out
the true score grows linearly with the distance to the modes) and absolute near the
modes, where s -> 0. Regions are set by the density: "high" is inside the 90 %
highest-density region of p_t, "low" is outside its 99.9 % region.

    python examples/low_density_scores.py --out docs/images

trains for configs/toy_2d.py's 4000 steps (about 1.5 minutes on 2 CPU cores; the
checkpoint in --workdir is reused when the script is rerun), prints the mean error in
both regions and writes low_density_scores.png (true and learned score fields over
the density, and the error as a heat map with the two regions' contours).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs import toy_2d  # noqa: E402
from examples import _common  # noqa: E402
from scorejax import training  # noqa: E402
from scorejax.toy import datasets, mixture  # noqa: E402

T_EVAL = 0.01
LIM = 4.0
HIGH_MASS, LOW_MASS = 0.9, 0.999


def config(n_iters: int | None = None, batch_size: int | None = None,
           ema_rate: float | None = None):
  """configs/toy_2d.py (imbalanced mixture, VP, MLP) without snapshot samples.

  Shorter runs need a shorter EMA: after n steps the EMA still holds ema_rate^n of the
  initialization (0.999^1000 = 0.37).
  """
  c = toy_2d.get_config()
  if ema_rate is not None:
    c.model.ema_rate = ema_rate
  c.training.snapshot_sampling = False
  if n_iters is not None:
    c.training.n_iters = n_iters
  if batch_size is not None:
    c.training.batch_size = batch_size
  c.training.snapshot_freq = c.training.n_iters
  c.training.snapshot_freq_for_preemption = c.training.n_iters
  return c


def train(cfg, workdir: str):
  """(Components, final state): trains in `workdir`, or resumes / reuses what is there."""
  state = training.train_and_evaluate(cfg, workdir)
  return training.build_components(cfg), state


def density_levels(mix: mixture.GaussianMixture, sde, key: jax.Array, n: int = 200_000) -> dict:
  """Density thresholds of p_t's highest-density regions holding HIGH_MASS and LOW_MASS."""
  x = mix.marginal(sde, T_EVAL).sample(key, n)
  p = np.exp(np.asarray(mix.marginal(sde, T_EVAL).log_prob(x)))
  return {"high": float(np.quantile(p, 1 - HIGH_MASS)), "low": float(np.quantile(p, 1 - LOW_MASS))}


def score_errors(c, state, *, n: int = 81, key: jax.Array = jax.random.key(0)) -> dict:
  """Learned and exact scores at t = T_EVAL on an n x n grid, the error, and its region means."""
  mix = datasets.ANALYTIC_2D["imbalanced_mixture"]()
  g = np.linspace(-LIM, LIM, n)
  xx, yy = np.meshgrid(g, g)
  pts = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], -1), jnp.float32)
  t = jnp.full((pts.shape[0],), T_EVAL)
  learned = np.asarray(jax.jit(training.ema_score_fn(c, state))(pts, t))
  exact = np.asarray(mixture.marginal_score_fn(mix, c.sde)(pts, t))
  density = np.exp(np.asarray(mixture.marginal_log_prob_fn(mix, c.sde)(pts, t)))
  error = np.linalg.norm(learned - exact, axis=-1) / np.maximum(np.linalg.norm(exact, axis=-1), 1.0)
  levels = density_levels(mix, c.sde, key)
  high, low = density >= levels["high"], density < levels["low"]
  return {"grid": (xx, yy), "points": np.asarray(pts), "learned": learned, "exact": exact,
          "density": density, "error": error, "levels": levels,
          "error_high": float(error[high].mean()), "error_low": float(error[low].mean()),
          "fraction_low": float(low.mean())}


def plot(result: dict, out: str) -> str:
  plt = _common.pyplot()
  xx, yy = result["grid"]
  shape = xx.shape
  density = result["density"].reshape(shape)
  sub = (slice(None, None, 5), slice(None, None, 5))  # a coarser grid for the arrows
  fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.9))
  for ax, name in zip(axes[:2], ("exact", "learned")):
    ax.contourf(xx, yy, density, levels=12, cmap="Oranges")
    s = result[name].reshape(shape + (2,))
    ax.quiver(xx[sub], yy[sub], s[..., 0][sub], s[..., 1][sub], angles="xy", width=0.004)
    ax.set_title({"exact": "data score grad log p", "learned": "learned score (toy MLP)"}[name],
                 fontsize=9)
  im = axes[2].pcolormesh(xx, yy, np.log10(result["error"].reshape(shape)), cmap="viridis",
                          shading="auto")
  axes[2].contour(xx, yy, density, levels=[result["levels"]["low"], result["levels"]["high"]],
                  colors=["w", "r"], linewidths=0.8)
  axes[2].set_title(f"log10 error; red: 90% region (mean {result['error_high']:.3f}),\n"
                    f"outside white: beyond 99.9% (mean {result['error_low']:.2f})", fontsize=8)
  fig.colorbar(im, ax=axes[2], fraction=0.046)

  for ax in axes:
    ax.set_xlim(-LIM, LIM)
    ax.set_ylim(-LIM, LIM)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
  fig.tight_layout()
  return _common.save(fig, out, "low_density_scores.png")


def main(argv=None) -> dict:
  p = _common.parser(__doc__.splitlines()[0], workdir="low_density_toy")
  args = p.parse_args(argv)
  with _common.Timer("low_density_scores"):
    c, state = train(config(), args.workdir)
    result = score_errors(c, state)
    print(f"score error at t = {T_EVAL}: high-density region (90% mass) "
          f"{result['error_high']:.4f}, low-density region (outside 99.9% mass, "
          f"{100 * result['fraction_low']:.0f}% of the grid) {result['error_low']:.4f}, "
          f"ratio {result['error_low'] / result['error_high']:.1f}")
    plot(result, args.out)
  return result


if __name__ == "__main__":
  main()
