"""Up-front validation of a config: every error names the field and the fix.

`validate(config)` runs before any work (the command line calls it first). It
refuses unknown names, SDE parameters the schedule cannot run with, networks
conditioned on labels the SDE does not give them (`_check_labels`), image sizes
the architecture cannot take, and batch sizes that cannot be split over the
devices.
"""

from __future__ import annotations

import math

import jax

from scorejax import models
from scorejax.models import precision
from scorejax import sde as sde_lib
from scorejax import time_sampling
from scorejax.sampling import CORRECTORS, FEW_STEP_METHODS, PREDICTORS, SAMPLING_METHODS
from scorejax.sampling.from_config import few_step_schedule
from scorejax.sampling.schedules import SAMPLING_EPS


class ConfigError(ValueError):
  """A config field has a value the code cannot run with."""


def _name(v) -> str:
  return "none" if v is None else str(v).lower()


def validate(config, *, device_count: int | None = None) -> None:
  """Raises ConfigError for unknown names and incompatible combinations.

  `device_count` is the number of devices batches are split over (default
  `jax.device_count()`, all devices of all processes).
  """
  t, m, s = config.training, config.model, config.sampling
  sde_name = str(t.sde).lower()
  if sde_name not in sde_lib.SDES:
    raise ConfigError(f"config.training.sde={t.sde!r} is not one of {sorted(sde_lib.SDES)}")
  if m.name not in models.ARCHITECTURES:
    raise ConfigError(f"config.model.name={m.name!r} is not one of {sorted(models.ARCHITECTURES)}")
  try:
    precision.compute_dtype(config)
  except ValueError as e:
    raise ConfigError(str(e)) from None
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
    if t.get("importance_weighting", False):
      raise ConfigError("config.training.importance_weighting=True needs continuous training (it "
                        "samples the continuous time t); set --config.training.continuous=True or "
                        "importance_weighting=False")
  if t.get("importance_weighting", False) and not t.likelihood_weighting:
    raise ConfigError("config.training.importance_weighting=True samples t with density "
                      "g(t)^2/sigma(t)^2, the likelihood weighting's; set "
                      "--config.training.likelihood_weighting=True (maximum-likelihood training, "
                      "Song et al. 2021b) or importance_weighting=False")
  if str(t.get("time_sampling", "iid")) not in time_sampling.TIME_SAMPLINGS:
    raise ConfigError(f"config.training.time_sampling={t.time_sampling!r} is not one of "
                      f"{sorted(time_sampling.TIME_SAMPLINGS)}")
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
  if config.get("eval") is not None and "batch_size" in config.eval:
    if int(config.eval.batch_size) <= 0:
      raise ConfigError(f"config.eval.batch_size={config.eval.batch_size} must be positive")
  _check_inverse(s)
  _check_sde(config, sde_name)
  _check_labels(config, sde_name)
  _check_image_size(config)
  _check_batches(config, jax.device_count() if device_count is None else int(device_count))
  _check_classes(config)
  _check_task(config)


# --mode=sample's tasks (scorejax.evaluation.tasks; names repeated here so that checking a
# config imports no training code).
TASKS = ("unconditional", "inpaint", "colorize", "class", "interpolate", "inverse")
MASKS = ("half", "box", "random")
GUIDANCE = ("classifier", "classifier_free", "none")
LABELLED_DATASETS = ("DIGITS", "CIFAR10", "SVHN", "MNIST")


def _check_classes(config) -> None:
  """Label-conditional models (model.num_classes, training.label_dropout) and the classifier."""
  m, t = config.model, config.training
  num_classes = int(m.get("num_classes", 0) or 0)
  dropout = float(t.get("label_dropout", 0.0) or 0.0)
  if num_classes < 0:
    raise ConfigError(f"config.model.num_classes={num_classes} must be >= 0 (0: unconditional)")
  if not 0.0 <= dropout < 1.0:
    raise ConfigError(f"config.training.label_dropout={dropout} must lie in [0, 1) (the "
                      "probability of training on the null label; 0.1-0.2 is usual)")
  if num_classes > 0:
    if m.name not in ("ncsnpp", "ddpm", "mlp"):
      raise ConfigError(f"config.model.num_classes={num_classes}: config.model.name={m.name!r} "
                        "takes no class label; use 'ncsnpp', 'ddpm' or 'mlp', or set "
                        "--config.model.num_classes=0")
    if m.name == "ncsnpp" and not bool(m.get("conditional", True)):
      raise ConfigError("config.model.num_classes > 0 needs config.model.conditional=True (the "
                        "label embedding is added to the time embedding)")
    if not bool(t.continuous):
      raise ConfigError("config.model.num_classes > 0 (a label-conditional model) needs "
                        "--config.training.continuous=True")
    if str(config.data.dataset) not in LABELLED_DATASETS:
      raise ConfigError(f"config.model.num_classes={num_classes} needs labelled data, but "
                        f"config.data.dataset={config.data.dataset!r} has no labels; use one of "
                        f"{LABELLED_DATASETS} or --config.model.num_classes=0")
  elif dropout > 0.0:
    raise ConfigError(f"config.training.label_dropout={dropout} drops class labels, but the "
                      "model takes none (config.model.num_classes=0); set "
                      "--config.model.num_classes, e.g. 10, or --config.training.label_dropout=0")
  c = config.get("classifier", None)
  if c is not None:
    for field in ("batch_size", "n_iters", "snapshot_freq", "snapshot_freq_for_preemption",
                  "log_freq", "num_classes"):
      if int(c[field]) <= 0:
        raise ConfigError(f"config.classifier.{field}={c[field]} must be positive")
    if (int(c.depth) - 4) % 6 or int(c.depth) < 10:
      raise ConfigError(f"config.classifier.depth={c.depth} must be 6 n + 4 with n >= 1 (10, 16, "
                        "28, ...): n residual blocks in each of the Wide-ResNet's 3 groups")


