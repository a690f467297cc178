"""Blocks of fields that several configs share: the networks, NCSNv2's recipe, Adam, and
`optional()`, the field that may be None.

An experiment adds a network's fields to its dataset default's SDE fields with
`config.model.update(blocks.ncsnpp(...))`; keyword arguments change fields of the
block (an unknown one is an error). `ncsnv2(config, ...)` and `deep(config)` change
a whole config the way score_sde's NCSNv2 and `*_deep` configs do. Values are
score_sde's published ones; the comments here are the reference for these fields,
as `default_cifar10.py`'s are for the others.
"""

from typing import Any

import ml_collections
from ml_collections import config_dict


def optional(default: Any = None) -> config_dict.FieldReference:
  """A field that may be None: `--config.eval.begin_ckpt=5`, `=[2000, 4000]` and `=None`
  all override it.

  ml_collections fixes a field's type by its default and then refuses any other: a
  plain None refuses `--config.eval.begin_ckpt=5`, an int refuses `=None`. This
  field (of type `object`) takes any Python literal from the command line (a
  string that is not one stays a string); the code reading it checks the value
  (e.g. `scorejax.evaluation.loop.EvalSettings.from_config`). Paths, which are
  strings or unset, use `config_dict.placeholder(str)`.
  """
  return config_dict.FieldReference(default, field_type=object)


