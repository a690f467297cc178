"""Fault injection: invalid inputs are refused where they enter, naming the field and the fix.

Each test reproduces one bad input of the reliability issue (invalid SDE parameters,
time floors outside (0, T), score functions of the wrong shape, unknown names,
mutated score_sde_pytorch state dicts, incompatible model/SDE/label/image-size/batch
combinations in a config) and asserts the clear error, raised before any work; or,
for a non-finite example in a likelihood batch, the correct result. Before these
checks the same inputs gave NaN, huge samples, plausible wrong numbers or a raw
error far from the cause. Fast: nothing trains.
"""

from __future__ import annotations

import importlib
import math
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from fixture_utils import load_score_sde_fixture
from scorejax import config_check, likelihood, models
from scorejax import sde as sde_lib
from scorejax.sampling import annealed_langevin, get_sampling_fn, ode_sample, pc_sample
from scorejax.toy import mixture as analytic

REPO = pathlib.Path(__file__).resolve().parents[1]


def _raises(fn, *expected: str, error=ValueError) -> str:
  """Calls fn, expecting `error` whose message contains every string of `expected`."""
  with pytest.raises(error) as info:
    fn()
  message = str(info.value)
  for text in expected:
    assert text in message, (text, message)
  return message


# --- SDE constructors ------------------------------------------------------------------

@pytest.mark.parametrize("make, expected", [
    (lambda: sde_lib.VESDE(sigma_min=-1.0), ["VESDE", "sigma_min=-1.0", "positive"]),
    (lambda: sde_lib.VESDE(sigma_min=0.0), ["sigma_min=0.0", "positive"]),
    (lambda: sde_lib.VESDE(sigma_max=math.inf), ["sigma_max=inf", "finite"]),
    (lambda: sde_lib.VESDE(sigma_min=1.0, sigma_max=1.0),
     ["sigma_max=1.0", "must exceed sigma_min=1.0"]),
    (lambda: sde_lib.VESDE(sigma_min=50.0, sigma_max=0.01),
     ["sigma_max=0.01", "sigma_min=50.0", "swap"]),
    (lambda: sde_lib.VPSDE(beta_min=-0.1), ["VPSDE", "beta_min=-0.1", ">= 0"]),
    (lambda: sde_lib.VPSDE(beta_min=-1.0, beta_max=-0.5), ["beta_min=-1.0"]),
    (lambda: sde_lib.VPSDE(beta_min=0.1, beta_max=0.05), ["beta_max=0.05", ">= beta_min=0.1"]),
    (lambda: sde_lib.VPSDE(beta_min=0.0, beta_max=0.0), ["beta_max=0.0", "positive"]),
    (lambda: sde_lib.subVPSDE(beta_max=math.nan), ["subVPSDE", "beta_max=nan"]),
    (lambda: sde_lib.VPSDE(N=0), ["N=0", "integer >= 1"]),
    (lambda: sde_lib.VESDE(N=2.5), ["N=2.5", "integer >= 1"]),
    (lambda: sde_lib.VPSDE(T=0.0), ["T=0.0", "positive"]),
    (lambda: sde_lib.CosineVPSDE(s=-0.1), ["CosineVPSDE", "s=-0.1", ">= 0"]),
    (lambda: sde_lib.CosineVPSDE(T=1.0), ["T=1.0", "below 1"]),
], ids=["ve_negative_sigma_min", "ve_zero_sigma_min", "ve_infinite_sigma_max", "ve_equal_sigmas",
        "ve_swapped_sigmas", "vp_negative_beta_min", "vp_negative_betas", "vp_decreasing_beta",
        "vp_zero_beta", "subvp_nan_beta", "zero_steps", "fractional_steps", "zero_end_time",
        "cosine_negative_offset", "cosine_end_time_one"])
def test_sde_constructor_refuses_invalid_parameters(make, expected):
  _raises(make, *expected, error=sde_lib.ScheduleError)


def test_sde_constructor_checks_only_static_values():
  """Under jit a traced parameter is not checked (and not broken); valid values still pass."""
  sigma = jax.jit(lambda b: sde_lib.VPSDE(beta_min=b).sigma(jnp.asarray(0.5)))(0.1)
  assert float(sigma) == pytest.approx(float(sde_lib.VPSDE().sigma(jnp.asarray(0.5))), rel=1e-6)
  assert sde_lib.VESDE(np.float32(0.01), 50, np.int64(10)).N == 10
  assert sde_lib.VPSDE(beta_min=0.0, beta_max=20.0).beta_min == 0.0