def _check_task(config) -> None:
  """`config.sampling.task` and the inputs it needs (`--mode=sample`)."""
  s = config.sampling
  task = str(s.get("task", "unconditional"))
  if task not in TASKS:
    raise ConfigError(f"config.sampling.task={task!r} is not one of {TASKS}")
  if task == "unconditional":
    return
  if str(config.data.dataset) == "TOY2D":
    raise ConfigError(f"config.sampling.task={task!r} needs image data; TOY2D takes only "
                      "'unconditional'")
  if task in ("inpaint", "colorize", "interpolate"):
    if int(s.get("num_images", 0)) < (2 if task == "interpolate" else 1):
      raise ConfigError(f"config.sampling.num_images={s.get('num_images')} must be >= "
                        f"{2 if task == 'interpolate' else 1} for sampling.task={task!r} (test "
                        "images to start from; interpolate joins them in pairs)")
    if int(s.get("first_image", 0)) < 0:
      raise ConfigError(f"config.sampling.first_image={s.first_image} must be >= 0")
    if str(s.get("split", "test")) not in ("train", "test"):
      raise ConfigError(f"config.sampling.split={s.split!r} is not 'train' or 'test'")
  if task == "inpaint":
    if str(s.get("mask", "half")) not in MASKS:
      raise ConfigError(f"config.sampling.mask={s.get('mask')!r} is not one of {MASKS}")
    if not 0.0 < float(s.get("mask_fraction", 0.5)) < 1.0:
      raise ConfigError(f"config.sampling.mask_fraction={s.mask_fraction} must lie in (0, 1) "
                        "(the unknown part: box side or share of random pixels)")
  if task in ("inpaint", "colorize"):
    # pylint: disable=g-import-not-at-top
    from scorejax.controllable import INPAINT_METHODS
    from scorejax.controllable.replacement import SINGLE_STEP_SAMPLERS
    method = s.get("inpaint_method", None)
    if method is not None and method not in INPAINT_METHODS:
      raise ConfigError(f"config.sampling.inpaint_method={method!r} is not one of "
                        f"{INPAINT_METHODS} (or None: the library's default)")
    sampler = str(s.method).lower()
    if method != "smc" and sampler != "pc" and sampler not in SINGLE_STEP_SAMPLERS:
      raise ConfigError(f"config.sampling.task={task!r} imposes the known part between sampler "
                        f"steps, which config.sampling.method={sampler!r} cannot take; use "
                        f"--config.sampling.method=pc or one of {tuple(SINGLE_STEP_SAMPLERS)}")
  if task == "colorize" and int(config.data.get("num_channels", 3)) != 3:
    raise ConfigError(f"config.sampling.task='colorize' needs colour images; "
                      f"config.data.dataset={config.data.dataset!r} has "
                      f"{config.data.get('num_channels')} channel(s)")
  if task == "interpolate" and int(s.get("interpolation_steps", 8)) < 2:
    raise ConfigError(f"config.sampling.interpolation_steps={s.interpolation_steps} must be >= 2")
  if task == "class":
    guidance = str(s.get("guidance", "classifier"))
    if guidance not in GUIDANCE:
      raise ConfigError(f"config.sampling.guidance={guidance!r} is not one of {GUIDANCE}")
    num_classes = int(config.model.get("num_classes", 0) or 0)
    if guidance == "classifier" and config.get("classifier", None) is None:
      raise ConfigError("config.sampling.guidance='classifier' needs a config.classifier block "
                        "(configs/blocks.py: classifier()) and a classifier trained with "
                        "--mode=train_classifier")
    if guidance == "classifier_free" and num_classes == 0:
      raise ConfigError("config.sampling.guidance='classifier_free' needs a label-conditional "
                        "model: train one with --config.model.num_classes=10 "
                        "--config.training.label_dropout=0.1 (or use "
                        "--config.sampling.guidance=classifier with a trained classifier)")
    classes = num_classes or (int(config.classifier.num_classes)
                              if config.get("classifier", None) is not None else 0)
    labels = s.get("class_labels", None)
    if labels is not None:
      if isinstance(labels, (int, str)) or not all(isinstance(v, int) for v in labels):
        raise ConfigError(f"config.sampling.class_labels={labels!r} must be a list of class "
                          "indices, e.g. --config.sampling.class_labels='[3, 3, 7]' (None: each "
                          "class in turn)")
      bad = [v for v in labels if not 0 <= v < max(classes, 1)]
      if bad or not labels:
        raise ConfigError(f"config.sampling.class_labels={list(labels)} must be non-empty "
                          f"indices in [0, {classes}) ({bad} are not)")
    elif int(s.get("samples_per_class", 8)) < 1:
      raise ConfigError(f"config.sampling.samples_per_class={s.samples_per_class} must be >= 1")
    if float(s.get("guidance_scale", 1.0)) < 0.0:
      raise ConfigError(f"config.sampling.guidance_scale={s.guidance_scale} must be >= 0")


