"""Probability-flow likelihood on exact-score problems: NFE, wall time, error.

For Gaussian mixtures (2-D `imbalanced_mixture_2d`, 48-D `high_dim_mixture`) the
exact score is known for every SDE, and so is the model's exact log-density
(`mixture.flow_model_log_prob`).

Table 1: for each SDE, tolerance, divergence estimator and time variable ("t": the
earlier solver, "angle": the default, see `scorejax.sampling.ode_time`) the number
of drift evaluations, the wall time of one jitted call (after compilation,
`block_until_ready`) and the error of log p against the exact model value (nats per
point; for Hutchinson this is dominated by the estimator's spread, so its mean
(bias) and sd are shown).

Table 2 (48-D, Hutchinson with a Rademacher probe): score_sde's likelihood solver
reimplemented (scipy's RK45 on the host over the flattened (x, logp) batch, RMS
error norm over the whole batch, integrating in t) against this library's, each
error measured against the same probe's integral solved to rtol = atol = 1e-8 (t,
float32: ~1e-6 nats), score_sde at its default rtol = atol = 1e-5 and this library's
default (angle) solve at a range of tolerances, since the two error norms differ (see
`likelihood._max_per_example_state_or_density`): "ratio" is nfe / score_sde's nfe,
and the summary compares the cost at equal measured accuracy.

    python bench/bench_likelihood.py            # 256 points, rtol=atol in {1e-3, 1e-5}
    python bench/bench_likelihood.py --quick    # 64 points, 1e-5 only, 2-D VP + 48-D VE
    python bench/bench_likelihood.py --table 2 [--sdes ve,vp]  # only table 2

Measures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from scorejax.toy import mixture
from scorejax import likelihood
from scorejax import sde as sde_lib

SDES = {"ve": sde_lib.VESDE(), "vp": sde_lib.VPSDE(), "subvp": sde_lib.subVPSDE(),
        "cosine": sde_lib.CosineVPSDE()}
EPS = 1e-5
TIME_VARIABLES = ("t", "angle")


def _mixtures():
  return {"2d": mixture.imbalanced_mixture_2d(),
          "48d": mixture.high_dim_mixture(jax.random.key(42), dim=48)}


def _time(fn, *args, repeats: int = 3):
  out = jax.block_until_ready(fn(*args))  # compile
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t0)
  return out, best


def score_sde_log_likelihood(key, sde, score_fn, x, *, rtol=1e-5, atol=1e-5, eps=EPS,
                             divergence="hutchinson_rademacher"):
  """score_sde's `likelihood.get_likelihood_fn`: scipy RK45 over the flattened batch.

  The state is (x, logp) of the whole batch as one float64 vector, the error norm
  scipy's RMS over all of it, time t from eps to T; the drift and the divergence are
  this library's (float32, jitted), with the same probe as `log_likelihood(key, ...)`.
  Returns (logp, z, nfe) with nfe = scipy's `nfev`.
  """
  from scipy import integrate  # host-side reference only

  div_fn, probe_fn = likelihood.DIVERGENCES[divergence]
  shape, b = x.shape, x.shape[0]
  probe = None if probe_fn is None else probe_fn(key, shape, x.dtype)
  ode = sde.reverse(score_fn, probability_flow=True)

  @jax.jit
  def rhs(t, xs):
    tb = jnp.full((b,), t, xs.dtype)
    return div_fn(lambda y: ode.sde(y, tb)[0], xs, probe)

  def ode_func(t, state):
    drift, div = rhs(jnp.float32(t), jnp.asarray(state[:-b].reshape(shape), jnp.float32))
    return np.concatenate([np.asarray(drift, np.float64).reshape(-1), np.asarray(div, np.float64)])

  init = np.concatenate([np.asarray(x, np.float64).reshape(-1), np.zeros(b)])
  sol = integrate.solve_ivp(ode_func, (eps, sde.T), init, rtol=rtol, atol=atol, method="RK45")
  z = jnp.asarray(sol.y[:-b, -1].reshape(shape), jnp.float32)
  return sde.prior_logp(z) + jnp.asarray(sol.y[-b:, -1], jnp.float32), z, int(sol.nfev)


def table_divergences(n: int, tols, cases) -> None:
  mixtures = _mixtures()
  divergences = ["exact", "hutchinson_rademacher", "hutchinson_gaussian"]
  print(f"backend={jax.default_backend()} device={jax.devices()[0].device_kind} "
        f"points={n} eps={EPS} solver=tsit5")
  header = (f"{'sde':6s} {'D':>3s} {'tol':>6s} {'divergence':22s} {'time_var':8s} {'nfe':>5s} "
            f"{'time_s':>8s} {'err_mean':>9s} {'err_sd':>8s} {'|err|_max':>9s} {'bpd':>7s}")
  print(header)
  print("-" * len(header))
  for sde_name, mix_name in cases:
    sde, mix = SDES[sde_name], mixtures[mix_name]
    x = mix.sample(jax.random.PRNGKey(1), n)
    score_fn = mixture.marginal_score_fn(mix, sde)
    for tol in tols:
      for divergence in divergences:
        for tv in TIME_VARIABLES:
          fn = jax.jit(partial(likelihood.log_likelihood, sde=sde, score_fn=score_fn,
                               rtol=tol, atol=tol, eps=EPS, divergence=divergence,
                               time_variable=tv))
          (logp, z, nfe), seconds = _time(lambda k, x: fn(k, x=x), jax.random.PRNGKey(2), x)
          err = np.asarray(logp - mixture.flow_model_log_prob(mix, sde, x, z, EPS), np.float64)
          bpd = float(jnp.mean(likelihood.bits_per_dim(logp, (mix.dim,), offset=0.0)))
          print(f"{sde_name:6s} {mix.dim:3d} {tol:6.0e} {divergence:22s} {tv:8s} {int(nfe):5d} "
                f"{seconds:8.4f} {err.mean():9.2e} {err.std():8.2e} "
                f"{np.abs(err).max():9.2e} {bpd:7.3f}")
  print("err: log p - exact model log p (nats/point); bpd: -log2 p / D (no offset).")


def table_score_sde(n: int, sde_names, tols) -> None:
  """Solver error of score_sde's RK45 and of this library's, same problem and probe.

  score_sde runs at its default rtol = atol = 1e-5; this library's default (angle)
  solve runs at each of `tols`. The summary line per SDE takes the cheapest of ours
  whose mean, RMS and worst errors are all at most score_sde's: "equal accuracy".
  """
  mix = _mixtures()["48d"]
  x = mix.sample(jax.random.PRNGKey(1), n)
  key = jax.random.PRNGKey(2)
  print(f"\n48-D, {n} points, Hutchinson (Rademacher), eps={EPS}: solver error against the "
        "same probe solved to 1e-8")
  header = (f"{'sde':6s} {'solver':24s} {'tol':>6s} {'nfe':>5s} {'ratio':>6s} "
            f"{'mean|err|':>9s} {'rms_err':>8s} {'max|err|':>8s}")
  print(header)
  print("-" * len(header))
  summary = []
  for sde_name in sde_names:
    sde = SDES[sde_name]
    score_fn = mixture.marginal_score_fn(mix, sde)
    ours = lambda tol, tv, steps=4096: jax.jit(partial(
        likelihood.log_likelihood, sde=sde, score_fn=score_fn, rtol=tol, atol=tol, eps=EPS,
        time_variable=tv, max_steps=steps))(key, x=x)
    ref = np.asarray(ours(1e-8, "t", 100_000)[0], np.float64)
    logp, _, nfe_ref = score_sde_log_likelihood(key, sde, score_fn, x)
    rows = [("score_sde RK45 (host)", 1e-5, logp, nfe_ref)]
    logp, _, nfe = ours(1e-5, "t")
    rows.append(("scorejax t", 1e-5, logp, int(nfe)))
    for tol in tols:
      logp, _, nfe = ours(tol, "angle")
      rows.append(("scorejax angle", tol, logp, int(nfe)))
    errs = []
    for name, tol, logp, nfe in rows:
      err = np.asarray(logp, np.float64) - ref
      e = (np.abs(err).mean(), np.sqrt(np.mean(err**2)), np.abs(err).max())
      errs.append((name, tol, nfe, e))
      print(f"{sde_name:6s} {name:24s} {tol:6.0e} {nfe:5d} {nfe / nfe_ref:6.2f} "
            f"{e[0]:9.1e} {e[1]:8.1e} {e[2]:8.1e}")
    e_ref = errs[0][3]
    equal = [(nfe, tol) for name, tol, nfe, e in errs[2:]
             if all(a <= b for a, b in zip(e, e_ref))]
    summary.append((sde_name, nfe_ref, min(equal) if equal else None))
  print("\nequal accuracy (angle's cheapest run with mean, rms and max error <= score_sde's):")
  for sde_name, nfe_ref, best in summary:
    if best is None:
      print(f"{sde_name:6s} none of the tolerances is as accurate as score_sde's")
    else:
      print(f"{sde_name:6s} score_sde {nfe_ref:4d}  scorejax {best[0]:4d} at tol {best[1]:.0e}"
            f"  ratio {best[0] / nfe_ref:.2f}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="shrink the benchmark")
  parser.add_argument("--n", type=int, default=None, help="points per problem")
  parser.add_argument("--table", choices=("1", "2", "all"), default="all",
                      help="1: divergences and time variables, 2: against score_sde's RK45")
  parser.add_argument("--sdes", default=",".join(SDES), help="comma-separated SDE names (table 2)")
  args = parser.parse_args()
  n = args.n or (64 if args.quick else 256)
  tols = [1e-5] if args.quick else [1e-3, 1e-5]
  cases = ([("vp", "2d"), ("ve", "48d")] if args.quick else
           [(s, m) for m in ("2d", "48d") for s in SDES])
  if args.table in ("1", "all"):
    table_divergences(n, tols, cases)
  score_sde_tols = [1e-5, 3e-5, 1e-4] if args.quick else [1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4]
  if args.table in ("2", "all"):
    table_score_sde(n, ["ve"] if args.quick else args.sdes.split(","), score_sde_tols)


if __name__ == "__main__":
  main()