@pytest.mark.parametrize("sde_name, field, value", [
    ("vesde", "sigma_min", -1.0), ("vpsde", "beta_min", -0.1), ("subvpsde", "beta_max", 0.01),
    ("vpsde", "num_scales", 0)])
def test_sde_from_config_names_the_config_field(sde_name, field, value):
  model = dict(sigma_min=0.01, sigma_max=50.0, beta_min=0.1, beta_max=20.0, num_scales=1000)
  model[field] = value
  config = ml_collections.ConfigDict(dict(training=dict(sde=sde_name), model=model))
  _raises(lambda: sde_lib.sde_from_config(config), f"config.model.{field}={value!r}",
          f"--config.model.{field}", error=sde_lib.ScheduleError)


# --- samplers and likelihood: time floors, score shapes, names ---------------------------

MIX = analytic.imbalanced_mixture_2d()


def _score(sde):
  return analytic.marginal_score_fn(MIX, sde)


def _counted(score_fn, calls):
  """score_fn that records every evaluation actually run (not abstract traces)."""
  def counted(x, t):
    jax.debug.callback(lambda: calls.append(1))
    return score_fn(x, t)
  return counted


SAMPLER_CALLS = {
    "pc_sample": lambda sde, score_fn, **kw: pc_sample(jax.random.key(0), sde, score_fn, (4, 2),
                                                       n_steps=10, **kw),
    "ode_sample": lambda sde, score_fn, **kw: ode_sample(jax.random.key(0), sde, score_fn, (4, 2),
                                                         rtol=1e-3, atol=1e-3, **kw),
    "log_likelihood": lambda sde, score_fn, **kw: likelihood.log_likelihood(
        jax.random.key(0), sde, score_fn, MIX.sample(jax.random.key(1), 4), **kw),
}


@pytest.mark.parametrize("where", sorted(SAMPLER_CALLS))
@pytest.mark.parametrize("eps", [2.0, 1.0, 0.0, -1e-3, math.nan])
def test_time_floor_outside_zero_to_T_is_refused(where, eps):
  """eps > T gave VE samples of std 2e5, eps < 0 NaN, and the likelihood plausible numbers."""
  sde, calls = sde_lib.VESDE(), []
  _raises(lambda: SAMPLER_CALLS[where](sde, _counted(_score(sde), calls), eps=eps),
          f"{where}: eps={eps!r}", "(0, T) = (0, 1)")
  assert not calls  # refused before the first score evaluation


@pytest.mark.parametrize("where", sorted(SAMPLER_CALLS))
@pytest.mark.parametrize("bad_shape", ["(B, 1)", "(B,)", "(1, D)"])
def test_score_of_another_shape_is_refused(where, bad_shape):
  """A (B, 1) score broadcast against x and gave plausible numbers."""
  sde, calls = sde_lib.VPSDE(), []
  score = _score(sde)
  wrong = {"(B, 1)": lambda x, t: score(x, t)[:, :1],
           "(B,)": lambda x, t: score(x, t)[:, 0],
           "(1, D)": lambda x, t: score(x, t)[:1]}[bad_shape]
  _raises(lambda: SAMPLER_CALLS[where](sde, _counted(wrong, calls)), f"{where}: score_fn(x, t)",
          "for x of shape (4, 2)")
  assert not calls


def test_annealed_langevin_refuses_bad_score_and_ladders():
  score_sigma = lambda x, sigma: -x / sde_lib.batch_broadcast(sigma, x) ** 2
  _raises(lambda: annealed_langevin(jax.random.key(0), lambda x, s: score_sigma(x, s)[:, :1],
                                    [1.0, 0.1], (4, 2), n_steps_each=2),
          "score_fn_sigma(x, sigma) returned shape (4, 1)", "x of shape (4, 2)")
  for sigmas in ([0.1, 1.0], [1.0, -0.1], [], [[1.0, 0.1]]):
    _raises(lambda: annealed_langevin(jax.random.key(0), score_sigma, sigmas, (4, 2)),
            "annealed_langevin: sigmas")
  x = annealed_langevin(jax.random.key(0), score_sigma, [1.0, 0.1], (4, 2), n_steps_each=2)
  assert x.shape == (4, 2) and bool(jnp.all(jnp.isfinite(x)))


def _sampling_config(**fields):
  config = ml_collections.ConfigDict(dict(
      method="pc", predictor="reverse_diffusion", corrector="none", snr=0.16, n_steps_each=1,
      noise_removal=True, eps=1e-3))
  config.update(fields)
  return config