def _check_inverse(s) -> None:
  """config.sampling.inverse when `--mode=sample` reconstructs (sampling.task='inverse')."""
  if str(s.get("task", "sample")) != "inverse":
    return
  from scorejax.evaluation.inverse import OPERATOR_BUILDERS  # pylint: disable=import-outside-toplevel
  from scorejax.inverse import INVERSE_METHODS  # pylint: disable=import-outside-toplevel
  inv = s.get("inverse")
  if inv is None:
    raise ConfigError("config.sampling.task='inverse' needs config.sampling.inverse (operator, "
                      "its settings, noise_std, methods, ...; see configs/digits.py)")
  if str(inv.operator) not in OPERATOR_BUILDERS:
    raise ConfigError(f"config.sampling.inverse.operator={inv.operator!r} is not one of "
                      f"{sorted(OPERATOR_BUILDERS)}")
  unknown = [m for m in inv.methods if m not in INVERSE_METHODS]
  if unknown:
    raise ConfigError(f"config.sampling.inverse.methods has {unknown}, not in {list(INVERSE_METHODS)}")
  if float(inv.noise_std) < 0 or int(inv.count) < 1 or int(inv.batch_size) < 1:
    raise ConfigError("config.sampling.inverse: noise_std must be >= 0, count and batch_size >= 1")


def _check_sde(config, sde_name: str) -> None:
  """The SDE's parameters (config.model.*) and the time floors within (0, T)."""
  m = config.model
  if int(m.num_scales) < 1:
    raise ConfigError(f"config.model.num_scales={m.num_scales} must be >= 1 (the number N of "
                      "noise levels / discretization steps: the discrete chains, the samplers' "
                      "steps and NCSN's sigma table); set --config.model.num_scales, e.g. 1000")
  try:
    sde = sde_lib.sde_from_config(config)
  except sde_lib.ScheduleError as e:
    raise ConfigError(str(e)) from None
  for section, default in (("training", 1e-5), ("sampling", SAMPLING_EPS)):
    eps = config[section].get("eps")
    if eps is not None and not (math.isfinite(float(eps)) and 0.0 < float(eps) < sde.T):
      raise ConfigError(f"config.{section}.eps={eps} must lie in (0, T) = (0, {sde.T:g}) for "
                        f"config.training.sde={sde_name!r} (the time floor); set "
                        f"--config.{section}.eps, e.g. {default:g}")


# What score_sde's networks receive as labels (`SDE.model_labels`), per the SDE's
# discrete chain and config.training.continuous:
_LABELS = {
    "sigma_index": "integer indices into the decreasing sigma table (NCSN's SMLD labels)",
    "sigma": "the noise level sigma(t) itself (floats)",
    "time": "999 t (floats in [0, 999])",
    "step": "the DDPM step index i = floor(t (N - 1)), increasing with t while the sigma "
            "table decreases",
}


def _labels_given(sde_name: str, continuous: bool) -> str:
  chain = sde_lib.SDES[sde_name].chain
  if chain == "smld":
    return "sigma" if continuous else "sigma_index"
  if chain == "ddpm" and not continuous:
    return "step"
  return "time"  # VP / sub-VP / cosine continuous (sub-VP also discretely, in score_sde)


