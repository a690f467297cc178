"""Likelihood vs divergence estimator: ODE bits/dim with the exact and the Hutchinson divergence.

Song et al. 2021 (score SDE), Sec. 4.3 and App. D.2: the probability-flow ODE gives
the exact log-likelihood log p_0(x) = log p_T(x_T) + int_0^T div f~(x_t, t) dt
(Eq. 39-40), where the divergence is either computed exactly (a full trace: D
Jacobian-vector products per evaluation of the drift) or estimated without bias by
Skilling-Hutchinson's trace estimator, E[e^T (df~/dx) e] with Rademacher e (one
vector-Jacobian product). On the same test digits, with the same dequantization
noise, both must give the same bits/dim up to the estimator's noise, which is much
smaller than the spread between examples; the exact trace costs D times the work.

The model is the noise-scale ablation's prescribed one (examples/noise_scales.py:
the toy MLP on the 8x8 digits, D = 64, VE SDE with sigma from 0.01 to 4.8, 3000
steps), trained first if --workdir holds no run (about a minute on 2 CPU cores).

    python examples/likelihood_divergence.py --out docs/images

prints, for each divergence, the bits/dim of 128 dequantized test digits with its
standard error, the NFE and the wall time, and writes likelihood_divergence.png
(per-example bits/dim, exact vs Hutchinson).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples import _common, noise_scales  # noqa: E402
from scorejax import data  # noqa: E402
from scorejax.evaluation import bpd  # noqa: E402

DIVERGENCES = ("exact", "hutchinson_rademacher")


def model(workdir: str, *, n_iters: int = 3000, batch_size: int = 128, nf: int = 256):
  """(config, Components, state) of the prescribed noise-scale model, trained if needed."""
  cfg = noise_scales.config(noise_scales.max_pairwise_distance(), n_iters=n_iters,
                            batch_size=batch_size, nf=nf)
  c, state = noise_scales.train(cfg, workdir)
  return cfg, c, state


def bits_per_dim(cfg, c, state, workdir: str, *, n: int = 128, rtol: float = 1e-5,
                 atol: float = 1e-5) -> dict:
  """{divergence: bpd_of_state's results and the seconds it took} on the first n test digits.

  Both passes use seed 0: the same dequantization noise, so they differ only in the divergence.
  """
  ev = data.eval_data(cfg)
  out = {}
  for divergence in DIVERGENCES:
    start = time.perf_counter()
    result = bpd.bpd_of_state(c, state, ev.batches, workdir, step=int(state.step), split="test",
                              batch_size=n, divergence=divergence, max_examples=n, rtol=rtol,
                              atol=atol, seed=0)
    result["seconds"] = time.perf_counter() - start
    out[divergence] = result
  return out


def main(argv=None) -> dict:
  p = _common.parser(__doc__.splitlines()[0])
  p.add_argument("--workdir", default=os.path.join("runs", "experiments", "noise_scales",
                                                   "sigma_max_4.8"),
                 help="the model's run (trained there if absent)")
  args = p.parse_args(argv)
  with _common.Timer("likelihood_divergence"):
    cfg, c, state = model(args.workdir)
    results = bits_per_dim(cfg, c, state, args.workdir)
    for name, r in results.items():
      print(f"{name:22s} bits/dim {r['bpd']:.4f} +- {r['bpd_stderr']:.4f} "
            f"(n = {r['num_examples']}), "
            f"NFE {r['nfe_mean']:.0f}, {r['seconds']:.1f} s")
    e, h = results["exact"], results["hutchinson_rademacher"]
    print(f"difference {h['bpd'] - e['bpd']:+.4f} bits/dim; standard errors {e['bpd_stderr']:.4f} "
          f"(exact), {h['bpd_stderr']:.4f} (Hutchinson)")
    plot(results, args.out)
  return results


def plot(results: dict, out: str) -> str:
  plt = _common.pyplot()
  fig, ax = plt.subplots(figsize=(4.6, 3.2))
  names = {"exact": "exact trace", "hutchinson_rademacher": "Hutchinson (Rademacher)"}
  for i, (name, r) in enumerate(results.items()):
    ax.errorbar([i], [r["bpd"]], yerr=[r["bpd_stderr"]], fmt="o", capsize=4)
    ax.annotate(f"{r['bpd']:.3f} +- {r['bpd_stderr']:.3f}\nNFE {r['nfe_mean']:.0f}, "
                f"{r['seconds']:.0f} s", (i, r["bpd"]), textcoords="offset points", xytext=(12, -8),
                fontsize=7)
  ax.set_xticks(range(len(results)), [names[k] for k in results], fontsize=8)
  ax.set_xlim(-0.5, len(results) + 0.2)
  ax.set_ylabel("bits/dim (128 test digits)", fontsize=8)
  ax.tick_params(labelsize=7)
  fig.tight_layout()
  return _common.save(fig, out, "likelihood_divergence.png")


if __name__ == "__main__":
  main()