def test_get_sampling_fn_checks_up_front():
  sde = sde_lib.VESDE(N=10)
  _raises(lambda: get_sampling_fn(_sampling_config(eps=1.5), sde, (4, 2)),
          "config.sampling.eps=1.5", "(0, T)")
  _raises(lambda: get_sampling_fn(_sampling_config(predictor="rk4"), sde, (4, 2)),
          "'rk4'", "reverse_diffusion")
  _raises(lambda: get_sampling_fn(_sampling_config(corrector="hmc"), sde, (4, 2)), "'hmc'", "langevin")
  _raises(lambda: get_sampling_fn(_sampling_config(method="plms"), sde, (4, 2)),
          "config.sampling.method='plms'", "'pc'")
  sample = get_sampling_fn(_sampling_config(), sde, (4, 2))
  _raises(lambda: sample(jax.random.key(0), lambda x, t: -x[:, :1]), "returned shape (4, 1)")
  x, _ = sample(jax.random.key(0), _score(sde))
  assert x.shape == (4, 2)


def test_unknown_names_list_the_valid_ones():
  sde, score = sde_lib.VPSDE(N=10), _score(sde_lib.VPSDE())
  _raises(lambda: pc_sample(jax.random.key(0), sde, score, (4, 2), predictor="rk4"),
          "'rk4'", "euler_maruyama", "reverse_diffusion")
  _raises(lambda: pc_sample(jax.random.key(0), sde, score, (4, 2), corrector="hmc"), "'hmc'", "ald")
  _raises(lambda: ode_sample(jax.random.key(0), sde, score, (4, 2), solver="rk45"), "'rk45'", "tsit5")
  _raises(lambda: likelihood.log_likelihood(jax.random.key(0), sde, score, jnp.zeros((4, 2)),
                                            divergence="trace"),
          "divergence='trace'", "hutchinson_rademacher", "exact")


def test_checks_keep_samplers_jittable():
  """A traced eps is not checked (it cannot be), and a static one is checked at trace time."""
  sde = sde_lib.VESDE(N=10)
  sample = jax.jit(lambda k, e: pc_sample(k, sde, _score(sde), (4, 2), eps=e)[0])
  assert sample(jax.random.key(0), 1e-3).shape == (4, 2)
  with pytest.raises(ValueError, match="eps=2.0"):
    jax.jit(lambda k: pc_sample(k, sde, _score(sde), (4, 2), eps=2.0)[0])(jax.random.key(0))


# --- likelihood: one non-finite example does not spoil its batch ---------------------------

@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_example_leaves_the_rest_of_its_batch_intact(bad):
  """Before, the shared step-size control saw the NaN and every example's result was NaN."""
  sde = sde_lib.VPSDE()
  x = MIX.sample(jax.random.key(3), 4)
  x_bad = x.at[2, 1].set(bad)
  ll = lambda y: likelihood.log_likelihood(jax.random.key(0), sde, _score(sde), y,
                                           divergence="exact")
  logp, z, _ = ll(x_bad)
  keep = np.array([0, 1, 3])
  logp_ref, z_ref, _ = ll(x[keep])
  assert np.isnan(logp[2]) and np.all(np.isnan(z[2]))
  assert np.all(np.isfinite(logp[keep])) and np.all(np.isfinite(z[keep]))
  # The same values as without the bad example, within the solver's tolerance (rtol = atol = 1e-5).
  np.testing.assert_allclose(logp[keep], logp_ref, atol=2e-4, rtol=0)
  np.testing.assert_allclose(z[keep], z_ref, atol=2e-4, rtol=0)


# --- checkpoint converters: missing, unexpected and wrong-shaped keys ---------------------

@pytest.mark.parametrize("fixture", ["vp_ddpm_cifar10", "ve_ncsnv2_cifar10",
                                     "vp_cifar10_ddpmpp_continuous"])
