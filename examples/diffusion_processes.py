"""The diffusion processes: forward VE / VP / sub-VP on digits, reverse SDE vs probability-flow ODE.

Song et al. 2021 (score SDE), Sec. 3.4 and Fig. 2; seed 001's Figs. 5-7 (the SMLD,
DDPM and SDE processes on images). Three pictures, no training:

* diffusion_forward.png: the same test digits under the VE SDE (SMLD's sigma ladder
  in continuous time, sigma from 0.01 to 50), the VP SDE (DDPM's, beta from 0.1 to 20)
  and the sub-VP SDE (Eq. 11), each x_t = alpha(t) x_0 + sigma(t) z with one z for
  every SDE and time, from t = 0 to T = 1. The data are centered to [-1, 1] as the
  digits config's model sees them, and shown clipped back to [0, 1].
* diffusion_variance.png: the per-pixel marginal variance of x_t on the digits,
  alpha(t)^2 Var[x_0] + sigma(t)^2: VE's explodes, VP's stays at 1, and sub-VP's is
  below VP's at every t > 0 (sigma_subVP^2 = (1 - e^{-B})^2 < 1 - e^{-B} = sigma_VP^2,
  with B(t) the integral of beta; the paper's Eq. 11 and App. B).
* diffusion_reverse_2d.png: from the same prior points, the reverse-time SDE (Eq. 6,
  the reverse-diffusion predictor) and the probability-flow ODE (Eq. 13) with the
  exact score of the imbalanced 2-D mixture (weights 0.2 / 0.8) under the VP SDE:
  stochastic paths that differ from run to run vs deterministic ones; both end in the
  data distribution.

    python examples/diffusion_processes.py --out docs/images

prints the variance ratios, the minority weight of both samplers' end points, their
paths' lengths and how far two runs from the same prior points end apart. Seconds to a
minute on a CPU.
"""

from __future__ import annotations

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from examples import _common  # noqa: E402
from scorejax import data  # noqa: E402
from scorejax import sde as sde_lib  # noqa: E402
from scorejax.report import images  # noqa: E402
from scorejax.sampling import ode_trajectory, pc_trajectory  # noqa: E402
from scorejax.toy import distances, mixture  # noqa: E402

IMAGE_SIZE = 16
FRAME_TIMES = np.linspace(0.0, 1.0, 11)


def digits_sdes() -> dict[str, sde_lib.SDE]:
  """The three SDEs with the digits config's parameters (configs/digits.py)."""
  return {"VE": sde_lib.VESDE(sigma_min=0.01, sigma_max=50.0),
          "VP": sde_lib.VPSDE(beta_min=0.1, beta_max=20.0),
          "sub-VP": sde_lib.subVPSDE(beta_min=0.1, beta_max=20.0)}


@functools.lru_cache(maxsize=None)
def centered_digits(split: str = "test") -> np.ndarray:
  """DIGITS at 16x16 in [-1, 1] (the digits config's scaler)."""
  return data.open_digits_source(split, IMAGE_SIZE).astype(np.float32) / 127.5 - 1.0


def forward_frames(key: jax.Array, x0: np.ndarray, times=FRAME_TIMES) -> dict[str, np.ndarray]:
  """{SDE name: (len(times), B, H, W, 1)} x_t = alpha(t) x0 + sigma(t) z, one z for all."""
  z = jax.random.normal(key, x0.shape)
  frames = {}
  for name, sde in digits_sdes().items():
    alpha, sigma = sde.marginal_coeffs(jnp.asarray(times, jnp.float32))
    frames[name] = np.asarray(alpha[:, None, None, None, None] * x0[None]
                              + sigma[:, None, None, None, None] * z[None])
  return frames


def marginal_variances(x0: np.ndarray, times: np.ndarray) -> dict[str, np.ndarray]:
  """{SDE name: (len(times),)} per-pixel variance of x_t averaged over pixels (exact given x0's)."""
  var0 = float(np.mean(np.var(x0.reshape(x0.shape[0], -1), axis=0)))
  out = {}
  for name, sde in digits_sdes().items():
    alpha, sigma = sde.marginal_coeffs(jnp.asarray(times, jnp.float32))
    out[name] = np.asarray(alpha**2 * var0 + sigma**2, np.float64)
  return out


def reverse_paths(key: jax.Array, n: int, *, n_steps: int = 1000, n_frames: int = 200) -> dict:
  """SDE and ODE paths from the same n prior points (exact score, VP SDE, 2-D mixture).

  Returns the paths (n_frames + 1, n, 2) of the reverse SDE (run with two keys) and of
  the ODE, the times of the frames, and the mixture.
  """
  mix = mixture.imbalanced_mixture_2d()
  sde = sde_lib.VPSDE()
  score_fn = mixture.marginal_score_fn(mix, sde)
  k_prior, k_sde1, k_sde2 = jax.random.split(key, 3)
  x_T = sde.prior_sampling(k_prior, (n, 2))
  sde_path = jax.jit(lambda k: pc_trajectory(
      k, sde, score_fn, (n, 2), n_frames=n_frames, predictor="reverse_diffusion", corrector=None,
      n_steps=n_steps, x_T=x_T))
  (path1, ts), (path2, _) = sde_path(k_sde1), sde_path(k_sde2)
  ode_path, ode_ts = jax.jit(lambda x: ode_trajectory(sde, score_fn, x, n_frames=n_frames))(x_T)
  return {"mixture": mix, "sde": np.asarray(path1), "sde_again": np.asarray(path2),
          "ode": np.asarray(ode_path), "sde_times": np.asarray(ts), "ode_times": np.asarray(ode_ts)}


