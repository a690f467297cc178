"""scorejax.config_check: every shipped config passes, each bad field fails naming itself and the fix.

In-process and without JAX work (the command-line tests in test_main.py check that
`python -m scorejax.main` reports the same errors and changes nothing).
"""

from __future__ import annotations

import importlib
import pathlib

import pytest

from scorejax import config_check

REPO = pathlib.Path(__file__).resolve().parents[1]
HELPERS = {"__init__", "blocks", "smoke", "default_cifar10", "default_celeba", "default_lsun"}


def _toy():
  from configs import toy_2d  # pylint: disable=import-outside-toplevel
  return toy_2d.get_config("smoke")


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "configs").glob("*.py")
                                        if p.stem not in HELPERS))
def test_every_shipped_config_is_valid(name):
  config_check.validate(importlib.import_module(f"configs.{name}").get_config())


def _set(config, **fields):
  for dotted, value in fields.items():
    section, field = dotted.split("__")
    config[section][field] = value
  return config


@pytest.mark.parametrize("fields, expected", [
    ({"training__sde": "edm"}, ["config.training.sde='edm'", "vpsde"]),
    ({"model__name": "unet"}, ["config.model.name='unet'", "ncsnpp"]),
    ({"training__sde": "subvpsde", "training__continuous": False},
     ["config.training.continuous=False", "sub-VP", "--config.training.continuous=True"]),
    ({"training__sde": "cosinevpsde", "training__continuous": False},
     ["config.training.continuous=False", "cosine VP"]),
    ({"training__continuous": False, "training__likelihood_weighting": True},
     ["config.training.likelihood_weighting=True", "continuous"]),
    ({"sampling__method": "rk45"}, ["config.sampling.method='rk45'", "'pc'", "'ode'", "'unipc'"]),
    ({"sampling__method": "pc", "sampling__predictor": "rk4"},
     ["config.sampling.predictor='rk4'", "reverse_diffusion"]),
    ({"sampling__method": "pc", "sampling__corrector": "hmc"},
     ["config.sampling.corrector='hmc'", "langevin"]),
    ({"sampling__method": "pc", "sampling__predictor": "none", "sampling__corrector": None},
     ["predictor and .corrector are both 'none'"]),
    ({"training__sde": "subvpsde", "sampling__method": "pc", "sampling__predictor": "ancestral"},
     ["predictor='ancestral'", "sub-VP", "reverse_diffusion"]),
    ({"training__importance_weighting": True},
     ["config.training.importance_weighting=True", "--config.training.likelihood_weighting=True"]),
    ({"training__continuous": False, "training__importance_weighting": True},
     ["config.training.importance_weighting=True needs continuous training"]),
    ({"training__time_sampling": "sobol"},
     ["config.training.time_sampling='sobol'", "'antithetic'", "'stratified'"]),
    ({"training__batch_size": 0}, ["config.training.batch_size=0 must be positive"]),
    ({"training__snapshot_freq_for_preemption": -1},
     ["config.training.snapshot_freq_for_preemption=-1 must be positive"]),
    ({"model__dtype": "bfloat16"},  # the toy MLP computes in float32 only
     ["config.model.dtype='bfloat16'", "'ncsnpp'", "--config.model.dtype=float32"]),
], ids=["unknown_sde", "unknown_model", "subvp_discrete", "cosine_discrete",
        "likelihood_weighting_discrete", "importance_without_likelihood_weighting",
        "importance_discrete", "unknown_time_sampling", "unknown_method", "unknown_predictor", "unknown_corrector",
        "no_predictor_no_corrector", "ancestral_subvp", "zero_batch", "negative_preemption_freq",
        "mixed_precision_mlp"])
def test_bad_field_is_named_with_its_fix(fields, expected):
  config = _set(_toy(), **fields)
  with pytest.raises(config_check.ConfigError) as info:
    config_check.validate(config)
  for text in expected:
    assert text in str(info.value), (text, str(info.value))


def test_valid_variants_pass():
  """The combinations next to the refused ones are accepted (the checks are not too wide)."""
  config_check.validate(_set(_toy(), training__continuous=False))  # VP has the DDPM chain
  config_check.validate(_set(_toy(), training__likelihood_weighting=True,
                             training__importance_weighting=True, training__time_sampling="stratified"))
  config_check.validate(_set(_toy(), training__sde="vesde", training__continuous=False,
                             sampling__method="pc", sampling__predictor="ancestral"))
  config_check.validate(_set(_toy(), sampling__method="PC", sampling__predictor="none",
                             sampling__corrector="ald"))
  config_check.validate(_set(_toy(), training__sde="VPSDE", training__likelihood_weighting=True))
