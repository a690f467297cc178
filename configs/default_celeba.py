"""CelebA defaults (score_sde's default_celeba_configs.py): the CIFAR-10 defaults and what differs.

Not an experiment on its own: `ncsnv2_celeba.py` starts from `get_config()`. See
`default_cifar10.py` for every field.

Data: TFDS `celeb_a` (`config.data.dataset = 'CELEBA'`), each image centrally
cropped to 140x140 and then resized to `image_size` (score_sde's preprocessing,
`scorejax.data.sources`); the held-out ('test') split is CelebA's 'validation'.
"""

import ml_collections

from configs import default_cifar10


def get_config() -> ml_collections.ConfigDict:
  config = default_cifar10.get_config()
  config.sampling.snr = 0.17
  config.eval.begin_ckpt = 1             # from the first kept checkpoint
  config.eval.enable_sampling = True     # FID/IS of samples on by default
  config.data.dataset = "CELEBA"         # TFDS celeb_a: crop 140x140, resize to image_size
  config.data.image_size = 64
  config.model.sigma_max = 90.0
  return config
