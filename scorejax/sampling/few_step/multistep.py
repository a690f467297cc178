"""Multistep exponential integrators: DPM-Solver++(2M), (3M), (2M) SDE, and UniPC.

All use the data prediction x0 = D(x_t, t) and one model evaluation per step,
reusing the evaluations of earlier steps. With h = lambda_t - lambda_s and
phi_1 = expm1(-h), the first-order step is DPM-Solver++1 (Lu et al. 2022b, Eq. 9):

    x_t = (sigma_t / sigma_s) x_s - alpha_t phi_1 D_s.

dpm_solver++_2m   Lu et al. 2022b, Alg. 2: D_s replaced by D_s + (D_s - D_prev) / (2 r),
                  r = h_prev / h.
dpm_solver++_3m   the third-order multistep update of the same family: the exact solution
                  x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^lambda D dlambda
                  (Lu et al. 2022b) with D expanded to second order in lambda,

                    x_t = (sigma_t / sigma_s) x_s - alpha_t phi_1 D_s + alpha_t phi_2 (h D')
                          - alpha_t phi_3 (h^2 D''),
                    phi_2 = phi_1 / h + 1,  phi_3 = phi_2 / h - 1/2,

                  since int_0^h e^{-(h - u)} u^k / k! du = h^{k+1} phi_{k+1}(-h) (phi_k the
                  exponential integrator's functions) equals -h phi_1, h^2 phi_2 and -h^2 phi_3
                  (in this code's phi_k) for k = 0, 1, 2. h D' and h^2 D'' come from the
                  divided differences D1_0 = (D_s - D_p1) / r0, D1_1 = (D_p1 - D_p2) / r1 of
                  the last three evaluations (r0 = h_0 / h, r1 = h_1 / h):
                  h D' = D1_0 + r0 (D1_0 - D1_1) / (r0 + r1),
                  h^2 D'' = 2 (D1_0 - D1_1) / (r0 + r1).
dpm_solver++_2m_sde   the stochastic DPM-Solver++ (Lu et al. 2022b, 'SDE-DPM-Solver++(2M)'):
                  x_t = (sigma_t / sigma_s) e^{-h} x_s + alpha_t (1 - e^{-2h}) (D_s + D1 / 2)
                        + sigma_t sqrt(1 - e^{-2h}) z,   D1 = (D_s - D_prev) / r;
                  its first-order step is DDIM with eta = 1 (the Gaussian posterior
                  q(x_t | x_s, x0 = D_s)).
unipc             UniPC (Zhao, Bai, Rao, Zhou & Lu 2023, Alg. 2 and 3 with B(h) = e^h - 1,
                  'bh2'): the UniP-p predictor plus the UniC corrector, which reuses the
                  evaluation at the predicted point (so it raises the order by one at no
                  extra cost); the last step has no corrector.

The first steps, which lack history, use the highest order available; with fewer
than 15 steps the last steps lower their order too (`lower_order_final`, as the
reference implementations do: high orders are unstable over the final, large-h steps).
The order-1 first step's local error O(h^2) (with UniC, O(h^3)) bounds the global
order as h -> 0, but the data prediction barely moves near T, so at 16-64 steps the
measured orders are the nominal ones: 2M 2, 3M 3, UniPC-p p + 1 (tests/test_few_step.py).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from scorejax.sampling.few_step.grid import Grid, Model

Array = jax.Array


def step_orders(n: int, order: int, lower_order_final: bool = True) -> np.ndarray:
  """The order of each of the n steps: warm-up from 1, and lowered at the end if n < 15."""
  orders = np.minimum(np.arange(1, n + 1), order)
  if lower_order_final and n < 15:
    orders = np.minimum(orders, np.arange(n, 0, -1))
  return orders.astype(np.int32)


def _safe(r: Array) -> Array:
  """A divisor that is 0 only where its branch is not selected."""
  return jnp.where(r == 0.0, 1.0, r)


def _dpm_pp(key: Array, model: Model, grid: Grid, x: Array, *, order: int, stochastic: bool,
            lower_order_final: bool) -> tuple[Array, int]:
  n = grid.n_steps
  orders = jnp.asarray(step_orders(n, order, lower_order_final))
  keys = jax.random.split(key, n)
  zeros = jnp.zeros_like(x)

  def step(carry, inputs):
    x, d_prev1, d_prev2, lam_prev1, lam_prev2 = carry
    k, s, e, o = inputs
    d = model.x0(x, s.t)
    h = e.lam - s.lam
    r0 = _safe((s.lam - lam_prev1) / h)
    r1 = _safe((lam_prev1 - lam_prev2) / h)
    d1_0 = (d - d_prev1) / r0            # first divided differences, scaled by h
    d1_1 = (d_prev1 - d_prev2) / r1
    if stochastic:
      decay = jnp.exp(-h)
      coef = -jnp.expm1(-2.0 * h)
      x_new = e.sigma / s.sigma * decay * x + e.alpha * coef * d
      x_new = x_new + jnp.where(o >= 2, 0.5 * e.alpha * coef, 0.0) * d1_0
      x_new = x_new + e.sigma * jnp.sqrt(coef) * jax.random.normal(k, x.shape, x.dtype)
    else:
      phi_1 = jnp.expm1(-h)
      base = e.sigma / s.sigma * x - e.alpha * phi_1 * d
      second = base - 0.5 * e.alpha * phi_1 * d1_0
      phi_2 = phi_1 / h + 1.0
      phi_3 = phi_2 / h - 0.5
      dd1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)       # h D'
      dd2 = 2.0 * (d1_0 - d1_1) / (r0 + r1)              # h^2 D''
      third = base + e.alpha * phi_2 * dd1 - e.alpha * phi_3 * dd2
      x_new = jnp.where(o == 1, base, jnp.where(o == 2, second, third))
    return (x_new, d, d_prev1, s.lam, lam_prev1), None

  init = (x, zeros, zeros, grid.lam[0], grid.lam[0])
  (x, *_), _ = jax.lax.scan(step, init, (keys, grid.steps(), grid.ends(), orders))
  return x, n


def dpm_solver_pp_2m(key, model, grid, x, *, lower_order_final: bool = True):
  return _dpm_pp(key, model, grid, x, order=2, stochastic=False,
                 lower_order_final=lower_order_final)


def dpm_solver_pp_3m(key, model, grid, x, *, lower_order_final: bool = True):
  return _dpm_pp(key, model, grid, x, order=3, stochastic=False,
                 lower_order_final=lower_order_final)


def dpm_solver_pp_2m_sde(key, model, grid, x, *, lower_order_final: bool = True):
  return _dpm_pp(key, model, grid, x, order=2, stochastic=True,
                 lower_order_final=lower_order_final)


# --- UniPC ---------------------------------------------------------------------------

def _unipc_coefficients(h: Array, rks: list[Array], order: int) -> tuple[Array, Array, Array]:
  """(B(h), rhos of UniP, rhos of UniC) for `order` points (Zhao et al. 2023, Alg. 2-3, bh2).

  rks: the order - 1 ratios (lambda_{prev k} - lambda_s) / h of the earlier points.
  Solves R rho = b with R_{jk} = r_k^(j-1) and b_j = j! phi_{j+1}(h) / B(h) (their Eq. 8).
  """
  hh = -h  # data prediction integrates exp(-lambda)
  h_phi_1 = jnp.expm1(hh)
  b_h = jnp.expm1(hh)
  ratios = jnp.stack(list(rks) + [jnp.ones_like(h)])
  rows, b = [], []
  h_phi_k = h_phi_1 / hh - 1.0
  factorial = 1
  for j in range(1, order + 1):
    rows.append(ratios ** (j - 1))
    b.append(h_phi_k * factorial / b_h)
    factorial *= j + 1
    h_phi_k = h_phi_k / hh - 1.0 / factorial
  r_mat, b = jnp.stack(rows), jnp.stack(b)
  if order == 1:
    rhos_p = jnp.zeros((0,))
  elif order == 2:
    rhos_p = jnp.array([0.5])
  else:
    rhos_p = jnp.linalg.solve(r_mat[:-1, :-1], b[:-1])
  rhos_c = jnp.array([0.5]) if order == 1 else jnp.linalg.solve(r_mat, b)
  return b_h, rhos_p, rhos_c


def unipc(key: Array, model: Model, grid: Grid, x: Array, *, order: int = 3,
          lower_order_final: bool = True) -> tuple[Array, int]:
  """UniPC-p with UniC (bh2, data prediction); n evaluations for n steps."""
  del key
  if order not in (1, 2, 3):
    raise ValueError(f"unipc order={order} must be 1, 2 or 3")
  n = grid.n_steps
  orders = jnp.asarray(step_orders(n, order, lower_order_final))
  hist = order - 1  # earlier evaluations kept

  def update(x, m_now, m_prev, lam_prev, s, e, o, m_new=None):
    """Predictor (m_new None) or corrector at the step's order `o` (traced)."""
    h = e.lam - s.lam
    base = e.sigma / s.sigma * x - e.alpha * jnp.expm1(-h) * m_now
    results = []
    for k in range(1, order + 1):  # one candidate per order, selected below
      rks = [_safe((lam_prev[j] - s.lam) / h) for j in range(k - 1)]
      d1s = [(m_prev[j] - m_now) / rks[j] for j in range(k - 1)]
      b_h, rhos_p, rhos_c = _unipc_coefficients(h, rks, k)
      if m_new is None:
        res = sum((rhos_p[j] * d1s[j] for j in range(k - 1)), jnp.zeros_like(x))
      else:
        res = sum((rhos_c[j] * d1s[j] for j in range(k - 1)), jnp.zeros_like(x))
        res = res + rhos_c[-1] * (m_new - m_now)
      results.append(base - e.alpha * b_h * res)
    out = results[0]
    for k in range(2, order + 1):
      out = jnp.where(o == k, results[k - 1], out)
    return out

  def step(carry, inputs):
    x, m_now, m_prev, lam_prev = carry
    s, e, o = inputs
    x_pred = update(x, m_now, m_prev, lam_prev, s, e, o)
    m_new = model.x0(x_pred, e.t)
    x_corr = update(x, m_now, m_prev, lam_prev, s, e, o, m_new=m_new)
    m_prev = jnp.concatenate([m_now[None], m_prev[:-1]]) if hist else m_prev
    lam_prev = jnp.concatenate([s.lam[None], lam_prev[:-1]]) if hist else lam_prev
    return (x_corr, m_new, m_prev, lam_prev), None

  m0 = model.x0(x, grid.t[0])
  m_prev = jnp.zeros((hist,) + x.shape, x.dtype)
  lam_prev = jnp.full((hist,), grid.lam[0])
  carry = (x, m0, m_prev, lam_prev)
  steps, ends = grid.steps(), grid.ends()
  head = lambda a: a[:-1]  # noqa: E731  (all steps but the last: predictor + corrector)
  carry, _ = jax.lax.scan(step, carry, (jax.tree.map(head, steps), jax.tree.map(head, ends),
                                        orders[:-1]))
  x, m_now, m_prev, lam_prev = carry
  last = lambda a: a[-1]  # noqa: E731  (the last step: predictor only)
  x = update(x, m_now, m_prev, lam_prev, jax.tree.map(last, steps), jax.tree.map(last, ends),
             orders[-1])
  return x, n


