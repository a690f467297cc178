"""`--mode=sample` tasks: inpainting, colorization, class-conditional samples, interpolation.

`config.sampling.task` picks what `--mode=sample` draws with the newest checkpoint of
the workdir (EMA parameters), with the config's sampler (`config.sampling.method`, ...):

  unconditional  the sample grid (`evaluation.samples`)
  inpaint        test-split images with a mask (`sampling.mask`: 'half' = the lower half
                 unknown, 'box' = a centred square of side `mask_fraction` of the image,
                 'random' = each pixel unknown with probability `mask_fraction`) filled in
                 by `controllable.inpaint` (`sampling.inpaint_method`; None: its default).
                 Grid rows: input (unknown pixels grey), mask, result, truth.
  colorize       test-split colour images made grey and coloured by `controllable.colorize`.
                 Grid rows: grey input, result, truth.
  class          `samples_per_class` samples of each class (or of `class_labels`), guided by
                 `sampling.guidance`: 'classifier' (the noise-conditional classifier of
                 `--mode=train_classifier`, from `classifier_workdir`, default
                 workdir/classifier; `controllable.classifier_guided_score` at
                 `guidance_scale`), 'classifier_free' (a label-conditional model,
                 `model.num_classes > 0`, trained with `training.label_dropout`;
                 `controllable.classifier_free_guided_score` with w = `guidance_scale`), or
                 'none' (the label-conditional score itself, or the unconditional one).
                 Grid: one row per class.
  interpolate    pairs of test-split images (0, 1), (2, 3), ... joined through the
                 probability-flow latents (`controllable.interpolate`,
                 `interpolation_steps` images per row; `sampling.rtol/atol/eps`).

Files, under workdir/samples/sample_mode/: `<task>_step_XXXXXXXX_<details>.png` (the
grid) and `.npy` (the results in [0, 1]; class: also `_labels.npy`). The random key is
fold_in(key(seed + 3), step). `config_check.validate` checks the task's fields up
front; `run_task(TaskSettings, ...)` is the typed core.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import controllable, data
from scorejax.models.classifier import get_classifier_log_prob_fn
from scorejax.report import images
from scorejax.sampling import get_sampling_fn
from scorejax.training import classifier as classifier_training
from scorejax.training import parallel, setup
from scorejax.training.setup import Components
from scorejax.training.state import TrainState

Array = jax.Array

TASKS = ("unconditional", "inpaint", "colorize", "class", "interpolate")
MASKS = ("half", "box", "random")
GUIDANCE = ("classifier", "classifier_free", "none")
SAMPLE_MODE_DIR = os.path.join("samples", "sample_mode")


# ----------------------------------------------------------------------------- masks

def make_mask(kind: str, shape: tuple[int, ...], *, fraction: float = 0.5,
              key: Array | None = None) -> np.ndarray:
  """A (B, H, W, 1) float mask, 1 where the pixel is known, for images of `shape` (B, H, W, C).

  'half': the lower half unknown; 'box': a centred square of side round(fraction H)
  unknown; 'random': each pixel unknown with probability `fraction` (needs `key`).
  """
  b, h, w = shape[:3]
  mask = np.ones((b, h, w, 1), np.float32)
  if kind == "half":
    mask[:, h // 2:] = 0.0
  elif kind == "box":
    side_h, side_w = max(1, round(fraction * h)), max(1, round(fraction * w))
    top, left = (h - side_h) // 2, (w - side_w) // 2
    mask[:, top:top + side_h, left:left + side_w] = 0.0
  elif kind == "random":
    if key is None:
      raise ValueError("the 'random' mask needs a key")
    mask = np.asarray(jax.random.uniform(key, (b, h, w, 1)) >= fraction, np.float32)
  else:
    raise ValueError(f"mask kind {kind!r} is not one of {MASKS}")
  return mask


# ----------------------------------------------------------------------------- settings

@dataclasses.dataclass(frozen=True)
class TaskSettings:
  """What `--mode=sample` draws (`config.sampling`'s task fields; see the module docstring).

  `classifier_dir`: the classifier run for guidance='classifier'; `num_classes`: of
  the data (the classifier's or the label-conditional model's).
  """
  task: str = "unconditional"
  split: str = "test"
  first_image: int = 0
  num_images: int = 16
  mask: str = "half"
  mask_fraction: float = 0.5
  inpaint_method: str | None = None
  class_labels: tuple[int, ...] | None = None
  samples_per_class: int = 8
  guidance: str = "classifier"
  guidance_scale: float = 1.0
  classifier_dir: str | None = None
  interpolation_steps: int = 8
  num_classes: int = 10

  @classmethod
  def from_config(cls, config, workdir: str) -> "TaskSettings":
    s = config.sampling
    labels = s.get("class_labels", None)
    classifier = config.get("classifier", None)
    num_classes = int(config.model.get("num_classes", 0)) or (
        int(classifier.num_classes) if classifier is not None else 10)
    return cls(
        task=str(s.get("task", "unconditional")), split=str(s.get("split", "test")),
        first_image=int(s.get("first_image", 0)), num_images=int(s.get("num_images", 16)),
        mask=str(s.get("mask", "half")), mask_fraction=float(s.get("mask_fraction", 0.5)),
        inpaint_method=s.get("inpaint_method", None),
        class_labels=None if labels is None else tuple(int(v) for v in labels),
        samples_per_class=int(s.get("samples_per_class", 8)),
        guidance=str(s.get("guidance", "classifier")),
        guidance_scale=float(s.get("guidance_scale", 1.0)),
        classifier_dir=s.get("classifier_workdir", None) or classifier_training.classifier_workdir(workdir),
        interpolation_steps=int(s.get("interpolation_steps", 8)), num_classes=num_classes)

  def labels(self) -> np.ndarray:
    """The class of each sample of the 'class' task: `class_labels`, or each class in turn."""
    if self.class_labels is not None:
      return np.asarray(self.class_labels, np.int32)
    return np.repeat(np.arange(self.num_classes, dtype=np.int32), self.samples_per_class)


# ----------------------------------------------------------------------------- the tasks

# Inpainting methods that steer by reconstruction guidance take `sampling.guidance_scale`.
_GUIDED_INPAINT_METHODS = ("guided", "smc")


def _sampler_options(sampling, sde, method: str | None, scale: float) -> dict[str, Any]:
  """`inpaint`'s keywords from `config.sampling`: its sampler's (PC or a single-step
  few-step method) and, for a guided method, the guidance scale."""
  eps, denoise = float(sampling.eps), bool(sampling.noise_removal)
  method = controllable.DEFAULT_INPAINT_METHOD if method is None else method
  guided = dict(scale=scale) if method in _GUIDED_INPAINT_METHODS else {}
  if method == "smc":
    return dict(eps=eps, denoise=denoise, **guided)
  name = str(sampling.method).lower()
  if name == "pc":
    return dict(sampler="pc", predictor=_none(sampling.predictor), corrector=_none(sampling.corrector),
                snr=float(sampling.snr), n_corrector_steps=int(sampling.n_steps_each), eps=eps,
                denoise=denoise, **guided)
  return dict(sampler=name, n_steps=int(sampling.n_steps), eps=eps, denoise=denoise, **guided)


def _none(name) -> str | None:
  return None if name is None or str(name).lower() == "none" else str(name).lower()


def test_images(ev: data.EvalData, split: str, first: int, count: int) -> np.ndarray:
  """`count` images of `split` from index `first`, float32 (count, H, W, C) in [0, 1]."""
  source = ev.images(split)
  if first + count > len(source):
    raise ValueError(f"config.sampling.first_image={first} + num_images={count} exceeds the "
                     f"{len(source)} images of the {split!r} split; lower them")
  return np.stack([np.asarray(source[i], np.float32) / 255.0 for i in range(first, first + count)])


def class_score_fn(c: Components, state: TrainState, ts: TaskSettings, labels: Array,
                   classifier: Components | None = None,
                   classifier_variables: Any = None) -> Callable[[Array, Array], Array]:
  """The score of the 'class' task: guided as `ts.guidance` says (module docstring).

  `classifier`, `classifier_variables`: the noise-conditional classifier of
  guidance='classifier' (`classifier_training.load_classifier`).
  """
  score_fn = setup.ema_score_fn(c, state)
  if ts.guidance == "classifier":
    log_prob_fn = get_classifier_log_prob_fn(classifier.sde, classifier.model,
                                             classifier_variables)
    return controllable.classifier_guided_score(score_fn, log_prob_fn, labels, ts.guidance_scale)
  if ts.guidance == "classifier_free":
    return controllable.classifier_free_guided_score(score_fn, labels, ts.guidance_scale)
  conditional = getattr(c.model, "num_classes", 0) > 0
  return (lambda x, t: score_fn(x, t, labels)) if conditional else score_fn


def run_task(c: Components, state: TrainState, ts: TaskSettings, sampling, key: Array, *,
             ev: data.EvalData | None = None,
             classifier: tuple[Components, dict] | None = None) -> dict[str, np.ndarray]:
  """Runs task `ts.task` (not 'unconditional'); returns its arrays, in [0, 1]:

  inpaint: input, mask, result, truth; colorize: input, result, truth; class:
  result, labels; interpolate: result (pairs, steps, H, W, C). `sampling` is
  `config.sampling` (the sampler); `ev` the test data; `classifier` the
  (components, variables) of guidance='classifier' (`classifier_training.load_classifier`).
  """
  sde = c.sde
  if ts.task == "class":
    labels = jnp.asarray(ts.labels())
    shape = (labels.shape[0],) + c.data_shape
    sample = get_sampling_fn(sampling, sde, shape)
    cc, variables = classifier if classifier is not None else (None, None)
    run = jax.jit(lambda st, v, k: c.inverse_scaler(
        sample(k, class_score_fn(c, st, ts, labels, cc, v))[0]))
    x = run(state, variables, key)
    return {"result": np.asarray(x), "labels": np.asarray(labels)}

  truth = test_images(ev, ts.split, ts.first_image, ts.num_images)
  if ts.task == "inpaint":
    k_mask, k_fill = jax.random.split(key)
    mask = make_mask(ts.mask, truth.shape, fraction=ts.mask_fraction, key=k_mask)
    options = _sampler_options(sampling, sde, ts.inpaint_method, ts.guidance_scale)
    run = jax.jit(lambda st, y, m, k: c.inverse_scaler(controllable.inpaint(
        k, sde, setup.ema_score_fn(c, st), c.scaler(y), m, method=ts.inpaint_method,
        **options)[0]))
    x = np.asarray(run(state, jnp.asarray(truth), jnp.asarray(mask), k_fill))
    shown = truth * mask + 0.5 * (1.0 - mask)
    return {"input": shown, "mask": np.broadcast_to(mask, truth.shape).copy(), "result": x,
            "truth": truth}
  if ts.task == "colorize":
    if truth.shape[-1] != 3:
      raise ValueError(f"sampling.task='colorize' needs colour images (3 channels); "
                       f"{ev.dataset} has {truth.shape[-1]}")
    gray = truth.mean(-1, keepdims=True)
    options = _sampler_options(sampling, sde, ts.inpaint_method, ts.guidance_scale)
    run = jax.jit(lambda st, g, k: c.inverse_scaler(controllable.colorize(
        k, sde, setup.ema_score_fn(c, st), c.scaler(g), method=ts.inpaint_method,
        **options)[0]))
    # The model sees scaled data: grey = mean of the scaled channels = scaler(mean).
    x = np.asarray(run(state, jnp.asarray(gray), key))
    return {"input": np.repeat(gray, 3, -1), "result": x, "truth": truth}
  if ts.task == "interpolate":
    if ts.num_images < 2:
      raise ValueError("sampling.task='interpolate' needs num_images >= 2 (pairs of ends)")
    ode = dict(rtol=float(sampling.get("rtol", 1e-5)), atol=float(sampling.get("atol", 1e-5)),
               eps=float(sampling.eps))
    run = jax.jit(lambda st, a, b: c.inverse_scaler(controllable.interpolate(
        sde, setup.ema_score_fn(c, st), a, b, ts.interpolation_steps, **ode)))
    x = c.scaler(jnp.asarray(truth))
    rows = [np.asarray(run(state, x[i:i + 1], x[i + 1:i + 2]))
            for i in range(0, ts.num_images - 1, 2)]
    return {"result": np.stack(rows), "truth": truth}
  raise ValueError(f"sampling.task={ts.task!r} is not one of {TASKS}")


def task_grid(ts: TaskSettings, out: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
  """(images, images per row) of the task's PNG grid (the module docstring's layout)."""
  if ts.task == "inpaint":
    rows = [out["input"], out["mask"], out["result"], out["truth"]]
  elif ts.task == "colorize":
    rows = [out["input"], out["result"], out["truth"]]
  elif ts.task == "class":
    x = out["result"]
    per_row = ts.samples_per_class if ts.class_labels is None else len(x)
    return x, per_row
  else:  # interpolate: one row per pair
    r = out["result"]
    return r.reshape((-1,) + r.shape[2:]), r.shape[1]
  return np.concatenate(rows), len(rows[0])


def task_name(ts: TaskSettings, step: int) -> str:
  """The file stem of the task's outputs, e.g. `class_step_00002000_classifier_s1`."""
  details = {"inpaint": lambda: f"{ts.mask}_{ts.inpaint_method or 'default'}",
             "colorize": lambda: ts.inpaint_method or "default",
             "class": lambda: f"{ts.guidance}_s{ts.guidance_scale:g}",
             "interpolate": lambda: f"n{ts.interpolation_steps}"}[ts.task]()
  return f"{ts.task}_step_{step:08d}_{details}"


