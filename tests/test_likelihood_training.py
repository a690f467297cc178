"""Maximum-likelihood training on the digits: likelihood weighting + importance sampling of t
(`configs/digits_likelihood.py`; Song, Durkan, Murray & Ermon 2021) against the default
weighting (`configs/digits.py`), on the test split.

Both models are compared at step STEP of the quick-start schedule (constant learning rate
after warm-up, so a run stopped at STEP is the 2000-step run's kept checkpoint at STEP):
the default-weighting model is the shared quick-start run's checkpoint
(`tests/digits_model.py`, trained once per source tree for the other slow digits tests
too: not retrained here), the likelihood-trained one a run of `digits_likelihood.py` for
STEP steps (its own cache directory). `--mode=likelihood`'s evaluation (`evaluate_bpd`)
measures both on the same N_EXAMPLES test digits with the same dequantization noise (keyed
by example index and seed), so the per-example differences are paired.

What is asserted: the variational bound (`elbo_bits_per_dim`, the objective likelihood
weighting trains) is lower for the likelihood-trained model by more than 4 paired standard
errors. The probability-flow ODE's bits/dim is printed, not asserted (see below).

Measured (seed 0, STEP = 1000, N_EXAMPLES = 128, bound with 50 times per example, ODE at
rtol = atol = 1e-3, Hutchinson; a 2-core CPU shared with other jobs, ~7 min per model):
  default weighting:  ODE 2.071 ± 0.030, bound 3.472 ± 0.023 bits/dim
  likelihood + IS:    ODE -2.95 ± 0.11 (not a valid value: see below), bound 2.593 ± 0.016
  bound, likelihood - default (paired): -0.879 ± 0.016 bits/dim.
The likelihood-trained model's ODE value at rtol = 1e-3 is negative, which no density can
give on dequantized 256-level data on average: its solve is inaccurate. At rtol = atol =
1e-5 (NFE ~1100) the first 8 test digits give 2.68 bits/dim for it, above the default
model's value on them, so at this budget the issue's claim (a lower ODE bits/dim) is not
reproduced; the digits are trained without dequantization (data.uniform_dequantization =
False), which lets likelihood training concentrate the model near the 256 levels.
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
def test_likelihood_training_lowers_the_digits_bound(tmp_path):
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
  ode = np.array([likelihood[i][0] - default[i][0] for i in range(N_EXAMPLES)])
  bound = np.array([likelihood[i][1] - default[i][1] for i in range(N_EXAMPLES)])
  summary = {k: {f: round(results[k][f], 4) for f in ("bpd", "bpd_stderr", "bound_bpd",
                                                     "bound_bpd_stderr")} for k in results}
  paired = {name: (round(float(v.mean()), 4), round(float(v.std(ddof=1) / math.sqrt(v.size)), 4))
            for name, v in (("ode", ode), ("bound", bound))}
  print(f"bits/dim at step {STEP}: {summary}; likelihood - default (paired): {paired}")
  # The bound, which likelihood weighting minimizes, is lower by more than 4 standard errors.
  assert paired["bound"][0] + 4 * paired["bound"][1] < 0, (summary, paired)