def path_summary(paths: dict) -> dict:
  """Minority weight of each sampler's end points, mean path length, end-point spread."""
  mix = paths["mixture"]
  minority = lambda x: float(distances.component_frequencies(mix, jnp.asarray(x))[0])
  length = lambda p: float(np.mean(np.sum(np.linalg.norm(np.diff(p, axis=0), axis=-1), axis=0)))
  end_gap = lambda a, b: float(np.mean(np.linalg.norm(a[-1] - b[-1], axis=-1)))
  return {
      "minority_weight_sde": minority(paths["sde"][-1]),
      "minority_weight_ode": minority(paths["ode"][-1]),
      "path_length_sde": length(paths["sde"]), "path_length_ode": length(paths["ode"]),
      "sde_end_gap_between_runs": end_gap(paths["sde"], paths["sde_again"]),
  }


def plot_forward(frames: dict[str, np.ndarray], out: str) -> str:
  plt = _common.pyplot()
  rows = []
  for name, f in frames.items():  # (T, B, H, W, 1) -> rows of examples
    rows.append(np.transpose(f, (1, 0, 2, 3, 4)).reshape((-1,) + f.shape[2:]))
  per_row = frames["VE"].shape[0]
  grid = images.image_grid((np.concatenate(rows) + 1.0) / 2.0, nrow=per_row)[..., 0]
  n_rows = grid.shape[0]
  b = frames["VE"].shape[1]
  fig, ax = plt.subplots(figsize=(per_row * 0.62 + 0.8, len(rows) * b * 0.62 + 0.5))
  ax.imshow(grid, cmap="gray", vmin=0, vmax=255)
  cell = IMAGE_SIZE + 2
  ax.set_yticks([cell * (i * b + b / 2) for i in range(len(rows))], list(frames), fontsize=8)
  ax.set_xticks([cell * (j + 0.5) for j in range(per_row)], [f"{t:g}" for t in FRAME_TIMES],
                fontsize=7)
  ax.set_xlabel("t", fontsize=8)
  ax.set_ylim(n_rows, 0)
  fig.tight_layout()
  return _common.save(fig, out, "diffusion_forward.png", dpi=64, colors=32)


def plot_variance(times: np.ndarray, variances: dict[str, np.ndarray], out: str) -> str:
  plt = _common.pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.8))
  for name in ("VP", "sub-VP"):
    axes[0].plot(times, variances[name], label=name)
  axes[0].set_title("VP vs sub-VP", fontsize=9)
  axes[1].semilogy(times, variances["VE"], label="VE", color="C2")
  axes[1].set_title("VE (log scale)", fontsize=9)
  for ax in axes:
    ax.set_xlabel("t", fontsize=8)
    ax.set_ylabel("per-pixel Var[x_t]", fontsize=8)
    ax.legend(fontsize=8)
    ax.tick_params(labelsize=7)
  fig.tight_layout()
  return _common.save(fig, out, "diffusion_variance.png")


def plot_reverse(paths: dict, out: str, n_show: int = 10) -> str:
  plt = _common.pyplot()
  mix = paths["mixture"]
  g = np.linspace(-3.5, 3.5, 141)
  xx, yy = np.meshgrid(g, g)
  grid = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], -1), jnp.float32)
  p = np.exp(np.asarray(mix.log_prob(grid)))
  fig, axes = plt.subplots(1, 2, figsize=(8, 4))
  for ax, (key, title) in zip(axes, [("sde", "reverse-time SDE (Eq. 6)"),
                                     ("ode", "probability-flow ODE (Eq. 13)")]):
    ax.contourf(xx, yy, p.reshape(xx.shape), levels=10, cmap="Oranges")
    path = paths[key][:, :n_show]
    for i in range(path.shape[1]):
      ax.plot(path[:, i, 0], path[:, i, 1], lw=0.6, color=f"C{i % 10}")
      ax.plot(*path[0, i], "o", ms=2.5, color=f"C{i % 10}")
      ax.plot(*path[-1, i], "*", ms=5, color=f"C{i % 10}")
    ax.set_title(title, fontsize=9)
    ax.set_xlim(-3.5, 3.5)
    ax.set_ylim(-3.5, 3.5)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
  fig.suptitle("from the same prior points (dots) to the data (stars)", fontsize=9)
  fig.tight_layout()
  return _common.save(fig, out, "diffusion_reverse_2d.png")


def main(argv=None) -> dict:
  args = _common.parser(__doc__.splitlines()[0]).parse_args(argv)
  with _common.Timer("diffusion_processes"):
    x0 = centered_digits()
    plot_forward(forward_frames(jax.random.key(0), x0[:2]), args.out)
    times = np.linspace(0.0, 1.0, 101)
    variances = marginal_variances(x0, times)
    ratio = variances["sub-VP"][1:] / variances["VP"][1:]
    print(f"per-pixel Var[x_t], t = 0, 0.25, 0.5, 1: " + "; ".join(
        f"{name} " + ", ".join(f"{v[i]:.3g}" for i in (0, 25, 50, 100))
        for name, v in variances.items()))
    print(f"sub-VP / VP variance over t in (0, 1]: max {ratio.max():.6f}, min {ratio.min():.4f}")
    plot_variance(times, variances, args.out)
    paths = reverse_paths(jax.random.key(1), 2000)
    summary = path_summary(paths)
    for k, v in summary.items():
      print(f"{k:28s} {v:.3f}")
    plot_reverse(paths, args.out)
  return {"variances": variances, "times": times, **summary}


if __name__ == "__main__":
  main()