def test_converter_names_missing_unexpected_and_wrong_shaped_keys(fixture):
  """DDPM's and NCSNv2's converters accepted all three silently; NCSN++'s refused them."""
  config, _, state_dict, _ = load_score_sde_fixture(fixture)
  weights = [k for k, v in state_dict.items() if k != "sigmas"]
  dropped = weights[len(weights) // 2]
  reshaped = next(k for k in weights if state_dict[k].ndim == 4 and k != dropped)
  mutated = dict(state_dict)
  del mutated[dropped]
  mutated[f"{reshaped.rsplit('.', 1)[0]}.running_mean"] = np.zeros(3, np.float32)  # no such parameter
  mutated["extra.weight"] = np.zeros((2, 2), np.float32)
  w = state_dict[reshaped]
  mutated[reshaped] = np.concatenate([w, w[:1]])  # one more output channel
  message = _raises(lambda: models.from_score_sde_pytorch(mutated, config),
                    f"missing keys: {dropped}", "unexpected keys:", "extra.weight",
                    f"{reshaped.rsplit('.', 1)[0]}.running_mean",
                    f"wrong shapes: {reshaped} {tuple(mutated[reshaped].shape)} (expected {w.shape})",
                    f"config.model.name={config.model.name!r}")
  assert message.count(dropped) == 1  # named once, as missing


def test_converter_accepts_a_missing_sigma_buffer():
  """`sigmas` is derived from the config: neither required nor refused."""
  config, _, state_dict, _ = load_score_sde_fixture("ve_ncsnv2_cifar10")
  without = {k: v for k, v in state_dict.items() if k != "sigmas"}
  a = models.from_score_sde_pytorch(without, config)
  b = models.from_score_sde_pytorch(state_dict, config)
  assert all(np.array_equal(p, q) for p, q in zip(jax.tree_util.tree_leaves(a),
                                                  jax.tree_util.tree_leaves(b)))


# --- configs: model/SDE/labels, image sizes, num_scales, batches ------------------------------

def _config(name: str, **fields):
  config = importlib.import_module(f"configs.{name}").get_config("smoke")
  for dotted, value in fields.items():
    section, field = dotted.split("__")
    config[section][field] = value
  return config


@pytest.mark.parametrize("name, fields, expected", [
    ("ncsnv2_cifar10", {"training__sde": "vpsde", "training__continuous": True},
     ["config.model.name='ncsnv2_64'", "232-entry sigma table", "config.training.sde='vpsde'",
      "config.training.continuous=True", "999 t", "clamps",
      "--config.training.sde=vesde --config.training.continuous=False"]),
    ("ncsnv2_cifar10", {"training__continuous": True},
     ["config.model.name='ncsnv2_64'", "config.training.sde='vesde'",
      "config.training.continuous=True", "sigma(t) itself", "--config.training.continuous=False"]),
    ("ncsnv2_cifar10", {"training__sde": "vpsde", "training__continuous": False},
     ["config.model.name='ncsnv2_64'", "config.training.continuous=False", "DDPM step index"]),
    ("ncsnv2_cifar10", {"training__sde": "subvpsde", "training__continuous": True},
     ["config.training.sde='subvpsde'", "999 t"]),
    ("ddpm_cifar10", {"model__scale_by_sigma": True},
     ["config.model.name='ddpm'", "scale_by_sigma=True", "sigmas[label]",
      "--config.model.scale_by_sigma=False"]),
    ("vp_cifar10", {"model__scale_by_sigma": True},
     ["config.model.name='ncsnpp'", "embedding_type='positional'", "sigmas[label]"]),
    ("ve_cifar10", {"training__continuous": False},
     ["config.model.name='ncsnpp'", "config.training.continuous=False",
      "divides its output by the label", "integer indices", "--config.training.continuous=True"]),
    ("ve_cifar10", {"training__continuous": False, "model__scale_by_sigma": False},
     ["embedding_type='fourier'", "log", "-inf", "--config.model.embedding_type=positional"]),
    ("ve_cifar10", {"training__sde": "vpsde"},
     ["scale_by_sigma=True", "config.training.sde='vpsde'", "999 t",
      "--config.training.sde=vesde"]),
    ("toy_2d", {"model__scale_by_sigma": True},
     ["config.model.name='mlp'", "scale_by_sigma=True", "--config.model.scale_by_sigma=False"]),
], ids=["ncsnv2_vp_continuous", "ncsnv2_ve_continuous", "ncsnv2_vp_discrete", "ncsnv2_subvp",
        "ddpm_scale_by_sigma_vp", "ddpmpp_scale_by_sigma_vp", "ncsnpp_scale_by_sigma_discrete",
        "ncsnpp_fourier_discrete",
        "ncsnpp_fourier_scale_by_sigma_vp", "mlp_scale_by_sigma_vp"])
def test_model_conditioned_on_labels_the_sde_does_not_give_is_refused(name, fields, expected):
  """NCSNv2 with the continuous VP SDE trained (loss 2e5) on labels 999 t clamped into 232 sigmas."""
  _raises(lambda: config_check.validate(_config(name, **fields), device_count=1), *expected,
          error=config_check.ConfigError)


def test_label_compatible_neighbours_pass():
  """The combinations next to the refused ones are accepted (the checks are not too wide)."""
  for name, fields in [
      ("ncsnv2_cifar10", {}),                                           # VE, discrete SMLD
      ("ddpm_cifar10", {}),                                             # DDPM steps, no sigma table
      ("vp_cifar10", {"training__continuous": False}),                  # positional, no scaling
      ("ve_cifar10", {"model__embedding_type": "positional",            # score_sde's VE NCSN++,
                      "training__continuous": False}),                  # discrete
      ("ve_cifar10", {"model__scale_by_sigma": False, "training__sde": "vpsde"}),  # Fourier of log 999 t
      ("toy_2d", {"training__sde": "vesde", "model__scale_by_sigma": True,
                  "model__embedding_type": "fourier"}),
  ]:
    config_check.validate(_config(name, **fields), device_count=1)


@pytest.mark.parametrize("name, bad, good, multiple, extra", [
    ("vp_cifar10", 18, 20, 4, ["config.model.ch_mult=(1, 2, 2)", "shorten config.model.ch_mult"]),
    ("ddpm_cifar10", 30, 28, 4, ["config.model.ch_mult=(1, 2, 2)"]),
    ("ncsnv2_cifar10", 17, 18, 2, ["config.model.name='ncsnv2_64'", "dilations"]),
    ("ncsnv2_bedroom", 18, 20, 4, ["config.model.name='ncsnv2_128'"]),
], ids=["ddpmpp", "ddpm", "ncsnv2_64", "ncsnv2_128"])
def test_image_size_the_architecture_cannot_take_is_refused(name, bad, good, multiple, extra):
  """Such sizes gave a raw reshape error at the first step (or, for NCSNv2, a silent broadcast)."""
  _raises(lambda: config_check.validate(_config(name, data__image_size=bad), device_count=1),
          f"config.data.image_size={bad}", f"multiples of {multiple}", "--config.data.image_size",
          *extra, error=config_check.ConfigError)
  config = _config(name, data__image_size=good, model__attn_resolutions=())
  config_check.validate(config, device_count=1)
  model = models.get_model(config)
  x, labels = jnp.zeros((1, good, good, config.data.num_channels)), jnp.zeros((1,), jnp.int32)
  out = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), x, labels, train=False),
                                           x, labels, train=False))
  assert out.shape == x.shape  # the accepted size runs and keeps its shape