# --- iPNDM ---------------------------------------------------------------------------

# Adams–Bashforth weights of the last 1-4 slopes, newest first (Zhang & Chen 2023, Eq. 24).
_AB = {1: (1.0,), 2: (1.5, -0.5), 3: (23 / 12, -16 / 12, 5 / 12),
       4: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


def ipndm(key: Array, model: Model, grid: Grid, x: Array, *, order: int = 4) -> tuple[Array, int]:
  """Improved PNDM (Zhang & Chen 2023, 'DEIS', Sec. 5 / App. 'iPNDM'): linear multistep.

  Adams–Bashforth of order min(i + 1, 4) with the fixed weights above, on EDM's
  ODE dx~/dsigma~ = eps(x, t) in x~ = x / alpha, sigma~ = exp(-lambda) (the
  lower-order warm start needs no extra evaluations; one evaluation per step).
  The weights are those of equal steps in sigma~: on the grids of `time_steps`, none
  uniform in sigma~, the step-size changes leave an O(h^3) local error, and the
  measured order is 2 (tests/test_few_step.py), with a smaller constant than the
  other second-order methods'.
  """
  del key
  if order not in _AB:
    raise ValueError(f"ipndm order={order} must be 1, 2, 3 or 4")
  n = grid.n_steps
  sig = jnp.exp(-grid.lam)
  orders = jnp.asarray(np.minimum(np.arange(1, n + 1), order).astype(np.int32))

  def step(carry, inputs):
    x_scaled, hist = carry
    t, alpha, sig_now, sig_next, o = inputs
    slope = model.eps(alpha * x_scaled, t)
    hist = jnp.concatenate([slope[None], hist[:-1]])
    d = slope
    for k in range(2, order + 1):
      combo = sum(w * hist[j] for j, w in enumerate(_AB[k]))
      d = jnp.where(o == k, combo, d)
    return (x_scaled + (sig_next - sig_now) * d, hist), None

  hist = jnp.zeros((order,) + x.shape, x.dtype)
  (x_scaled, _), _ = jax.lax.scan(
      step, (x / grid.alpha[0], hist),
      (grid.t[:-1], grid.alpha[:-1], sig[:-1], sig[1:], orders))
  return grid.alpha[-1] * x_scaled, n
