"""CIFAR-10 defaults (score_sde's default_cifar10_configs.py): every field but the network's.

Not an experiment on its own (it names no network): `ve_cifar10.py`,
`vp_cifar10.py`, ... start from `get_config()` and state what they change; the
CelebA and LSUN defaults start from it too. Every field is listed here with a
comment, so this file (with `blocks.py` for the networks' fields) is the reference
for config fields; `digits.py` and `toy_2d.py` stand alone and comment the few
fields of their own (e.g. `sampling.rtol`, `data.toy_name`).
"""

import ml_collections
from ml_collections import config_dict

from configs import blocks


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.training = training = ml_collections.ConfigDict()
  training.sde = "vesde"                 # 'vesde' | 'vpsde' | 'subvpsde'
  training.continuous = True             # continuous-time DSM (True) or SMLD/DDPM discrete losses
  training.reduce_mean = False           # mean (True) or sum (False) of the per-pixel loss
  training.likelihood_weighting = False  # lambda(t) = g(t)^2 (Song et al. 2021b) instead of std^2
  training.eps = 1e-5                    # time floor of the continuous DSM loss: t ~ U(eps, T)
  training.importance_weighting = False  # t ~ g^2/sigma^2, reweighted (Song et al. 2021b, Sec. 5)
  training.time_sampling = "iid"         # t over a batch: 'iid' | 'stratified' | 'antithetic'
  training.batch_size = 128              # global batch, split over all devices and hosts
  training.n_iters = 1300001
  training.snapshot_freq = 50000         # kept checkpoints (and sample grids)
  training.snapshot_freq_for_preemption = 10000  # overwritten checkpoint for resuming
  training.n_jitted_steps = 5          # steps per dispatch (score_sde's; for accelerators: 1 on CPU)
  training.snapshot_sampling = True      # sample a grid at every snapshot
  training.log_freq = 50
  training.eval_freq = 100               # test-split loss every eval_freq steps (0: never)
  training.label_dropout = 0.0           # label-conditional models: P(label -> null), Ho & Salimans 2022
  training.init_from = config_dict.placeholder(str)  # a run's workdir: start from its parameters

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.method = "pc"                 # 'pc' | 'ode' | a few-step method ('unipc', ...; docs/sampling.md)
  sampling.predictor = "reverse_diffusion"  # 'euler_maruyama' | 'reverse_diffusion' | 'ancestral' | 'none'
  sampling.corrector = "langevin"        # 'langevin' | 'ald' | 'none'
  sampling.n_steps_each = 1              # corrector steps per predictor step
  sampling.noise_removal = True          # final Tweedie denoising step
  sampling.snr = 0.16                    # Langevin corrector's signal-to-noise ratio
  sampling.eps = 1e-3                    # time floor: samplers integrate from T down to eps
  sampling.n_steps = 20                  # steps of a few-step method (1 evaluation each; heun 2)
  sampling.schedule = "default"          # its time grid: 'default' (the method's) | 'log_snr' | 'karras' | ...
  blocks.controllable_sampling(sampling)  # --mode=sample's task: inpaint, colorize, class, ...

  # --mode=eval (scorejax.evaluation.loop). Fields that may be None are `blocks.optional`
  # or placeholders: `--config.eval.begin_ckpt=None`, `--config.eval.checkpoint_steps=[999]`.
  config.eval = evaluate = ml_collections.ConfigDict()
  evaluate.begin_ckpt = blocks.optional(9)  # checkpoints begin_ckpt..end_ckpt, in units of snapshot_freq
  evaluate.end_ckpt = blocks.optional(26)   # (None: every kept checkpoint)
  evaluate.checkpoint_steps = blocks.optional()  # a list of real steps instead, e.g. [500000]
  evaluate.batch_size = 1024             # global: a multiple of the device count
  evaluate.enable_sampling = False       # FID/IS/KID of num_samples samples
  evaluate.num_samples = 50000
  evaluate.enable_loss = True            # test-split loss of the EMA parameters
  evaluate.enable_bpd = False            # bits/dim by the probability-flow ODE
  evaluate.bpd_dataset = "test"
  evaluate.bpd_max_examples = blocks.optional()  # bits/dim of at most this many examples (None: all)
  # Sample metrics: feature spaces ('inception', 'digits_classifier'; None: by dataset), their
  # reference statistics (from --mode=fid_stats; None: computed once under workdir/eval), the
  # FID Inception weights (None: $SCOREJAX_INCEPTION_WEIGHTS) and the digits classifier's cache.
  evaluate.feature_kinds = config_dict.placeholder(str)  # e.g. 'inception,digits_classifier'
  evaluate.stats_path = config_dict.placeholder(str)
  evaluate.digits_stats_path = config_dict.placeholder(str)
  evaluate.inception_weights = config_dict.placeholder(str)
  evaluate.cache_dir = config_dict.placeholder(str)

  config.data = data = ml_collections.ConfigDict()
  data.dataset = "CIFAR10"
  data.image_size = 32
  data.random_flip = True
  data.centered = False                  # False: data in [0, 1]; True: in [-1, 1]
  data.uniform_dequantization = False
  data.num_channels = 3
  data.data_dir = config_dict.placeholder(str)  # TFDS data dir; None: $TFDS_DATA_DIR or ~/tensorflow_datasets

  # The SDE's fields; the experiment adds the network's (configs/blocks.py).
  config.model = model = ml_collections.ConfigDict()
  model.sigma_min = 0.01                 # VE SDE
  model.sigma_max = 50.0
  model.num_scales = 1000                # N: discretization steps
  model.num_classes = 0                  # > 0: label-conditional (class embedding; -1 = no label)
  model.beta_min = 0.1                   # VP / sub-VP SDE
  model.beta_max = 20.0
  model.dropout = 0.1
  model.embedding_type = "fourier"       # 'fourier' | 'positional'

  config.optim = blocks.adam(lr=2e-4, warmup=5000)
  # --mode=train_classifier: the noise-conditional WRN-28-10 of classifier guidance
  config.classifier = blocks.classifier()

  config.seed = 42
  return config