@pytest.mark.parametrize("fields, expected", [
    ({"model__num_scales": 0}, ["config.model.num_scales=0", ">= 1", "--config.model.num_scales"]),
    ({"model__beta_min": -0.5}, ["config.model.beta_min=-0.5", "--config.model.beta_min"]),
    ({"training__sde": "vesde", "model__sigma_min": -1.0},
     ["config.model.sigma_min=-1.0", "--config.model.sigma_min"]),
    ({"sampling__eps": 2.0}, ["config.sampling.eps=2.0", "(0, T)", "--config.sampling.eps"]),
    ({"training__eps": 0.0}, ["config.training.eps=0.0", "(0, T)", "--config.training.eps"]),
    ({"eval__batch_size": 0}, ["config.eval.batch_size=0 must be positive"]),
], ids=["zero_num_scales", "negative_beta", "negative_sigma_min", "sampling_eps", "training_eps",
        "zero_eval_batch"])
def test_invalid_sde_fields_are_config_errors(fields, expected):
  """num_scales=0 failed with ZeroDivisionError at the first snapshot; the others gave NaN."""
  _raises(lambda: config_check.validate(_config("toy_2d", **fields), device_count=1), *expected,
          error=config_check.ConfigError)


@pytest.mark.parametrize("section", ["eval", "training"])
def test_batch_size_not_divisible_by_the_devices_is_refused(section):
  """eval.batch_size failed at the first evaluation with a raw sharding error."""
  config = _config("toy_2d", **{f"{section}__batch_size": 6})
  _raises(lambda: config_check.validate(config, device_count=4),
          f"config.{section}.batch_size=6", "number of devices (4)",
          f"--config.{section}.batch_size to a multiple of 4, e.g. 8", error=config_check.ConfigError)
  config_check.validate(config, device_count=2)
  config_check.validate(config, device_count=1)
  # Default: all devices of all processes.
  getattr(config, section).batch_size = 6 * jax.device_count()
  config_check.validate(config)


def _shipped() -> list[str]:
  helpers = {"__init__", "blocks", "smoke", "default_cifar10", "default_celeba", "default_lsun"}
  return sorted(p.stem for p in (REPO / "configs").glob("*.py") if p.stem not in helpers)


@pytest.mark.parametrize("arg", ["", "smoke"])
@pytest.mark.parametrize("name", _shipped())
def test_every_shipped_config_passes_on_one_and_eight_devices(name, arg):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  for n in (1, 8):
    config_check.validate(config, device_count=n)
