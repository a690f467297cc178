"""Defaults shared by the CIFAR-10 experiment configs (score_sde's field names and values).

Not an experiment on its own: `ve_cifar10.py`, `vp_cifar10.py`, ... import
`get_default_configs()` and set the SDE and the model. Every field is listed
here with a comment, so this file doubles as the reference for config fields.
"""

import ml_collections


def get_default_configs() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.training = training = ml_collections.ConfigDict()
  training.sde = "vesde"                 # 'vesde' | 'vpsde' | 'subvpsde'
  training.continuous = True             # continuous-time DSM (True) or SMLD/DDPM discrete losses
  training.reduce_mean = False           # mean (True) or sum (False) of the per-pixel loss
  training.likelihood_weighting = False  # lambda(t) = g(t)^2 (Song et al. 2021b) instead of std^2
  training.batch_size = 128              # global batch, split over all devices and hosts
  training.n_iters = 1300001
  training.snapshot_freq = 50000         # kept checkpoints (and sample grids)
  training.snapshot_freq_for_preemption = 10000  # overwritten checkpoint for resuming
  training.snapshot_sampling = True      # sample a grid at every snapshot
  training.log_freq = 50
  training.eval_freq = 100

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.method = "pc"                 # 'pc' | 'ode'
  sampling.predictor = "reverse_diffusion"  # 'euler_maruyama' | 'reverse_diffusion' | 'ancestral' | 'none'
  sampling.corrector = "langevin"        # 'langevin' | 'ald' | 'none'
  sampling.n_steps_each = 1              # corrector steps per predictor step
  sampling.noise_removal = True          # final Tweedie denoising step
  sampling.probability_flow = False
  sampling.snr = 0.16                    # Langevin corrector's signal-to-noise ratio

  config.eval = evaluate = ml_collections.ConfigDict()
  evaluate.begin_ckpt = 9
  evaluate.end_ckpt = 26
  evaluate.batch_size = 1024
  evaluate.enable_sampling = False
  evaluate.num_samples = 50000
  evaluate.enable_loss = True
  evaluate.enable_bpd = False
  evaluate.bpd_dataset = "test"

  config.data = data = ml_collections.ConfigDict()
  data.dataset = "CIFAR10"
  data.image_size = 32
  data.random_flip = True
  data.centered = False                  # False: data in [0, 1]; True: in [-1, 1]
  data.uniform_dequantization = False
  data.num_channels = 3
  data.data_dir = None                   # TFDS data dir (None: TFDS default, or $TFDS_DATA_DIR)

  config.model = model = ml_collections.ConfigDict()
  model.sigma_min = 0.01                 # VE SDE
  model.sigma_max = 50.0
  model.num_scales = 1000                # N: discretization steps
  model.beta_min = 0.1                   # VP / sub-VP SDE
  model.beta_max = 20.0
  model.dropout = 0.1
  model.embedding_type = "fourier"       # 'fourier' | 'positional'

  config.optim = optim = ml_collections.ConfigDict()
  optim.weight_decay = 0.0
  optim.optimizer = "Adam"
  optim.lr = 2e-4
  optim.beta1 = 0.9
  optim.eps = 1e-8
  optim.warmup = 5000
  optim.grad_clip = 1.0

  config.seed = 42
  return config
