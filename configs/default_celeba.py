"""Defaults shared by the CelebA experiment configs (score_sde's default_celeba_configs.py).

Not an experiment on its own: `ncsnv2_celeba.py` imports `get_default_configs()`
and sets the SDE and the model. Fields are those of `default_cifar10.py` (see
the comments there); the comments here mark what differs for CelebA.

Data: TFDS `celeb_a` (`config.data.dataset = 'CELEBA'`), each image centrally
cropped to 140x140 and then resized to `image_size` (score_sde's preprocessing,
`scorejax.data.sources`); the held-out ('test') split is CelebA's 'validation'.
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
  training.batch_size = 128
  training.n_iters = 1300001
  training.snapshot_freq = 50000
  training.snapshot_freq_for_preemption = 10000
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
  sampling.snr = 0.17                    # CelebA: 0.17 (CIFAR-10: 0.16)

  config.eval = evaluate = ml_collections.ConfigDict()
  evaluate.begin_ckpt = 1                # CelebA: from the first kept checkpoint
  evaluate.end_ckpt = 26
  evaluate.batch_size = 1024
  evaluate.enable_sampling = True        # CelebA: FID/IS of samples on by default
  evaluate.num_samples = 50000
  evaluate.enable_loss = True
  evaluate.enable_bpd = False
  evaluate.bpd_dataset = "test"

  config.data = data = ml_collections.ConfigDict()
  data.dataset = "CELEBA"                # TFDS celeb_a: crop 140x140, resize to image_size
  data.image_size = 64
  data.random_flip = True
  data.centered = False                  # False: data in [0, 1]; True: in [-1, 1]
  data.uniform_dequantization = False
  data.num_channels = 3
  data.data_dir = config_dict.placeholder(str)  # TFDS data dir; None: $TFDS_DATA_DIR or ~/tensorflow_datasets

  config.model = model = ml_collections.ConfigDict()
  model.sigma_min = 0.01                 # VE SDE
  model.sigma_max = 90.0                 # CelebA: 90 (CIFAR-10: 50)
  model.num_scales = 1000
  model.beta_min = 0.1                   # VP / sub-VP SDE
  model.beta_max = 20.0
  model.dropout = 0.1
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