def _labels_needed(m) -> tuple[set[str], str, str, str] | None:
  """(accepted label kinds, what the network does with its labels, what goes wrong
  with other labels, a model-side fix), or None where any labels will do.

  From the networks' code: NCSNv2 (always), the DDPM U-Net with scale_by_sigma and
  NCSN++ with the positional embedding and scale_by_sigma divide their output by
  sigmas[label] of a model.num_scales-entry table; the Fourier embeddings (NCSN++,
  MLP) embed log(label); scale_by_sigma with the Fourier embedding (and the MLP's)
  divides by the label itself.
  """
  name = m.name
  scale = bool(m.get("scale_by_sigma", False))
  embedding = str(m.get("embedding_type", "positional")).lower()
  table = (f"divides its output by sigmas[label] of its {m.num_scales}-entry sigma table "
           "(config.model.num_scales)")
  wrong_index = ("these are not indices into that table: JAX clamps the out-of-range ones "
                 "and the others select the wrong sigma")
  if name.startswith("ncsnv2"):
    return {"sigma_index"}, f"(NCSN, noise-conditional) {table}", wrong_index, ""
  if name == "ddpm" and scale:
    return ({"sigma_index"}, f"with config.model.scale_by_sigma=True {table}", wrong_index,
            " or --config.model.scale_by_sigma=False")
  if name == "ncsnpp" and scale and embedding == "positional":
    return ({"sigma_index"}, ("with config.model.embedding_type='positional' and "
                              f"config.model.scale_by_sigma=True {table}"), wrong_index,
            " or --config.model.scale_by_sigma=False")
  if scale and (name == "mlp" or (name == "ncsnpp" and embedding == "fourier")):
    return ({"sigma"}, "with config.model.scale_by_sigma=True divides its output by the label",
            "the output would be divided by a number that is not the noise level",
            " or --config.model.scale_by_sigma=False")
  if name in ("ncsnpp", "mlp") and embedding == "fourier":
    return ({"sigma", "time"}, "with config.model.embedding_type='fourier' embeds log(label)",
            "integer labels include 0, whose log is -inf",
            " or --config.model.embedding_type=positional")
  return None


def _check_labels(config, sde_name: str) -> None:
  """Refuses a network conditioned on labels the SDE and training mode do not give it.

  E.g. NCSNv2 with the continuous VP SDE would get labels 999 t for its 232-entry
  sigma table: JAX clamps the out-of-range index and the run trains without a word.
  """
  need = _labels_needed(config.model)
  if need is None:
    return
  accepted, what, consequence, model_fix = need
  continuous = bool(config.training.continuous)
  given = _labels_given(sde_name, continuous)
  if given in accepted:
    return
  if accepted == {"sigma_index"}:
    sde_fix = "--config.training.sde=vesde --config.training.continuous=False (SMLD training)"
  elif accepted == {"sigma"}:
    sde_fix = "--config.training.sde=vesde --config.training.continuous=True"
  else:
    sde_fix = "--config.training.continuous=True"
  raise ConfigError(
      f"config.model.name={config.model.name!r} {what}, but with config.training.sde="
      f"{sde_name!r} and config.training.continuous={continuous} its labels are "
      f"{_LABELS[given]}; {consequence}. Set {sde_fix}{model_fix}")


def _check_image_size(config) -> None:
  """Image sizes the architecture can take (`models.image_size_multiple`)."""
  rule = models.image_size_multiple(config)
  if rule is None:
    return
  multiple, why = rule
  size = int(config.data.image_size)
  if size < 1 or size % multiple:
    lower = max(multiple, size // multiple * multiple)
    raise ConfigError(
        f"config.data.image_size={config.data.image_size} cannot be taken by "
        f"config.model.name={config.model.name!r}: {why}, so the valid sizes are the multiples "
        f"of {multiple}; set --config.data.image_size to one (e.g. {lower} or "
        f"{lower + multiple})" + (" or shorten config.model.ch_mult" if "ch_mult" in why else ""))


def _check_batches(config, n_devices: int) -> None:
  """Global batches are split evenly over all devices (`training.parallel.check_global_batch`)."""
  sections = [("training", config.training)]
  if config.get("eval") is not None and "batch_size" in config.eval:
    sections.append(("eval", config.eval))
  for name, section in sections:
    size = int(section.batch_size)
    if size % n_devices:
      up = -(-size // n_devices) * n_devices
      raise ConfigError(
          f"config.{name}.batch_size={size} must be divisible by the number of devices "
          f"({n_devices}): each batch is split evenly over all devices; set "
          f"--config.{name}.batch_size to a multiple of {n_devices}, e.g. {up}")
