"""Image reconstruction: operators by name, classical baselines, solver runs, PSNR / SSIM,
and `--mode=sample` with `sampling.task='inverse'` (PNG strip and JSON summary).

    A = make_operator("radon", 16, n_angles=8)               # or "fourier", "mask", ...
    x_classical = classical_reconstruction(A, y)             # FBP / zero-filled inverse FFT
    result = reconstruct(key, sde, score_fn, truth, A, methods=("projection", "dps", "pigdm"),
                         noise_std=0.01, scale=2.0, offset=-1.0)

Images here are in [0, 1] (the physical object: zero background, so the Radon transform's
circle convention holds for digits); the model sees x = scale u + offset (score_sde's
centered data: scale 2, offset -1). Since A is linear, measurements of u translate
exactly into measurements of x: A x = scale A u + offset A 1, with noise scale x larger.
The classical baselines read the physical measurements; the solvers the model's.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from scorejax import sde as sde_lib
from scorejax.evaluation import progress
from scorejax.evaluation.metrics.image_quality import psnr, ssim
from scorejax.inverse.operators import (Downsample, GaussianBlur, LinearOperator, PixelMask,
                                        SubsampledFourier, cartesian_line_mask, measure,
                                        operator_norm)
from scorejax.inverse.radon import Radon
from scorejax.inverse.solvers import solve_inverse_problem

Array = jax.Array


def _radon(size: int, *, n_angles: int = 8, **_) -> Radon:
  return Radon(size, np.linspace(0.0, 180.0, int(n_angles), endpoint=False))


def _fourier(size: int, *, acceleration: float = 4.0, center_fraction: float = 0.08,
             mask_seed: int = 0, **_) -> SubsampledFourier:
  return SubsampledFourier(cartesian_line_mask(size, acceleration, center_fraction=center_fraction,
                                               seed=mask_seed))


def _mask(size: int, *, keep_fraction: float = 0.25, mask_seed: int = 0, **_) -> PixelMask:
  keep = np.random.default_rng(mask_seed).random((size, size, 1)) < keep_fraction
  return PixelMask(keep.astype(np.float32))


def _downsample(size: int, *, factor: int = 2, **_) -> Downsample:
  return Downsample(factor)


def _blur(size: int, *, blur_std: float = 1.5, **_) -> GaussianBlur:
  return GaussianBlur(size, blur_std)


OPERATOR_BUILDERS: Mapping[str, Callable[..., LinearOperator]] = {
    "radon": _radon, "fourier": _fourier, "mask": _mask, "downsample": _downsample,
    "blur": _blur,
}


# The settings (config fields `sampling.inverse.*`) each operator reads: its builder's
# keyword arguments.
OPERATOR_SETTINGS: Mapping[str, tuple[str, ...]] = {
    name: tuple(p.name for p in inspect.signature(build).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY)
    for name, build in OPERATOR_BUILDERS.items()
}


def make_operator(name: str, image_size: int, **settings) -> LinearOperator:
  """The operator `name` for square images of `image_size`; `settings`: n_angles (radon),
  acceleration, center_fraction, mask_seed (fourier), keep_fraction (mask), factor
  (downsample), blur_std (blur); settings another operator reads are ignored."""
  if name not in OPERATOR_BUILDERS:
    raise ValueError(f"operator={name!r} is not one of {sorted(OPERATOR_BUILDERS)}")
  return OPERATOR_BUILDERS[name](int(image_size), **settings)


def classical_reconstruction(A: LinearOperator, y: Array) -> Array:
  """The textbook reconstruction without a prior: filtered back-projection for the Radon
  transform, the zero-filled inverse FFT for undersampled Fourier, A^+ y otherwise."""
  if isinstance(A, Radon):
    return A.fbp(y)
  return A.pinv(y)


@dataclasses.dataclass
class Reconstructions:
  """truth, the classical reconstruction and each method's, all (B, H, W, C) in [0, 1];
  `psnr` / `ssim`: name -> (B,) per image ('classical' and each method); `nfe`: method ->
  score evaluations per image."""
  truth: np.ndarray
  images: dict[str, np.ndarray]
  psnr: dict[str, np.ndarray]
  ssim: dict[str, np.ndarray]
  nfe: dict[str, int]

  def summary(self) -> dict[str, dict[str, float]]:
    """name -> mean and standard error of PSNR and SSIM over the images, and nfe."""
    out = {}
    for name in self.images:
      p, s = self.psnr[name], self.ssim[name]
      se = lambda v: float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
      out[name] = {"psnr": float(np.mean(p)), "psnr_se": se(p), "ssim": float(np.mean(s)),
                   "ssim_se": se(s), "nfe": self.nfe.get(name, 0), "count": int(len(p))}
    return out


def reconstruct(key: Array, sde: sde_lib.SDE, score_fn: Callable[[Array, Array], Array],
                truth: Array, A: LinearOperator, *, methods: Sequence[str],
                noise_std: float = 0.0, scale: float = 2.0, offset: float = -1.0,
                options: Mapping[str, Mapping[str, Any]] | None = None,
                batch_size: int | None = None) -> Reconstructions:
  """Measures truth (B, H, W, C) in [0, 1] with A (plus noise_std noise), reconstructs it
  classically and with each method in `methods` (options[method]: its keywords), in
  batches of `batch_size` (default: all at once), and scores every reconstruction
  (clipped to [0, 1]) by PSNR and SSIM against the truth."""
  options = options or {}
  truth = jnp.asarray(truth, jnp.float32)
  k_noise, k_solve = jax.random.split(key)
  y = measure(k_noise, A, truth, noise_std)  # the physical measurement of u
  y_model = scale * y + offset * A.forward(jnp.ones_like(truth))
  images = {"classical": np.asarray(jnp.clip(classical_reconstruction(A, y), 0.0, 1.0))}
  nfe = {}
  b = truth.shape[0]
  batch_size = b if batch_size is None else int(batch_size)
  starts = range(0, b, batch_size)
  with progress.bar(desc="reconstruct", total=len(methods) * len(starts), unit="batch") as bar:
    for i, method in enumerate(methods):
      bar.set_postfix(method=method)
      solve = jax.jit(lambda k, yb, m=method: solve_inverse_problem(
          k, sde, score_fn, yb, A, (yb.shape[0],) + truth.shape[1:], method=m,
          noise_std=scale * noise_std, **dict(options.get(m, {}))))
      parts = []
      for j, start in enumerate(starts):
        x, count = solve(jax.random.fold_in(jax.random.fold_in(k_solve, i), j),
                         y_model[start:start + batch_size])
        nfe[method] = int(count)
        parts.append(np.asarray(jnp.clip((x - offset) / scale, 0.0, 1.0)))
        bar.update(1)
      images[method] = np.concatenate(parts)
  truth_np = np.asarray(truth)
  return Reconstructions(
      truth=truth_np, images=images,
      psnr={k: np.asarray(psnr(v, truth_np)) for k, v in images.items()},
      ssim={k: np.asarray(ssim(v, truth_np)) for k, v in images.items()}, nfe=nfe)


# --- `--mode=sample` with `sampling.task='inverse'` ---------------------------------------------

INVERSE_DIR = os.path.join("samples", "sample_mode")


@dataclasses.dataclass(frozen=True)
class InverseSettings:
  """What `--mode=sample` reconstructs when `config.sampling.task == 'inverse'`.

  operator and its settings (`make_operator`), the measurement noise (image units), the
  methods and their options (the config's PC sampler: predictor, corrector, snr,
  n_steps_each; dps's step size zeta' in units of 1 / ||A||_2, projection's lam), how many
  held-out test images (`count`, in batches of `batch_size`) and how many the strip shows.
  """
  operator: str
  operator_settings: dict
  noise_std: float
  methods: tuple[str, ...]
  options: dict
  count: int
  batch_size: int
  strip_count: int
  seed: int

  @classmethod
  def from_config(cls, config) -> "InverseSettings":
    inv, s = config.sampling.inverse, config.sampling
    pc = {"predictor": s.predictor, "corrector": s.corrector, "snr": float(s.snr),
          "n_corrector_steps": int(s.n_steps_each), "eps": float(s.eps)}
    settings = {k: inv[k] for k in OPERATOR_SETTINGS.get(str(inv.operator), ()) if k in inv}
    options = {"projection": dict(pc, lam=float(inv.projection_lam)),
               "pigdm": dict(pc),
               "dps": {"predictor": s.predictor, "eps": float(s.eps),
                       "step_size": float(inv.dps_step_size)}}
    return cls(operator=str(inv.operator), operator_settings=settings,
               noise_std=float(inv.noise_std), methods=tuple(inv.methods), options=options,
               count=int(inv.count), batch_size=int(inv.batch_size),
               strip_count=int(inv.strip_count), seed=int(config.seed))


def inverse_paths(workdir: str, step: int, operator: str) -> tuple[str, str]:
  """(PNG strip, JSON summary) of `--mode=sample` with `sampling.task='inverse'`."""
  stem = os.path.join(workdir, INVERSE_DIR, f"inverse_{operator}_step_{step:08d}")
  return stem + ".png", stem + ".json"


def write_reconstructions(c, s: InverseSettings, score_fn, truth: np.ndarray, step: int,
                          workdir: str) -> Reconstructions:
  """Reconstructs `truth` (N, H, W, C) in [0, 1] with every method and writes the strip
  (truth, classical, each method; per-image PSNR / SSIM captions, column means with
  standard errors) and a JSON summary (`inverse_paths`). `c`: the run's Components."""
  from scorejax.report.images import save_reconstruction_strip  # host-side, on use
  A = make_operator(s.operator, truth.shape[1], **s.operator_settings)
  options = {m: dict(o) for m, o in s.options.items()}
  if "dps" in options:  # zeta' in units of 1 / ||A||: one setting serves every operator
    norm = operator_norm(A, (1,) + tuple(truth.shape[1:]))
    options["dps"]["step_size"] = options["dps"]["step_size"] / norm
  centered = bool(c.centered)
  key = jax.random.fold_in(jax.random.key(s.seed + 3), step)
  result = reconstruct(key, c.sde, score_fn, truth, A, methods=s.methods, noise_std=s.noise_std,
                       scale=2.0 if centered else 1.0, offset=-1.0 if centered else 0.0,
                       options=options, batch_size=s.batch_size)
  summary = result.summary()
  png, js = inverse_paths(workdir, step, s.operator)
  if jax.process_index() == 0:
    k = min(s.strip_count, truth.shape[0])
    columns = {"truth": result.truth[:k], **{n: v[:k] for n, v in result.images.items()}}
    captions = {n: [f"{result.psnr[n][i]:.1f} dB / {result.ssim[n][i]:.2f}" for i in range(k)]
                for n in result.images}
    headers = {n: f"{n}\n{summary[n]['psnr']:.1f}±{summary[n]['psnr_se']:.1f} dB, "
                  f"SSIM {summary[n]['ssim']:.2f}" for n in result.images}
    title = (f"{s.operator} {s.operator_settings}, noise {s.noise_std}: PSNR / SSIM "
             f"(headers: mean ± s.e. over {truth.shape[0]} images)")
    save_reconstruction_strip(columns, captions, png, headers=headers, title=title)
    with open(js, "w") as f:
      json.dump({"operator": s.operator, "settings": s.operator_settings,
                 "noise_std": s.noise_std, "step": step, "results": summary}, f, indent=1)
  return result


def reconstruct_from_workdir(config, workdir: str) -> str:
  """`--mode=sample` with `sampling.task='inverse'`: the newest checkpoint's EMA score
  reconstructs `sampling.inverse.count` held-out test images; returns the strip's path."""
  from scorejax import data  # the config edge
  from scorejax.training import parallel, setup
  parallel.maybe_initialize_distributed()
  c = setup.build_components(config)
  s = InverseSettings.from_config(config)
  state, step = setup.load_state(c, workdir, seed=s.seed,
                                 snapshot_freq=int(config.training.snapshot_freq))
  images = []
  for batch in data.eval_batches(config, "test", batch_size=s.count):
    images.append(np.asarray(batch))
    break
  truth = np.concatenate(images)[:s.count]
  write_reconstructions(c, s, setup.ema_score_fn(c, state), truth, step, workdir)
  return inverse_paths(workdir, step, s.operator)[0]
