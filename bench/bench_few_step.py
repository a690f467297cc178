"""Few-step samplers on exact-score Gaussian mixtures: quality per score evaluation.

    python bench/bench_few_step.py [--quick] [--n 65536] [--nfe 5,10,20,50]
        [--sdes VE,VP,subVP,cosine] [--methods unipc,...] [--schedules log_snr,...]
        [--eps 1e-3] [--denoise] [--option lower_order_final=false] [--jsonl out.jsonl]
    python bench/bench_few_step.py --render out*.jsonl [--schedules default] [...]

For the 2-D imbalanced mixture (weights 0.2 / 0.8) and a 64-D mixture of 8 isotropic
components (std 0.3, means on a radius-3 sphere, weights proportional to 1..8), under
the VE, VP, sub-VP and cosine VP SDEs, runs every few-step method (`FEW_STEP_METHODS`)
with every time schedule (`TIME_SCHEDULES`) at 5, 10, 20 and 50 score evaluations
per sample (n_steps = NFE // evaluations per step, one fewer with `--denoise`), with
the exact mixture score, and beside them the adaptive probability-flow ODE sampler
(`ode_sample`, its defaults: Tsit5, rtol = atol = 1e-5) and the predictor-corrector
sampler with 1000 steps (`pc_sample`, its defaults: reverse diffusion + Langevin).

Each cell is `dlogp / TV / SW`:
  dlogp  mean log p0(samples) - E[log p0] in nats (its standard error is about
         sqrt(D / 2) / sqrt(n): 0.02 at n = 65536 in 64-D; E[log p0] from 4n true samples),
  TV     total variation between the mixture weights recovered by assigning each
         sample to its most probable component and the true weights (a set of n true
         samples scores the 'floor' printed in the heading),
  SW     sliced Wasserstein-2 distance to n fresh true samples divided by that
         between two true sample sets (1.00 = as close as the truth itself).
A cell whose exact NFE differs from the column's says so in brackets (e.g. `[4]`:
Heun takes 2 evaluations per step). All configurations of one problem and SDE draw
the same prior samples. The methods run on their time grid given as an argument of
one jitted function per (method, n_steps), so the schedules share a compilation; the
first method's run at the most steps is checked against `few_step_sample`'s output.
Prints markdown; nothing is timed or asserted beyond that check. `--jsonl` keeps every
result, and `--render` prints the tables of such files (e.g. of one run split over
processes by SDE and method), filtered by the same options.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import sde as sde_lib
from scorejax.sampling import (FEW_STEP_METHODS, TIME_SCHEDULES, few_step_sample, ode_sample,
                               pc_sample, time_steps)
from scorejax.sampling.denoise import tweedie_denoise
from scorejax.sampling.few_step import default_eps
from scorejax.sampling.few_step.grid import Grid, Model
from scorejax.toy import distances, mixture

SDES = {"VE": sde_lib.VESDE(), "VP": sde_lib.VPSDE(), "subVP": sde_lib.subVPSDE(),
        "cosine": sde_lib.CosineVPSDE()}
EVALS_PER_STEP = {"heun": 2, "dpm_solver_2": 2, "dpm_solver_3": 3}  # the others: 1


def mixture_64d() -> mixture.GaussianMixture:
  """8 isotropic components (std 0.3) in 64-D, means on a radius-3 sphere, weights ~ 1..8."""
  k, d = 8, 64
  directions = jax.random.normal(jax.random.key(1), (k, d))
  means = 3.0 * directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)
  weights = np.arange(1, k + 1, dtype=np.float64)
  return mixture.isotropic_mixture(weights / weights.sum(), means, 0.3)


PROBLEMS = {"2-D imbalanced": mixture.imbalanced_mixture_2d, "64-D, 8 comp.": mixture_64d}


def _parse_value(text: str):
  low = text.lower()
  if low in ("true", "false"):
    return low == "true"
  try:
    return int(text)
  except ValueError:
    return float(text)


def _options_for(fn, options: dict) -> dict:
  """The options that the method `fn` takes."""
  params = inspect.signature(fn).parameters
  return {k: v for k, v in options.items() if k in params}


def make_grid_sampler(sde, score_fn, method: str, shape, *, denoise: bool, options: dict):
  """`sample(key, ts) -> (x, nfe)`: `few_step_sample` on the time grid `ts` (traced)."""
  spec = FEW_STEP_METHODS[method]
  model = Model(sde, score_fn)
  opts = _options_for(spec.fn, options)

  def sample(key, ts):
    prior_key, key = jax.random.split(key)
    x = sde.prior_sampling(prior_key, shape)
    x, nfe = spec.fn(key, model, Grid.of(sde, ts), x, **opts)
    if denoise:
      x = tweedie_denoise(sde, score_fn, x, ts[-1])
      nfe += 1
    return x, nfe

  return jax.jit(sample), opts


class Judge:
  """The three measures of a sample set against a mixture, with their floors."""

  def __init__(self, mix: mixture.GaussianMixture, n: int):
    k1, k2, k3, self.key = jax.random.split(jax.random.key(0), 4)
    self.mix, self.fresh = mix, mix.sample(k1, n)
    other = mix.sample(k2, n)
    self.sw_floor = float(distances.sliced_wasserstein2(self.key, other, self.fresh))
    self.tv_floor = float(distances.weights_total_variation(mix, other))
    chunks = [jnp.mean(mix.log_prob(mix.sample(k, n))) for k in jax.random.split(k3, 4)]
    self.expected_logp = float(np.mean([float(c) for c in chunks]))
    self._measure = jax.jit(self._measure_fn)

  def _measure_fn(self, x):
    x = x.reshape(x.shape[0], -1)
    ok = jnp.all(jnp.isfinite(x))
    return (distances.weights_total_variation(self.mix, x),
            distances.sliced_wasserstein2(self.key, x, self.fresh) / self.sw_floor,
            jnp.mean(self.mix.log_prob(x)) - self.expected_logp, ok)

  def __call__(self, x) -> dict:
    tv, sw, dlogp, ok = (float(v) for v in self._measure(x))
    if not ok:
      return {"tv": math.nan, "sw": math.nan, "dlogp": math.nan}
    return {"tv": tv, "sw": sw, "dlogp": dlogp}


def _cell(r: dict | None, nfe_target: int) -> str:
  if r is None:
    return ""
  if not math.isfinite(r["dlogp"]):
    return "diverged"
  nfe = "" if r["nfe"] == nfe_target else f"[{r['nfe']}] "
  return f"{nfe}{r['dlogp']:+.2f} / {r['tv']:.3f} / {r['sw']:.2f}"


def _ref_cell(r: dict) -> str:
  return f"[{r['nfe']}] {r['dlogp']:+.2f} / {r['tv']:.3f} / {r['sw']:.2f}"


def _heading(floors: dict | None, pname: str, nfes: list[int]) -> str:
  head = f"\n### {pname}"
  if floors:
    head += (f" (D = {floors['dim']}, n = {floors['n']}): floors TV {floors['tv_floor']:.3f}, "
             f"SW2 {floors['sw_floor']:.4f}; E[log p0] = {floors['expected_logp']:.2f}")
  return (head + "\n\n| SDE | method | schedule | " + " | ".join(f"{v} NFE" for v in nfes)
          + " |\n| --- | --- | --- | " + " | ".join("---" for _ in nfes) + " |")


def _block_rows(results: list[dict], sname: str, methods: list[str], schedules: list[str],
                nfes: list[int]) -> list[str]:
  """The table rows of one problem and SDE: the reference samplers, then method x schedule."""
  lines = [f"| {sname} | {r['method']} | adaptive | {_ref_cell(r)} |" + " |" * (len(nfes) - 1)
           for r in results if "nfe_target" not in r]
  cells = {(r["method"], r["schedule"], r["nfe_target"]): r for r in results if "nfe_target" in r}
  for method in methods:
    default = FEW_STEP_METHODS[method].schedule
    names = [default if sc == "default" else sc for sc in schedules]
    for sched in dict.fromkeys(names):
      if not any((method, sched, v) in cells for v in nfes):
        continue
      row = " | ".join(_cell(cells.get((method, sched, v)), v) for v in nfes)
      lines.append(f"| {sname} | {method} | {sched}{' *' if sched == default else ''} | {row} |")
  return lines


def render(paths: list[str], problems: list[str], sdes: list[str], methods: list[str],
           schedules: list[str], nfes: list[int]) -> None:
  """Prints the tables of earlier runs' --jsonl files (e.g. runs split over processes)."""
  records = [json.loads(line) for path in paths for line in open(path) if line.strip()]
  for pname in problems:
    floors = next((r for r in records if r["problem"] == pname and r.get("kind") == "floors"), None)
    rows = [r for r in records if r["problem"] == pname and r.get("kind") != "floors"]
    if not rows:
      continue
    print(_heading(floors, pname, nfes))
    for sname in sdes:
      block = [r for r in rows if r["sde"] == sname]
      print("\n".join(_block_rows(block, sname, methods, schedules, nfes)))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=None,
                      help="samples per run (default 65536; 8192 with --quick)")
  parser.add_argument("--quick", action="store_true",
                      help="10 and 20 NFE, VE and VP, each method at its default schedule only")
  parser.add_argument("--nfe", default=None, help="comma-separated NFE budgets (default 5,10,20,50)")
  parser.add_argument("--sdes", default=None, help=f"comma-separated subset of {list(SDES)}")
  parser.add_argument("--problems", default=None, help="comma-separated subset of 2d,64d")
  parser.add_argument("--methods", default=None,
                      help="comma-separated FEW_STEP_METHODS names, or 'none'")
  parser.add_argument("--schedules", default=None,
                      help="comma-separated TIME_SCHEDULES names, or 'default' (each method's own)")
  parser.add_argument("--eps", default=None,
                      help="time floor (default: the few-step default for each SDE)")
  parser.add_argument("--eps-log-snr", type=float, default=None,
                      help="time floor where the log-SNR reaches this value, per SDE (overrides --eps)")
  parser.add_argument("--denoise", action="store_true", help="final Tweedie step (1 evaluation)")
  parser.add_argument("--option", action="append", default=[],
                      help="KEY=VALUE passed to every method that takes KEY (repeatable)")
  parser.add_argument("--no-reference", action="store_true", help="skip the ODE and PC-1000 rows")
  parser.add_argument("--render", nargs="+", default=None, metavar="JSONL",
                      help="print the tables of these --jsonl files (filtered by the options "
                      "above) instead of running anything")
  parser.add_argument("--jsonl", default=None, help="also append every result to this file, "
                      "one JSON object a line")
  args = parser.parse_args()

  n = args.n or (8192 if args.quick else 65536)
  nfes = [int(v) for v in (args.nfe or ("10,20" if args.quick else "5,10,20,50")).split(",")]
  sdes = args.sdes.split(",") if args.sdes else (["VE", "VP"] if args.quick else list(SDES))
  problem_keys = {"2d": "2-D imbalanced", "64d": "64-D, 8 comp."}
  problems = [problem_keys[p] for p in args.problems.split(",")] if args.problems else list(PROBLEMS)
  methods = args.methods.split(",") if args.methods else list(FEW_STEP_METHODS)
  methods = [] if methods == ["none"] else methods  # the reference rows alone
  schedules = (args.schedules.split(",") if args.schedules
               else (["default"] if args.quick else list(TIME_SCHEDULES)))
  options = dict(_parse_value_pair(o) for o in args.option)
  for m in methods:
    if m not in FEW_STEP_METHODS:
      parser.error(f"unknown method {m!r}; valid: {sorted(FEW_STEP_METHODS)}")
  if args.render:
    print("cells: dlogp (nats) / weights TV / sliced W2 over its floor; [k]: exact NFE where it "
          "differs from the column's; * = the method's default schedule")
    render(args.render, problems, sdes, methods, schedules, nfes)
    return

  print(f"jax {jax.__version__} on {jax.devices()[0].platform}; n = {n} samples per run; "
        f"eps = {_eps_text(args)}; denoise = {args.denoise}; options = {options or '-'}")
  print("\ncommand: python bench/bench_few_step.py " + " ".join(sys.argv[1:]))
  print("\ncells: dlogp (nats) / weights TV / sliced W2 over its floor; [k]: exact NFE where it "
        "differs from the column's")
  start, checked = time.perf_counter(), False
  setting = {"n": n, "eps_setting": _eps_text(args), "denoise": args.denoise, "options": options}

  def record(r: dict) -> None:
    if args.jsonl:
      with open(args.jsonl, "a") as f:
        f.write(json.dumps({**setting, **r}) + "\n")

  key = jax.random.key(1)
  for pname in problems:
    mix = PROBLEMS[pname]()
    judge = Judge(mix, n)
    shape = (n, mix.dim)
    floors = {"problem": pname, "kind": "floors", "dim": mix.dim, "n": n,
              "tv_floor": judge.tv_floor, "sw_floor": judge.sw_floor,
              "expected_logp": judge.expected_logp}
    record(floors)
    print(_heading(floors, pname, nfes))
    for sname in sdes:
      sde = SDES[sname]
      score_fn = mixture.marginal_score_fn(mix, sde)
      eps = default_eps(sde) if args.eps is None else float(args.eps)
      if args.eps_log_snr is not None:
        eps = float(sde.t_of_log_snr(jnp.asarray(args.eps_log_snr)))
      block = []
      for method in methods:
        spec = FEW_STEP_METHODS[method]
        per = EVALS_PER_STEP.get(method, 1)
        sampler, opts = make_grid_sampler(sde, score_fn, method, shape, denoise=args.denoise,
                                          options=options)
        for nfe_target in nfes:
          n_steps = max(1, (nfe_target - int(args.denoise)) // per)
          for sched in schedules:
            sched_name = spec.schedule if sched == "default" else sched
            ts = jax.jit(functools.partial(time_steps, sde, n_steps, sched_name, eps))()
            x, nfe = sampler(key, ts)
            if not checked and nfe_target == nfes[-1]:  # the shortcut is the public function
              # (at the most steps: a 1-step grid amplifies rounding without bound)
              x_ref, nfe_ref = jax.jit(lambda k: few_step_sample(
                  k, sde, score_fn, shape, method=method, n_steps=n_steps, schedule=sched_name,
                  eps=eps, denoise=args.denoise, **opts))(key)
              close = np.mean(np.all(np.abs(np.asarray(x_ref) - np.asarray(x)) < 1e-3, axis=-1))
              assert int(nfe_ref) == int(nfe) and close > 0.99, \
                  f"bench sampler differs from few_step_sample ({close:.3f} of samples agree)"
              checked = True
            r = {"problem": pname, "sde": sname, "method": method, "schedule": sched_name,
                 "eps": eps, "nfe_target": nfe_target, "n_steps": n_steps, "nfe": int(nfe),
                 **judge(x)}
            record(r)
            block.append(r)
      if not args.no_reference:  # after the few-step rows: their compilation is the slowest
        refs = []
        for rname, fn in (("ODE tsit5 1e-5", functools.partial(ode_sample, eps=eps)),
                          ("PC-1000 (RD + Langevin)", functools.partial(pc_sample, eps=eps))):
          x, nfe = jax.jit(lambda k, fn=fn: fn(k, sde, score_fn, shape))(key)
          r = {"problem": pname, "sde": sname, "method": rname, "schedule": "", "eps": eps,
               "nfe": int(nfe), **judge(x)}
          record(r)
          refs.append(r)
        block = refs + block
      print("\n".join(_block_rows(block, sname, methods, schedules, nfes)), flush=True)
  print(f"\n(* = the method's default schedule; {time.perf_counter() - start:.0f} s in all, "
        "compilation included)")


def _eps_text(args) -> str:
  if args.eps_log_snr is not None:
    return f"where log-SNR = {args.eps_log_snr}"
  return args.eps or "default per SDE"


def _parse_value_pair(text: str):
  name, sep, value = text.partition("=")
  if not sep:
    raise SystemExit(f"--option {text!r}: expected KEY=VALUE")
  return name, _parse_value(value)


if __name__ == "__main__":
  main()