def _changed(block: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
  unknown = sorted(set(changes) - set(block))
  if unknown:
    raise TypeError(f"{unknown} are not fields of this block; it has {sorted(block)}")
  return {**block, **changes}


def _unet() -> dict[str, Any]:
  """The U-Net fields NCSN++ shares with the DDPM network it grew from (Ho et al. 2020)."""
  return dict(
      nonlinearity="swish",             # see scorejax.models.layers.ACTIVATIONS
      nf=128,                           # channels at the first level
      ch_mult=(1, 2, 2, 2),             # channel multiplier per resolution level
      attn_resolutions=(16,),           # resolutions (px) with self-attention
      resamp_with_conv=True,            # convolutions in the up/down-sampling layers
      conditional=True,                 # time-conditional residual blocks
      dtype="float32",                  # activations: 'float32' | 'bfloat16' (mixed precision on
                                        # accelerators; parameters stay float32; scorejax.models.precision)
  )


def ddpm(**changes: Any) -> dict[str, Any]:
  """The DDPM U-Net (Ho et al. 2020; `scorejax.models.ddpm`), score_sde's configs/vp/ddpm.

  `conditional` is kept as score_sde sets it: its DDPM reads it without effect.
  """
  return _changed(dict(
      _unet(),
      name="ddpm",
      scale_by_sigma=False,             # the network predicts the noise
      ema_rate=0.9999,
      num_res_blocks=2,                 # per level
  ), changes)


def ncsnpp(**changes: Any) -> dict[str, Any]:
  """NCSN++ (Song et al. 2021, App. H; `scorejax.models.ncsnpp`), as in score_sde's
  configs/ve/cifar10_ncsnpp_continuous.py."""
  return _changed(dict(
      _unet(),
      name="ncsnpp",                    # 'ncsnpp' | 'ddpm' | 'ncsnv2_64' | 'ncsnv2_128' | 'ncsnv2_256' | 'mlp'
      scale_by_sigma=True,              # output divided by sigma(t) (VE); False: predicts the noise
      ema_rate=0.999,
      num_res_blocks=4,                 # per level
      fir=True,                         # FIR up/down-sampling (StyleGAN2)
      fir_kernel=(1, 3, 3, 1),
      skip_rescale=True,                # skip connections scaled by 1/sqrt(2)
      resblock_type="biggan",           # 'biggan' | 'ddpm'
      progressive="none",               # output pyramid: 'none' | 'output_skip' | 'residual'
      progressive_input="residual",     # input pyramid: 'none' | 'input_skip' | 'residual'
      progressive_combine="sum",        # 'sum' | 'cat'
      attention_type="ddpm",
      init_scale=0.0,                   # scale of the residual blocks' last init (0: 1e-10)
      embedding_type="fourier",         # time embedding: 'fourier' (of log sigma) | 'positional' (of 999 t)
      fourier_scale=16,
  ), changes)


def ddpmpp(**changes: Any) -> dict[str, Any]:
  """DDPM++ (Song et al. 2021, App. H): the NCSN++ code with DDPM-style settings
  (positional embedding of 999 t, no FIR, no input pyramid, no sigma scaling), as in
  score_sde's configs/vp/cifar10_ddpmpp_continuous.py."""
  return ncsnpp(**{**dict(scale_by_sigma=False, ema_rate=0.9999, fir=False,
                          progressive_input="none", embedding_type="positional"), **changes})


def ncsnv2(config: ml_collections.ConfigDict, *, name: str, num_scales: int, ema_rate: float,
           n_steps_each: int, snr: float) -> None:
  """NCSNv2 trained and sampled as score_sde does it (Song & Ermon 2020).

  The RefineNet `name` (its size; nf 128, ELU) with output divided by sigma, the
  discrete SMLD loss (Song & Ermon 2019, Eq. 5-6) over `num_scales` noise levels from
  the default's sigma_max down to sigma_min, Adam 1e-4 without warm-up or gradient
  clipping, and annealed Langevin dynamics only (corrector 'ald', no predictor; Song &
  Ermon 2019, Alg. 1) with `n_steps_each` steps per noise level at `snr`.
  """
  config.training.sde = "vesde"
  config.training.continuous = False    # SMLD's loss over the integer noise levels
  config.sampling.method = "pc"
  config.sampling.predictor = "none"
  config.sampling.corrector = "ald"
  config.sampling.n_steps_each = n_steps_each
  config.sampling.snr = snr
  config.data.centered = False          # data in [0, 1]; the network applies 2x - 1
  config.model.update(dict(
      name=name,                        # 'ncsnv2_64' | 'ncsnv2_128' | 'ncsnv2_256'
      scale_by_sigma=True,              # NCSNv2 always divides its output by sigma
      num_scales=num_scales,            # L geometric noise levels (SMLD's sigma_i)
      ema_rate=ema_rate,
      nonlinearity="elu",
      nf=128,
  ))
  config.optim.update(lr=1e-4, warmup=0, grad_clip=-1.0)  # NCSNv2's Adam: no warm-up, no clipping


def deep(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """score_sde's `*_deep_continuous` CIFAR-10 variants: 8 res blocks per level, 0.95M iterations."""
  config.training.n_iters = 950001
  config.model.num_res_blocks = 8
  return config


def adam(*, lr: float, warmup: int, grad_clip: float = 1.0) -> ml_collections.ConfigDict:
  """`config.optim`: Adam (beta2 0.999) with a linear warm-up and global-norm clipping."""
  optim = ml_collections.ConfigDict()
  optim.optimizer = "Adam"              # the only one (scorejax.optim.OPTIMIZERS)
  optim.lr = lr                         # after `warmup` steps of linear increase from 0
  optim.warmup = warmup
  optim.grad_clip = grad_clip           # max global gradient norm; < 0: no clipping
  optim.beta1 = 0.9
  optim.eps = 1e-8
  optim.weight_decay = 0.0              # coupled L2 decay (added to the gradient)
  optim.lr_decay = "none"               # after the warm-up: 'none' (constant) | 'cosine' (to 0)
  optim.decay_steps = optional()        # where the cosine reaches 0; None: the run's n_iters
  return optim


def classifier(*, depth: int = 28, widen_factor: int = 10, n_iters: int = 200001,
               batch_size: int = 128, lr: float = 2e-4, warmup: int = 1000,
               ema_rate: float = 0.999, **changes: Any) -> ml_collections.ConfigDict:
  """`config.classifier`: the noise-conditional classifier of classifier guidance, trained with
  `--mode=train_classifier` (scorejax.training.classifier; the network: scorejax.models.classifier).

  Defaults: score_sde's CIFAR-10 design, a Wide-ResNet 28-10 told the noise level by the
  score network's embedding of the same SDE."""
  block = ml_collections.ConfigDict()
  block.name = "wideresnet"             # scorejax.models.classifier.CLASSIFIERS
  block.num_classes = 10
  block.depth = depth                   # 6 n + 4: n residual blocks per group
  block.widen_factor = widen_factor     # widths 16 k, 32 k, 64 k
  block.dropout = 0.0
  block.embedding_type = "auto"         # 'fourier' (log sigma) | 'positional' (999 t) | 'auto': by SDE
  block.fourier_scale = 16.0
  block.eps = 1e-5                      # t ~ U(eps, T) in the cross-entropy of p_t(y | x_t)
  block.batch_size = batch_size
  block.n_iters = n_iters
  block.ema_rate = ema_rate
  block.log_freq = 50
  block.eval_freq = 500                 # test-split loss (0: never)
  block.snapshot_freq = 10000
  block.snapshot_freq_for_preemption = 2000
  block.optim = adam(lr=lr, warmup=warmup)
  for k, v in changes.items():
    if k not in block:
      raise TypeError(f"{k!r} is not a field of the classifier block; it has {sorted(block)}")
    block[k] = v
  return block


def controllable_sampling(sampling: ml_collections.ConfigDict) -> None:
  """`--mode=sample`'s task fields (scorejax.evaluation.controllable), added to `config.sampling`."""
  sampling.task = "unconditional"       # 'unconditional' | 'inpaint' | 'colorize' | 'class' | 'interpolate'
  sampling.split = "test"               # inpaint / colorize / interpolate: images of this split,
  sampling.first_image = 0              #   from this index on,
  sampling.num_images = 16              #   this many (interpolate: the first two are the ends)
  sampling.mask = "half"                # inpaint: 'half' (lower half unknown) | 'box' | 'random' pixels
  sampling.mask_fraction = 0.5          # 'box': side fraction unknown; 'random': fraction unknown
  sampling.inpaint_method = config_dict.placeholder(str)  # None: the library's default (INPAINT_METHODS)
  sampling.class_labels = optional()    # class: a list, e.g. [3, 3, 7] (None: each class in turn)
  sampling.samples_per_class = 8        # class, class_labels None: a row per class
  sampling.guidance = "classifier"      # class: 'classifier' | 'classifier_free' | 'none'
  sampling.guidance_scale = 1.0         # classifier: scale of grad log p_t(y|x); free: w;
                                        #   inpaint/colorize 'guided'/'smc': reconstruction guidance's
  sampling.classifier_workdir = config_dict.placeholder(str)  # None: <workdir>/classifier
  sampling.interpolation_steps = 8      # interpolate: images from one end to the other
