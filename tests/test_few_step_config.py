"""The config path of the few-step samplers: `config.sampling.method` names one,
`sampling.n_steps` / `sampling.schedule` shape it, `sampling.get_sampling_fn` builds it
(the sampler of `--mode=sample`, `--mode=eval` and the training snapshots), and
`config_check` accepts exactly the names that path runs.

With the exact score of the 2-D imbalanced mixture (weights 0.2 / 0.8): a weight
estimated from n = 4096 samples scatters by sqrt(0.16 / 4096) = 0.006, so the 0.03
bound on the weight TV of a 20-step sampler (measured: ~0.005) is ~5 standard
deviations, and a sampler that stops halfway (noise of std ~1 around the modes) or
keeps one mode only (TV 0.2) fails it.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from configs import default_cifar10, digits, toy_2d
from scorejax import config_check
from scorejax import sde as sde_lib
from scorejax.sampling import (FEW_STEP_METHODS, SAMPLING_METHODS, default_method,
                               few_step_sample, get_sampling_fn)
from scorejax.toy import distances, mixture

EVALS_PER_STEP = {"heun": 2, "dpm_solver_2": 2, "dpm_solver_3": 3}


def _toy_sampling(method: str, **fields):
  config = toy_2d.get_config("smoke")
  config.sampling.method = method
  config.sampling.update(fields)
  return config


def test_sampling_methods_are_pc_ode_and_every_few_step_name():
  assert SAMPLING_METHODS[:2] == ("pc", "ode")
  assert set(SAMPLING_METHODS[2:]) == set(FEW_STEP_METHODS)


def test_shipped_configs_have_few_step_fields():
  for config in (default_cifar10.get_config(), digits.get_config(), toy_2d.get_config()):
    assert int(config.sampling.n_steps) >= 1
    assert config.sampling.schedule == "default"


@pytest.mark.parametrize("method", sorted(FEW_STEP_METHODS))
def test_config_check_accepts_every_few_step_method(method):
  config_check.validate(_toy_sampling(method))


def test_config_check_rejects_bad_few_step_fields():
  with pytest.raises(config_check.ConfigError, match="sampling.method='unipcc'.*dpm_solver"):
    config_check.validate(_toy_sampling("unipcc"))
  with pytest.raises(config_check.ConfigError, match="sampling.schedule='karas'.*karras"):
    config_check.validate(_toy_sampling("unipc", schedule="karas"))
  with pytest.raises(config_check.ConfigError, match="n_steps=0"):
    config_check.validate(_toy_sampling("unipc", n_steps=0))


@pytest.mark.parametrize("method", sorted(FEW_STEP_METHODS))
def test_every_few_step_method_samples_through_the_config_under_jit(method):
  """Shape, finiteness and the exact NFE (one more for noise_removal) of every method."""
  sde = sde_lib.VPSDE()
  mix = mixture.imbalanced_mixture_2d()
  config = _toy_sampling(method, n_steps=3, noise_removal=True)
  sample = get_sampling_fn(config.sampling, sde, (8, 2))
  x, nfe = jax.jit(sample, static_argnums=1)(jax.random.key(0), mixture.marginal_score_fn(mix, sde))
  assert x.shape == (8, 2) and bool(np.all(np.isfinite(x)))
  assert int(nfe) == 3 * EVALS_PER_STEP.get(method, 1) + 1


@pytest.mark.parametrize("sde", [sde_lib.VESDE(), sde_lib.subVPSDE()],
                         ids=["VE", "subVP"])
def test_config_sampler_is_few_step_sample_with_the_config_fields(sde):
  """The config's n_steps, schedule, eps and noise_removal reach `few_step_sample`, and the
  samples recover the mixture's weights."""
  mix = mixture.imbalanced_mixture_2d()
  score_fn = mixture.marginal_score_fn(mix, sde)
  config = _toy_sampling("dpm_solver++_3m", n_steps=20, schedule="karras", eps=2e-3,
                         noise_removal=False)
  sample = get_sampling_fn(config.sampling, sde, (4096, 2))
  key = jax.random.key(1)
  x, nfe = jax.jit(lambda k: sample(k, score_fn))(key)
  x_ref, nfe_ref = jax.jit(lambda k: few_step_sample(
      k, sde, score_fn, (4096, 2), method="dpm_solver++_3m", n_steps=20, schedule="karras",
      eps=2e-3))(key)
  assert int(nfe) == int(nfe_ref) == 20
  np.testing.assert_allclose(x, x_ref, atol=1e-5)
  assert float(distances.weights_total_variation(mix, x)) < 0.03


def test_default_schedule_and_missing_fields():
  """schedule 'default' (or None) is the method's own; a config without n_steps gets 20."""
  sde = sde_lib.VPSDE()
  mix = mixture.imbalanced_mixture_2d()
  score_fn = mixture.marginal_score_fn(mix, sde)
  method = default_method(sde, 20)
  config = _toy_sampling(method, noise_removal=False)
  del config.sampling["n_steps"], config.sampling["schedule"]
  key = jax.random.key(2)
  x, nfe = jax.jit(lambda k: get_sampling_fn(config.sampling, sde, (64, 2))(k, score_fn))(key)
  x_ref, _ = jax.jit(lambda k: few_step_sample(k, sde, score_fn, (64, 2), method=method,
                                               n_steps=20, eps=1e-3))(key)
  assert int(nfe) == 20
  np.testing.assert_allclose(x, x_ref, atol=1e-5)
