"""LSUN defaults (score_sde's default_lsun_configs.py): the CIFAR-10 defaults and what differs.

Not an experiment on its own: `ve_church.py`, `ve_bedroom.py` and
`ncsnv2_bedroom.py` start from `get_config()` and pick the scene
(`config.data.category`). See `default_cifar10.py` for every other field.

Data: TFDS `lsun/<category>` (`config.data.dataset = 'LSUN'`), resized so that the
short side is `image_size` and centrally cropped (score_sde's preprocessing,
`scorejax.data.sources`); the held-out ('test') split is LSUN's 'validation'.
"""

import ml_collections
from ml_collections import config_dict

from configs import default_cifar10


def get_config() -> ml_collections.ConfigDict:
  config = default_cifar10.get_config()

  training = config.training
  training.batch_size = 64
  training.n_iters = 2400001
  training.snapshot_freq_for_preemption = 5000  # steps are slow at 256 px

  config.sampling.snr = 0.075

  evaluate = config.eval
  evaluate.begin_ckpt = 50
  evaluate.end_ckpt = 96
  evaluate.batch_size = 512
  evaluate.enable_sampling = True        # FID/IS of samples on by default

  data = config.data
  data.dataset = "LSUN"                  # TFDS lsun/<category>
  data.category = config_dict.placeholder(str)  # LSUN scene: 'church_outdoor', 'bedroom', ... (required)
  data.image_size = 256

  model = config.model
  model.sigma_max = 378.0                # NCSNv2's technique 1 at 256 px
  model.num_scales = 2000
  model.dropout = 0.0
  return config