def write_task(ts: TaskSettings, out: dict[str, np.ndarray], step: int, workdir: str) -> str:
  """Writes the PNG grid and the `.npy` results; returns the PNG's path."""
  path = os.path.join(workdir, SAMPLE_MODE_DIR, task_name(ts, step) + ".png")
  if jax.process_index() == 0:
    grid, nrow = task_grid(ts, out)
    images.save_image_grid(grid, path, nrow=nrow)
    np.save(path[:-4] + ".npy", out["result"])
    if "labels" in out:
      np.save(path[:-4] + "_labels.npy", out["labels"])
  return path


def sample_task_from_workdir(config, workdir: str) -> str:
  """The config edge of `--mode=sample` with a task: restores, runs, writes; returns the PNG path."""
  parallel.maybe_initialize_distributed()
  ts = TaskSettings.from_config(config, workdir)
  c = setup.build_components(config)
  state, step = setup.load_state(c, workdir, seed=int(config.seed),
                                 snapshot_freq=int(config.training.snapshot_freq))
  classifier = (classifier_training.load_classifier(config, ts.classifier_dir)
                if ts.task == "class" and ts.guidance == "classifier" else None)
  key = jax.random.fold_in(jax.random.key(int(config.seed) + 3), step)
  out = run_task(c, state, ts, config.sampling, key, ev=data.eval_data(config),
                 classifier=classifier)
  return write_task(ts, out, step, workdir)


__all__ = ["TASKS", "MASKS", "GUIDANCE", "TaskSettings", "make_mask", "run_task", "task_grid",
           "task_name", "write_task", "sample_task_from_workdir", "test_images", "class_score_fn"]
