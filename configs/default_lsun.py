"""Defaults shared by the LSUN experiment configs (score_sde's default_lsun_configs.py).

Not an experiment on its own: `ve_church.py`, `ve_bedroom.py` and
`ncsnv2_bedroom.py` import `get_default_configs()`, pick the scene
(`config.data.category`) and set the SDE and the model. Fields are those of
`default_cifar10.py` (see the comments there); the comments here mark what
differs for LSUN.

Data: TFDS `lsun/<category>` (`config.data.dataset = 'LSUN'`), resized so that the
short side is `image_size` and centrally cropped (score_sde's preprocessing,
`scorejax.data.sources`); the held-out ('test') split is LSUN's 'validation'.
"""

import ml_collections
from ml_collections import config_dict


def get_default_configs() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.training = training = ml_collections.ConfigDict()
  training.sde = "vesde"                 # 'vesde' | 'vpsde' | 'subvpsde' (set by the experiment)
  training.continuous = True
  training.reduce_mean = False
  training.likelihood_weighting = False
  training.batch_size = 64               # LSUN 256 px: 64 (CIFAR-10: 128)
  training.n_iters = 2400001             # LSUN: 2.4M iterations
  training.snapshot_freq = 50000
  training.snapshot_freq_for_preemption = 5000  # LSUN: every 5k (steps are slow at 256 px)
  training.snapshot_sampling = True
  training.log_freq = 50
  training.eval_freq = 100

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.method = "pc"
  sampling.predictor = "reverse_diffusion"
  sampling.corrector = "langevin"
  sampling.n_steps_each = 1
  sampling.noise_removal = True
  sampling.probability_flow = False
  sampling.snr = 0.075                   # LSUN 256 px: 0.075 (CIFAR-10: 0.16)

  config.eval = evaluate = ml_collections.ConfigDict()
  evaluate.begin_ckpt = 50               # LSUN: checkpoints 50..96
  evaluate.end_ckpt = 96
  evaluate.batch_size = 512              # LSUN: 512 (256 px images)
  evaluate.enable_sampling = True        # LSUN: FID/IS of samples on by default
  evaluate.num_samples = 50000
  evaluate.enable_loss = True
  evaluate.enable_bpd = False
  evaluate.bpd_dataset = "test"

  config.data = data = ml_collections.ConfigDict()
  data.dataset = "LSUN"                  # TFDS lsun/<category>
  data.category = config_dict.placeholder(str)  # LSUN scene: 'church_outdoor', 'bedroom', ... (required)
  data.image_size = 256
  data.random_flip = True
  data.centered = False                  # False: data in [0, 1]; True: in [-1, 1]
  data.uniform_dequantization = False
  data.num_channels = 3
  data.data_dir = config_dict.placeholder(str)  # TFDS data dir; None: $TFDS_DATA_DIR or ~/tensorflow_datasets

  config.model = model = ml_collections.ConfigDict()
  model.sigma_min = 0.01                 # VE SDE
  model.sigma_max = 378.0                # LSUN 256 px: 378 (NCSNv2's technique 1)
  model.num_scales = 2000                # LSUN: N = 2000
  model.beta_min = 0.1                   # VP / sub-VP SDE
  model.beta_max = 20.0
  model.dropout = 0.0                    # LSUN: no dropout
  model.embedding_type = "fourier"

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
