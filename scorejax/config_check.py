"""Up-front validation of a config: every error names the field and the fix."""

from __future__ import annotations

from scorejax import models
from scorejax import sde as sde_lib
from scorejax.sampling import CORRECTORS, FEW_STEP_METHODS, PREDICTORS, SAMPLING_METHODS
from scorejax.sampling.from_config import few_step_schedule


class ConfigError(ValueError):
  """A config field has a value the code cannot run with."""


def _name(v) -> str:
  return "none" if v is None else str(v).lower()


def validate(config) -> None:
  """Raises ConfigError for unknown names and incompatible combinations."""
  t, m, s = config.training, config.model, config.sampling
  sde_name = str(t.sde).lower()
  if sde_name not in sde_lib.SDES:
    raise ConfigError(f"config.training.sde={t.sde!r} is not one of {sorted(sde_lib.SDES)}")
  if m.name not in models.ARCHITECTURES:
    raise ConfigError(f"config.model.name={m.name!r} is not one of {sorted(models.ARCHITECTURES)}")
  has_chain = sde_lib.SDES[sde_name].chain is not None  # score_sde's SMLD / DDPM chains
  if not t.continuous:
    if not has_chain:
      raise ConfigError(f"config.training.continuous=False has no discrete loss for the "
                        f"{sde_lib.SDES[sde_name].display_name} SDE (training.sde={sde_name!r} has "
                        "no discrete chain); set "
                        "--config.training.continuous=True or --config.training.sde=vpsde")
    if t.likelihood_weighting:
      raise ConfigError("config.training.likelihood_weighting=True needs continuous training; "
                        "set --config.training.continuous=True or likelihood_weighting=False")
  if str(s.method).lower() not in SAMPLING_METHODS:
    raise ConfigError(f"config.sampling.method={s.method!r} is not one of {SAMPLING_METHODS}")
  if str(s.method).lower() in FEW_STEP_METHODS:
    try:
      few_step_schedule(s.get("schedule", None))
    except ValueError as e:
      raise ConfigError(str(e)) from None
    if s.get("n_steps", None) is not None and int(s.n_steps) < 1:
      raise ConfigError(f"config.sampling.n_steps={s.n_steps} must be at least 1")
  if str(s.method).lower() == "pc":
    if _name(s.predictor) not in PREDICTORS:
      raise ConfigError(f"config.sampling.predictor={s.predictor!r} is not one of {sorted(PREDICTORS)}")
    if _name(s.corrector) not in CORRECTORS:
      raise ConfigError(f"config.sampling.corrector={s.corrector!r} is not one of {sorted(CORRECTORS)}")
    if _name(s.predictor) == "none" and _name(s.corrector) == "none":
      raise ConfigError("config.sampling.predictor and .corrector are both 'none'; set at least one")
    if _name(s.predictor) == "ancestral" and not has_chain:
      raise ConfigError(f"config.sampling.predictor='ancestral' is defined for vesde and vpsde only "
                        f"(score_sde's discrete chains), not the {sde_lib.SDES[sde_name].display_name} "
                        f"SDE (training.sde={sde_name!r}); use 'reverse_diffusion' or 'euler_maruyama'")
  for field in ("batch_size", "n_iters", "snapshot_freq", "snapshot_freq_for_preemption", "log_freq"):
    if int(t[field]) <= 0:
      raise ConfigError(f"config.training.{field}={t[field]} must be positive")
